"""One step's batch decoded in groups of like target lengths (`--sub-batches K`).

A batch whose tasks are mixed (`--buckets 1`) pads every target to its longest, a depth map's 65 codes,
so most of its decoder slots hold padding. Its rows sorted by target length and cut into at most K groups
that pad least, the encoder still reads the whole batch in one pass while the decoder runs once per group
on targets cut to the group's longest (UnioModel.grouped_forward): about what one-task batches cost. The
loss stays the whole batch's, each target token weighed over the whole batch (--loss-mean) before the
cut, so the step is the whole batch's step up to float rounding (tests/test_sub_batches.py). Pix2Seq
trains one batch per task in each step for the same reason; here the mixing and the loss are the batch's
as drawn. (Whole forward passes per group were measured first: four encoder passes over a quarter of
the rows each cost what the padding saved; docs/experiments.md, session 37.)
"""
from __future__ import annotations

import torch

from unio.train.balance import example_losses
from unio.vocab import IGNORE


def target_lengths(labels: torch.Tensor) -> torch.Tensor:
    """(B,) each row's length up to its last target token that counts (0: none counts)."""
    positions = torch.arange(1, labels.shape[1] + 1, device=labels.device)
    return ((labels != IGNORE) * positions).amax(1)


def cut_points(lengths: list, parts: int) -> list:
    """Ends of at most `parts` runs of the ascending `lengths` that hold the fewest padded slots (the sum of
    each run's size times its longest length), fewer runs where they pad as little; the last end is len."""
    n = len(lengths)
    best = [[0.0] + [float("inf")] * n]     # best[k][j]: the fewest slots of lengths[:j] in k runs
    back = [[0] * (n + 1)]
    for k in range(1, parts + 1):
        row, arg = [float("inf")] * (n + 1), [0] * (n + 1)
        row[0] = 0.0
        for j in range(1, n + 1):
            for i in range(j):
                cost = best[k - 1][i] + (j - i) * lengths[j - 1]
                if cost < row[j]:
                    row[j], arg[j] = cost, i
        best.append(row)
        back.append(arg)
    k = min(range(1, parts + 1), key=lambda k: (best[k][n], k))
    ends, j = [], n
    while k:
        ends.append(j)
        j, k = back[k][j], k - 1
    return ends[::-1]


def target_groups(labels: torch.Tensor, parts: int) -> list:
    """[(rows, length)]: at most `parts` groups of rows of like target lengths that pad least, each with
    its longest target's length (what UnioModel.forward's `target_groups` takes)."""
    lengths = target_lengths(labels)
    order = torch.argsort(lengths, stable=True)
    groups, start = [], 0
    for end in cut_points(lengths[order].tolist(), parts):
        rows = order[start:end]
        groups.append((rows, max(int(lengths[rows].max()), 1)))
        start = end
    return groups


def grouped_example_losses(logits: list, labels: torch.Tensor, groups: list) -> torch.Tensor:
    """(B,) each example's mean token cross-entropy from grouped logits, one (rows, length, V) per group."""
    out = labels.new_zeros(len(labels), dtype=torch.float)
    for group_logits, (rows, length) in zip(logits, groups):
        out[rows] = example_losses(group_logits, labels[rows, :length])
    return out


def check_sub_batches(opts) -> None:
    """A clear error for a --sub-batches value or combination that cannot run."""
    if not isinstance(opts.sub_batches, int) or isinstance(opts.sub_batches, bool) or opts.sub_batches < 1:
        raise ValueError(f"--sub-batches {opts.sub_batches!r}: the most groups of like target lengths a batch is decoded in, a whole "
                         f"number, 1 or more (2: the default; 1: the batch decoded whole)")
    if opts.sub_batches > 1 and opts.packing:
        raise ValueError("--sub-batches groups a batch's rows by target length; packed rows (--packing) hold several "
                         "examples each: use one or the other")

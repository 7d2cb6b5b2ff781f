"""Each task's share of the training loss, as the trainer weighs it: the mean over `--batches` batches from
each step of `--at` of the summed weights of each task's target tokens, under every --loss-mean (the
weights sum to 1 a batch). Takes train_mixture.py's options; nothing is trained.

    python scripts/loss_shares.py --at 0,1200          # the default mixture, at steps 0 and 1,200

Under one-task batches (length bucketing, --buckets 4) every mean gives each task its share of batches.
"""
from __future__ import annotations

import sys

import torch

from unio.train.balance import LOSS_MEANS, token_weights
from unio.train.cli import options_from
from unio.train.cli import parser as train_parser


def parser():
    p = train_parser()
    p.description = __doc__
    p.add_argument("--at", default="0", help="the steps the windows start at, comma-separated (default 0)")
    p.add_argument("--batches", type=int, default=40, help="batches a window averages (default 40)")
    return p


def shares(stream, start: int, batches: int) -> dict:
    """{loss mean: [each pair's mean share of a batch's loss]} over batches start .. start + batches - 1."""
    names = stream.mixture.names
    totals = {mean: torch.zeros(len(names), dtype=torch.float64) for mean in LOSS_MEANS}
    for step in range(start, start + batches):
        batch = stream.batch(step)
        for mean in LOSS_MEANS:
            per_example = token_weights(batch["labels"], batch["task_index"], mean).sum(1).double()
            totals[mean].index_add_(0, batch["task_index"], per_example)
    return {mean: (total / batches).tolist() for mean, total in totals.items()}


def table(names: list, windows: dict) -> str:
    lines = [f"{'steps':<12}{'loss mean':<11}" + "".join(f"{n:>12}" for n in names)]
    for label, by_mean in windows.items():
        for mean, row in by_mean.items():
            lines.append(f"{label:<12}{mean:<11}" + "".join(f"{x:>12.3f}" for x in row))
    return "\n".join(lines)


def main(argv=None) -> int:
    from unio.train.trainer import Trainer
    args = parser().parse_args(argv)
    opts = options_from(args)
    opts.compile, opts.progress = False, False
    trainer = Trainer(opts)
    trainer.setup()
    starts = [int(s) for s in args.at.split(",") if s.strip()]
    if any(s < 0 for s in starts) or args.batches < 1:
        raise SystemExit(f"--at takes steps >= 0 and --batches 1 or more; got --at {args.at} --batches {args.batches}")
    accum = trainer.backend.accum
    windows = {f"{s}-{s + args.batches - 1}": shares(trainer.stream, s * accum, args.batches) for s in starts}
    print(table(trainer.stream.mixture.names, windows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

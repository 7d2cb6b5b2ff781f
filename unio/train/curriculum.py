"""The mixture policy over a run: which pairs train in its first stage (the pairs whose answers are not
text, or `--first-tasks`) and for how long."""
from __future__ import annotations

import math
from dataclasses import dataclass

from unio.data.mixture import pair_name
from unio.grammar import Repeat
from unio.modalities import Modalities
from unio.train.builders import default_mixture, parse_tasks
from unio.train.options import TrainOptions


def first_only(opts: TrainOptions) -> tuple:
    """The names of the pairs --first-tasks adds to --tasks: trained in the first stage only."""
    if not opts.first_tasks:
        return ()
    later = parse_tasks(opts.tasks or default_mixture())
    return tuple(pair_name(*p) for p in parse_tasks(opts.first_tasks) if p not in later)


def answers_in_text(task, mods: Modalities, size: int) -> bool:
    """Whether every token a task answers with is a word of the prompt tokenizer."""
    elements = task.grammar(mods, size).segments
    segments = [s for e in elements for s in (e.group if isinstance(e, Repeat) else (e,))]
    return all(s.range == mods.prompt_name for s in segments)


@dataclass(frozen=True)
class Stages:
    """The run's two stages: the pairs `first` (names) alone in the megabatches before `first_until`,
    then every pair but `first_only`."""
    first: tuple = ()
    first_until: int = 0
    first_only: tuple = ()


def spatial_stage(opts: TrainOptions, weights: dict, tasks: dict, mods: Modalities, size: int) -> Stages:
    """The first stage: the pairs whose answers are not text (boxes, depth maps) alone for the first
    `spatial_first` of the run. Measured on the tiny preset: text answers (VQA, captions) in the mix
    from step 0 keep referring expressions from ever grounding their phrases, while depth helps them.
    `first_tasks` names the first stage's pairs instead (pairs it adds to --tasks train there alone)."""
    own = [pair_name(t, s) for t, s in weights if not answers_in_text(tasks[t], mods, size)]
    if opts.first_tasks:
        own = [pair_name(*p) for p in parse_tasks(opts.first_tasks)]   # build_mixture added any new ones
    if first_only(opts) and not opts.spatial_first:
        raise ValueError(f"--first-tasks adds {', '.join(first_only(opts))} to the first stage only, but "
                         f"--spatial-first is 0 (no first stage); give it a fraction of the steps, or list them in --tasks")
    if not opts.spatial_first or not 0 < len(own) < len(weights):
        return Stages()
    batches = opts.spatial_first * opts.steps * opts.grad_accum
    return Stages(tuple(own), math.ceil(batches / opts.buckets), first_only(opts))

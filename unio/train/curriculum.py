"""The mixture policy over a run: which pairs train in its first stage (the pairs whose answers are not
text, or `--first-tasks`), for how long, and the warm-ups tasks declare for it."""
from __future__ import annotations

import math
from dataclasses import dataclass

from unio.data.mixture import pair_name
from unio.data.sources import missing_keys
from unio.grammar import Repeat
from unio.modalities import Modalities
from unio.task_set import TaskSet
from unio.train.builders import default_mixture, parse_tasks
from unio.train.options import TrainOptions


def first_only(opts: TrainOptions) -> tuple:
    """The names of the pairs --first-tasks adds to --tasks: trained in the first stage only."""
    if not opts.first_tasks:
        return ()
    later = parse_tasks(opts.tasks or default_mixture())
    return tuple(pair_name(*p) for p in parse_tasks(opts.first_tasks) if p not in later)


def add_warm_ups(opts: TrainOptions, weights: dict, tasks: dict, sources: dict, task_set: TaskSet) -> tuple:
    """(weights, tasks, warm): the mixture with the warm-ups its tasks declare (a task's `warm_up =
    {task: weight}`: those tasks trained on its source in the first stage alone, e.g. caption's
    detection, whose every-object labels teach the encoder the shapes captions name), and `warm`, the
    added {pair: weight}. None with --no-warm-up, --first-tasks (the first stage named by hand) or
    --spatial-first 0; a pair the run trains already is not added, nor one whose source lacks a record
    key the warm-up task needs (said on stdout). The tokenizers learn from the pairs asked for alone,
    so a run and its --no-warm-up twin share them: a warm-up task must answer in what they encode
    (detection's labels are words its captions spell)."""
    if not opts.warm_up or opts.first_tasks or not opts.spatial_first:
        return weights, tasks, {}
    warm = {}
    for name, source in weights:
        for other, weight in getattr(tasks[name], "warm_up", {}).items():
            missing = missing_keys(getattr(task_set.get(other), "requires", ("image",)), sources[source].keys)
            if missing:
                print(f"{name}'s warm-up {other} is skipped on source {source!r}: it has no {missing[0]!r}")
            elif (other, source) not in weights:
                warm[(other, source)] = max(float(weight), warm.get((other, source), 0.0))
    return {**weights, **warm}, {**tasks, **{t: task_set.get(t) for t, _ in warm}}, warm


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


def spatial_stage(opts: TrainOptions, weights: dict, tasks: dict, mods: Modalities, size: int,
                  warm: dict | None = None) -> Stages:
    """The first stage: the pairs whose answers are not text (boxes, depth maps) alone for the first
    `spatial_first` of the run. Measured on the tiny preset: text answers (VQA, captions) in the mix
    from step 0 keep referring expressions from ever grounding their phrases, while depth helps them.
    `first_tasks` names the first stage's pairs instead. Warm-ups (`warm`, from add_warm_ups) join
    it at their weights (without a first stage of the run's own, they form it)."""
    warm = {pair_name(*p): w for p, w in (warm or {}).items()}
    own = [pair_name(t, s) for t, s in weights if not answers_in_text(tasks[t], mods, size) and pair_name(t, s) not in warm]
    if opts.first_tasks:
        own = [pair_name(*p) for p in parse_tasks(opts.first_tasks)]   # build_mixture added any new ones
    if first_only(opts) and not opts.spatial_first:
        raise ValueError(f"--first-tasks adds {', '.join(first_only(opts))} to the first stage only, but "
                         f"--spatial-first is 0 (no first stage); give it a fraction of the steps, or list them in --tasks")
    if not 0 < len(own) < len(weights) - len(warm):
        own = []
    if not opts.spatial_first or not (own or warm):
        return Stages()
    batches = opts.spatial_first * opts.steps * opts.grad_accum
    return Stages((*own, *warm), math.ceil(batches / opts.buckets), (*first_only(opts), *warm))

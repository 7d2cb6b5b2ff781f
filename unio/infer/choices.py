"""Decoding settings chosen on the validation split: a task whose `guidance` option lists candidate scales
(`--task-option generate.guidance=[2,3,4,5]`) is decoded on validation at each, and keeps the one its headline
metric likes best, as a detector's score threshold or a diffusion model's guidance scale is tuned on held-out
data. The trainer chooses before its test evaluation and saves the choice with the model (so unio.run decodes
at it); evaluate.py chooses for a model that still holds candidates. The best guidance scale differs between
models of one recipe (docs/experiments.md, session 54)."""
from __future__ import annotations

import statistics

from unio.data.mixture import pair_name
from unio.infer.evaluation import evaluate_model
from unio.infer.interference import headline


def guidance_candidates(tasks, pairs) -> dict:
    """{task name: candidate scales} of the tasks among `pairs` whose guidance option is a list."""
    out = {}
    for task_name, _ in pairs:
        scales = getattr(tasks.get(task_name), "guidance", None)
        if isinstance(scales, tuple):
            out[task_name] = scales
    return out


def choose_guidance(model, mods, tasks, pairs, sources, n: int, bad=None, progress: bool = False) -> dict:
    """For each task of `pairs` whose guidance lists candidates: its headline metric on `n` validation examples
    of each of its pairs at each scale (the mean over its pairs), and the best scale, which becomes the task's
    `guidance` in `tasks` and in the model's saved task options. Ties go to the first candidate listed.
    -> {task: {"guidance": chosen, "metric": name, "validation": {scale: value}}}."""
    chosen = {}
    for task_name, scales in guidance_candidates(tasks, pairs).items():
        task = tasks.get(task_name)
        own = [pair for pair in pairs if pair[0] == task_name]
        lower = bool(getattr(task, "lower_is_better", False))
        scores, metric = {}, None
        for scale in scales:
            results = evaluate_model(model, mods, own, sources, "validation", n, progress=progress, bad=bad,
                                     tasks=tasks, guidance_scale=scale)
            metric = headline(task, results[pair_name(*own[0])])
            scores[scale] = statistics.mean(results[pair_name(*pair)][metric] for pair in own)
        best = (min if lower else max)(scales, key=lambda s: scores[s])
        task.guidance = best
        model.config.task_options.setdefault(task_name, {})["guidance"] = best
        chosen[task_name] = {"guidance": best, "metric": metric, "validation": {str(s): v for s, v in scores.items()}}
    return chosen


def describe(chosen: dict) -> str:
    """One line a task: 'generate: guidance 3.0 chosen on validation (color_f1 0.857 at 2.0, 0.864 at 3.0, ...)'."""
    return "\n".join(f"{task}: guidance {c['guidance']} chosen on validation ({c['metric']} "
                     + ", ".join(f"{v:.3f} at {s}" for s, v in c["validation"].items()) + ")"
                     for task, c in chosen.items())

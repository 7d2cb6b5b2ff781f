"""How find_all's recall and false positives on absent queries move with a threshold on its boxes' scores
(each box's tokens' geometric mean probability, as its evaluation scores them): greedy answers on the
validation and test splits of the world, the boxes under the threshold dropped, for a grid of thresholds. The
threshold is chosen on validation: the mildest whose false-positive rate is at most --max-fp; its test figures
are what `--task-option find_all.min_score=T` gives (evaluate.py, unio.run). A second sweep (`presence`) asks
whether the model knows that nothing matches: the answer is empty where the empty answer's probability (EOS
first) is at least the threshold, the greedy answer elsewhere (not an option of the task: a measurement).

    python scripts/score_threshold.py runs/all-s49-kp2 --n 500 --json t.json
"""
from __future__ import annotations

import argparse
import json

import numpy as np

import torch

from unio.data.encoding import encode_inputs
from unio.data.sources import build_source
from unio.infer.evaluation import predict, score, split_examples
from unio.infer.model_folder import load_model_folder
from unio.infer.pipeline import ranking_start
from unio.model.decoding import score_candidates
from unio.task_set import TaskSet

TASK = "find_all"
GRID = tuple(np.round(np.arange(0.0, 1.0, 0.025), 3))
PRESENCE_GRID = tuple(np.round(np.arange(1.0, 0.0, -0.025), 3))   # from greedy's answers (1.0) to ever more empty ones


def above(prediction: dict, threshold: float) -> dict:
    kept = [i for i, s in enumerate(prediction["scores"]) if s >= threshold]
    return {"boxes": [prediction["boxes"][i] for i in kept], "scores": [prediction["scores"][i] for i in kept]}


def sweep(task, predictions, examples, grid=GRID, empty=None) -> list:
    """[{threshold, recall, fp_rate_absent, precision}] over the grid: boxes scored under the threshold dropped,
    or, given `empty` (each example's probability of the empty answer), answers made empty where it is at least
    the threshold."""
    rows = []
    for t in grid:
        made = [{"boxes": [], "scores": []} if e >= t else p for p, e in zip(predictions, empty)] if empty is not None \
            else [above(p, t) for p in predictions]
        m = score(task, made, examples)
        rows.append({"threshold": float(t), **{k: round(float(m[k]), 4) for k in ("recall", "fp_rate_absent", "precision")}})
    return rows


def empty_probability(model, mods, task, examples) -> np.ndarray:
    """Each example's probability that its answer is empty (EOS first), as evaluation ranks answer options."""
    start = ranking_start(model, mods, task)
    inputs = encode_inputs(examples, mods, model.config.max_text_length)
    with torch.no_grad():
        return np.array([float(score_candidates(model, {k: v[i:i + 1] for k, v in inputs.items()}, [[]], start)[0].exp())
                         for i in range(len(examples))])


def choose(rows: list, max_fp: float) -> dict | None:
    """The sweep's first row (its mildest threshold) whose false-positive rate is at most max_fp (None: none is)."""
    return next((r for r in rows if r["fp_rate_absent"] <= max_fp), None)


def run_sweep(run: str, n: int, max_fp: float) -> dict:
    model, mods = load_model_folder(run)
    model.eval()
    tasks = TaskSet(model.config.task_options, known_only=True)
    if TASK not in set(model.config.trained_tasks or []):
        raise ValueError(f"{run} was not trained on {TASK} (it was on: {', '.join(model.config.trained_tasks or [])})")
    task, size = tasks.get(TASK), model.config.image_size
    source = build_source("world", None, size)
    splits, presence = {}, {}
    for split in ("validation", "test"):
        examples = split_examples(task, source, split, n, size)
        predictions = predict(model, mods, task, examples)
        splits[split] = sweep(task, predictions, examples)
        presence[split] = sweep(task, predictions, examples, PRESENCE_GRID, empty_probability(model, mods, task, examples))
    out = {"max_fp": max_fp, "test_at_0": splits["test"][0], "sweep": splits, "presence": presence}
    for kind, sweeps in (("", splits), ("presence_", presence)):
        chosen = choose(sweeps["validation"], max_fp)
        out[f"{kind}chosen_on_validation"] = chosen
        out[f"{kind}test_at_chosen"] = next((r for r in sweeps["test"] if chosen and r["threshold"] == chosen["threshold"]), None)
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders (or their model/ folders) trained on find_all")
    p.add_argument("--n", type=int, default=500, help="examples of each split")
    p.add_argument("--max-fp", type=float, default=0.1, help="the false-positive rate on absent queries the "
                   "chosen threshold keeps to on validation (issue 33's target: 0.1)")
    p.add_argument("--json", help="write {run: figures} here")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    report = {}
    for run in args.runs:
        report[run] = out = run_sweep(run, args.n, args.max_fp)
        print(run, "test at 0:", json.dumps(out["test_at_0"]))
        for kind in ("", "presence_"):
            print(run, f"{kind or 'box score '}chosen on validation:", json.dumps(out[f"{kind}chosen_on_validation"]),
                  "test there:", json.dumps(out[f"{kind}test_at_chosen"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()

"""`scripts/evaluate.py` / `unio eval`: per-task metrics of a model or of baselines on a world split."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Evaluate a unio model, or baselines, on the embedded world.")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", help="run folder or model folder")
    who.add_argument("--baseline", help="a baseline name (majority, most_frequent, centre_box, mean_box, "
                                        "mean_depth, vq_ceiling) or 'all'")
    p.add_argument("--tasks", default="vqa,caption,refexp,depth")
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--json", default=None, help="write the metrics to this file")
    p.add_argument("--tokenizers", default=None, help="tokenizer folder for baselines (default: the cached ones)")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--plugin", action="append", default=[])
    return p


def main(argv=None) -> int:
    from unio import plugins
    from unio.data import parse_mixture
    from unio.registries import TASKS
    args = parser().parse_args(argv)
    for path in args.plugin:
        plugins.load(path)
    tasks = list(parse_mixture(args.tasks, TASKS.names()))
    if args.model:
        from unio.evaluation import evaluate_model
        from unio.inference import load
        runner = load(args.model)
        results = evaluate_model(runner.model, runner.mods, tasks, args.split, args.n, progress=True)
    else:
        from unio.bootstrap import ensure_modalities
        from unio.evaluation import evaluate_baselines
        mods = ensure_modalities(tasks, args.resolution, directory=Path(args.tokenizers) if args.tokenizers else None)
        known = {b for t in tasks for b in TASKS.get(t).baselines()}
        if args.baseline != "all" and args.baseline not in known:
            raise SystemExit(f"unknown baseline {args.baseline!r}; baselines: {', '.join(sorted(known))}, all")
        results = evaluate_baselines(mods, tasks, args.split, args.n, args.resolution, only=args.baseline)
    text = json.dumps({"split": args.split, "n": args.n, "results": results}, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0

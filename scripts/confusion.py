"""What a model says for each gold answer of a text task: the confusion of its predictions on a split.

python scripts/confusion.py --model runs/rel-ncm --task relation --n 500 --swap-regions --json confusion.json

Rows are gold answers, columns what the model said (a task's `predicate` of the answer where it has one: the
predicate after relation's names). `--swap-regions` asks each two-region example again with its regions in
the other order and counts (said before, said after): an answer that reads the regions' order flips
("left of" -> "right of"), one that ignores it stays.
"""
import argparse
import json
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="run folder or model folder")
    p.add_argument("--task", required=True, help="a text task the model was trained on (relation, vqa, classify ...)")
    p.add_argument("--source", default="world", help="NAME or NAME=SPEC, as in train_mixture.py")
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--swap-regions", action="store_true", help="also ask two-region examples with the regions swapped")
    p.add_argument("--json", default=None, help="write the tables to this file")
    return p


def confusion(gold: list, said: list) -> dict:
    """{gold answer: {said answer: count}}, each row most said first."""
    rows = defaultdict(Counter)
    for g, s in zip(gold, said):
        rows[g][s] += 1
    return {g: dict(rows[g].most_common()) for g in sorted(rows)}


def swapped(example):
    """The example with its two regions (and their names, where it has them) in the other order."""
    meta = dict(example.meta)
    if "names" in meta:
        meta["names"] = list(meta["names"])[::-1]
    return replace(example, region=list(example.region)[::-1], meta=meta)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from unio.data.sources import build_source
    from unio.infer.evaluation import predict, split_examples
    from unio.infer.runner import load
    from unio.task_set import TaskSet
    runner = load(args.model)
    config = runner.model.config
    trained = config.trained_tasks or []
    if trained and args.task not in trained:
        raise SystemExit(f"confusion.py: the model was not trained on {args.task!r}; it was on {', '.join(trained)}")
    task = TaskSet(config.task_options, known_only=True).get(args.task)
    name, _, spec = args.source.partition("=")
    source = build_source(name, spec or None, config.image_size)
    examples = split_examples(task, source, args.split, args.n, config.image_size)
    if any(not isinstance(ex.target, str) for ex in examples):
        raise SystemExit(f"confusion.py: {args.task!r} answers with {task.output}, not text")
    said_of = getattr(task, "predicate", lambda answer: answer)
    said = [said_of(p) for p in predict(runner.model, runner.mods, task, examples)]
    out = {"model": args.model, "task": args.task, "n": len(examples),
           "confusion": confusion([ex.target for ex in examples], said)}
    for gold, row in out["confusion"].items():
        print(f"{gold:24s} " + ", ".join(f"{answer} {count}" for answer, count in row.items()))
    if args.swap_regions:
        pairs = [(i, ex) for i, ex in enumerate(examples) if ex.region is not None and len(ex.region) == 2]
        again = [said_of(p) for p in predict(runner.model, runner.mods, task, [swapped(ex) for _, ex in pairs])]
        out["swapped"] = confusion([said[i] for i, _ in pairs], again)
        print("said before -> said with the regions swapped")
        for before, row in out["swapped"].items():
            print(f"{before:24s} " + ", ".join(f"{answer} {count}" for answer, count in row.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where a grounded ITM model's answers go wrong: in the list of objects its answer starts from, or in comparing
the caption with that list. For a model trained with `itm.ground=detection` (with or without `itm.verdicts`),
over test examples of the world, per kind of example (positive, colour, shape, size, count):

- `list_right`: the share whose list (the model's own detection, as evaluation asks it first) holds exactly the
  image's objects, as labels counted;
- `accuracy`: the model's answers (as evaluation scores them);
- `accuracy_list_right`: the answers on the examples whose list is right (the comparison alone);
- `through_list`: the accuracy a perfect comparison of the caption with the model's own list would reach ("yes"
  where they hold the same objects): the ceiling of an answer that follows its list;
- `follows_list`: the share of answers that agree with that comparison.

And how the lists differ from the image's objects (`list_errors`, shares of the images' objects): objects
`missing` from the list, `extra` ones in it, and listed objects that stand for a missing one with one or more
attributes changed (`substituted_size`, `_color`, `_shape`; each listed object paired with the missing one it
differs from least), the shapes substituted as a share of the objects of each size (`substituted_shape_by_size`),
the objects' sizes in pixels (`pixels_by_size`: the 10th, 50th and 90th percentile of a box's longer side), and the
commonest substitutions by the missing object's size (`confusions`: "small: cylinder -> sphere").

    python scripts/itm_errors.py runs/grd-s56-verdicts --n 500
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict

import numpy as np
import torch

from unio.data.sources import build_source
from unio.infer.evaluation import split_examples
from unio.infer.model_folder import load_model_folder
from unio.infer.pipeline import generate_answers
from unio.task_set import TaskSet, merge_task_options, parse_task_options


def labels(objects) -> Counter:
    return Counter(" ".join(label.lower().split()) for _, label in objects)


def tally(task, examples, answers) -> dict:
    """{kind: {figure: value}} of the figures above (and `n`)."""
    parse = sys.modules[type(task).__module__].parse
    counts = defaultdict(Counter)
    for example, answer in zip(examples, answers):
        listed, right = labels(example.meta["found_objects"]), answer.prediction == example.target
        list_right = listed == labels(example.meta["objects"])
        caption = parse(example.meta["text"])
        through = caption is not None and ("yes" if Counter(" ".join(o) for o in caption) == listed else "no")
        c = counts[example.meta["kind"]]
        c.update(n=1, list_right=list_right, accuracy=right, right_and_list_right=right and list_right,
                 through_list=through == example.target, follows_list=through == answer.prediction)
    return {kind: {"n": c["n"], **{k: round(c[k] / c["n"], 3) for k in
                                   ("list_right", "accuracy", "through_list", "follows_list")},
                   "accuracy_list_right": round(c["right_and_list_right"] / max(c["list_right"], 1), 3)}
            for kind, c in sorted(counts.items())}


ATTRIBUTES = ("size", "color", "shape")


def list_errors(examples, top: int = 8) -> dict:
    """The `list_errors` figures above, over the examples' images (`found_objects` against `objects`)."""
    objects, errors, confusions, pixels = 0, Counter(), Counter(), {}     # pixels: {size: each object's}
    for example in examples:
        gold, listed = labels(example.meta["objects"]), labels(example.meta["found_objects"])
        objects += sum(gold.values())
        for box, name in example.meta["objects"]:
            pixels.setdefault(name.lower().split()[0], []).append(max(box[2] - box[0], box[3] - box[1]))
        missing, extra = list((gold - listed).elements()), list((listed - gold).elements())
        for name in list(missing):
            if not extra:
                break
            said = min(extra, key=lambda e: differing(name, e))
            extra.remove(said)
            missing.remove(name)
            changed = [(a, p, q) for a, p, q in zip(ATTRIBUTES, name.split(), said.split()) if p != q]
            errors.update(f"substituted_{a}" for a, _, _ in changed)
            errors.update(f"shape_of_{name.split()[0]}" for a, _, _ in changed if a == "shape")
            confusions[f"{name.split()[0]}: " + ", ".join(f"{p} -> {q}" for _, p, q in changed)] += 1
        errors.update(missing=len(missing), extra=len(extra))
    keys = ("missing", "extra") + tuple(f"substituted_{a}" for a in ATTRIBUTES)
    return {"objects": objects, **{k: round(errors[k] / max(objects, 1), 3) for k in keys},
            "substituted_shape_by_size": {size: round(errors[f"shape_of_{size}"] / len(v), 3) for size, v in
                                          sorted(pixels.items())},
            "pixels_by_size": {size: [float(np.percentile(v, q)) for q in (10, 50, 90)] for size, v in
                               sorted(pixels.items())},
            "confusions": dict(confusions.most_common(top))}


def differing(name: str, other: str) -> int:
    """How many of two labels' words (size, colour, shape) differ."""
    a, b = name.split(), other.split()
    return sum(p != q for p, q in zip(a, b)) + abs(len(a) - len(b))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="a run folder (its model/) or a model folder, trained with itm.ground=detection")
    p.add_argument("--n", type=int, default=500, help="test examples")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--json", default=None, help="write the figures here too")
    p.add_argument("--task-option", action="append", default=[], metavar="TASK.OPTION=VALUE",
                   help="over the model's own options, e.g. itm.ground=detection for a model trained without it")
    return p


def main(argv=None) -> dict:
    args = parser().parse_args(argv)
    model, mods = load_model_folder(args.run)
    given = parse_task_options(args.task_option)
    options = merge_task_options(model.config.task_options, given)
    tasks = TaskSet(options, known_only=True)
    itm = tasks.get("itm")
    if not itm.ground:
        raise SystemExit(f"{args.run}: its itm answers without a list (itm.ground is off; give --task-option "
                         f"itm.ground=detection); this script compares an answer with the list it starts from")
    examples = split_examples(itm, build_source("world", None, model.config.image_size), "test", args.n,
                              model.config.image_size)
    with torch.no_grad():
        answers = [a for i in range(0, len(examples), args.batch)
                   for a in generate_answers(model, mods, itm, examples[i:i + args.batch], tasks)]
    figures = {"by_kind": tally(itm, examples, answers), "list_errors": list_errors(examples)}
    print(f"{'kind':<10}" + "".join(f"{k:>21}" for k in next(iter(figures["by_kind"].values()))))
    for kind, row in figures["by_kind"].items():
        print(f"{kind:<10}" + "".join(f"{v:>21}" for v in row.values()))
    print("the lists against the images' objects (shares of the objects):",
          ", ".join(f"{k} {v}" for k, v in figures["list_errors"].items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return figures


if __name__ == "__main__":
    main()

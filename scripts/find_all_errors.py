"""Whether a grounded find_all model's boxes follow the list its answer starts from. For a model trained with
`find_all.ground=detection`, over test examples of the world, each query's boxes against the boxes its list names
(the model's own detection, as evaluation asks it first; the listed objects whose label has every word of the query,
as `find_all.via=detection` keeps them):

- `absent`: queries no object of the image matches: `fp_rate` (the share answered with any box, as evaluation
  scores it), split by whether the list names a match for the query (`list_names_none`, `list_names_a_match`), each
  with its `n`;
- `present`: queries with matches: `recall` (the answers' boxes, as evaluation scores it) and `recall_through_list`
  (the boxes the list names: the ceiling of an answer that follows its list);
- `follows_list`: the share of all queries whose answer is the boxes the list names (as many, each matched at IoU
  0.5).

With `find_all.verdicts` the list is the one the answer says itself (each label without its verdict).

    python scripts/find_all_errors.py runs/grd-s61-noise --n 500
"""
from __future__ import annotations

import argparse
import json
from collections import Counter

import torch

from unio.data.sources import build_source
from unio.infer.evaluation import split_examples
from unio.infer.model_folder import load_model_folder
from unio.infer.pipeline import generate_answers
from unio.kit.answers import box_groups
from unio.kit.boxes import match
from unio.task_set import TaskSet, merge_task_options, parse_task_options


def through_list(task, example) -> list:
    """The boxes the example's list (`found_objects`) names for its query, in the answers' pixels."""
    found = example.meta["found_objects"]
    named = task.from_answer({"boxes": [box for box, _ in found], "labels": [label for _, label in found],
                              "scores": [1.0] * len(found)}, example)["boxes"]
    return [example.frame.box_to_original(b) for b in named] if example.frame else named


def said_list(mods, example, answer) -> list:
    """[(box, label)] of the objects a `verdicts` answer says, each label without its verdict word."""
    boxes, groups = box_groups(answer.ids, None, mods, example)
    return [(box, " ".join(mods.text_from_ids(g.label).split()[:-1])) for box, g in zip(boxes, groups)]


def tally(task, examples, answers) -> dict:
    """The figures above from the examples (with `found_objects`) and their answers."""
    c = Counter()
    for example, answer in zip(examples, answers):
        gold = [example.frame.box_to_original(b) if example.frame else b for b in example.target]
        boxes, named = answer.prediction["boxes"], through_list(task, example)
        c.update(n=1, follows=len(boxes) == len(named) == match(named, boxes))
        if not gold:
            key = "absent_list_names_a_match" if named else "absent_list_names_none"
            c.update({"absent": 1, "absent_fp": bool(boxes), key: 1, f"{key}_fp": bool(boxes)})
            continue
        c.update(gold=len(gold), hit=match(gold, boxes), hit_through_list=match(gold, named))

    def share(k, n):
        return round(c[k] / max(c[n], 1), 3)
    return {"absent": {"n": c["absent"], "fp_rate": share("absent_fp", "absent"),
                       **{k: {"n": c[f"absent_{k}"], "fp_rate": share(f"absent_{k}_fp", f"absent_{k}")}
                          for k in ("list_names_none", "list_names_a_match")}},
            "present": {"boxes": c["gold"], "recall": share("hit", "gold"),
                        "recall_through_list": share("hit_through_list", "gold")},
            "follows_list": share("follows", "n"), "n": c["n"]}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="a run folder (its model/) or a model folder, trained with find_all.ground=detection")
    p.add_argument("--n", type=int, default=500, help="test examples")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--json", default=None, help="write the figures here too")
    p.add_argument("--task-option", action="append", default=[], metavar="TASK.OPTION=VALUE",
                   help="over the model's own options, e.g. find_all.ground=detection for a model trained without it")
    return p


def main(argv=None) -> dict:
    args = parser().parse_args(argv)
    model, mods = load_model_folder(args.run)
    options = merge_task_options(model.config.task_options, parse_task_options(args.task_option))
    tasks = TaskSet(options, known_only=True)
    find_all = tasks.get("find_all")
    if not find_all.ground:
        raise SystemExit(f"{args.run}: its find_all answers without a list (find_all.ground is off; give --task-option "
                         f"find_all.ground=detection); this script compares the boxes with the list they follow")
    examples = split_examples(find_all, build_source("world", None, model.config.image_size), "test", args.n,
                              model.config.image_size)
    with torch.no_grad():
        answers = [a for i in range(0, len(examples), args.batch)
                   for a in generate_answers(model, mods, find_all, examples[i:i + args.batch], tasks)]
    if find_all.verdicts:
        for example, answer in zip(examples, answers):
            example.meta["found_objects"] = said_list(mods, example, answer)
    figures = tally(find_all, examples, answers)
    print(json.dumps(figures, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return figures


if __name__ == "__main__":
    main()

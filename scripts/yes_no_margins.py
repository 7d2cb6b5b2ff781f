"""Whether a trained model tells yes from no, or only leans one way: for each yes/no question of a run's
model (ITM's, and vqa's spatial and existence questions), the log-likelihood of "yes" minus that of "no",
over test examples of the world. Reported per kind: the share of yes in the truth and in the answers, the
accuracy at margin 0 (the model's own answers), at the best threshold on these examples (an upper bound for
any recalibration), at a threshold set on training examples to their yes share, and the ROC AUC (0.5: no
signal at all). A bias shows as a high AUC with a low accuracy at 0; a question the model has not learnt, as
an AUC near 0.5 whatever its threshold. "yes" and "no" are spelt as the task's targets spell them: a
`vqa.ground` model's spatial answer after the two objects' gold boxes, so there the margin is the comparison
given the boxes (the boxes' own likelihood is the same in both and cancels); there it is scored a second time
(`vqa_spatial_refexp_boxes`) after the boxes the model's own refexp finds for the two named objects, the answer
a route through refexp would give. An `itm.ground` model's ITM answer is scored after the image's gold objects
(its evaluation answers after the objects its own detection finds).

    python scripts/yes_no_margins.py runs/all-s39-long runs/eq-long/whole-vqa --n 500
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import torch

from unio.data.encoding import encode_inputs
from unio.data.sources import build_source
from unio.infer.evaluation import split_examples
from unio.infer.model_folder import load_model_folder
from unio.infer.pipeline import generate_answers, ranking_start
from unio.model.decoding import score_candidates
from unio.task_set import TaskSet

VQA_KINDS = ("spatial", "exist")


def margins(model, mods, task, examples) -> np.ndarray:
    """log p("yes") - log p("no") of each example, scored as evaluation ranks a task's answer options."""
    start = ranking_start(model, mods, task)
    inputs = encode_inputs(examples, mods, model.config.max_text_length)
    with torch.no_grad():
        scores = [score_candidates(model, {k: v[i:i + 1] for k, v in inputs.items()}, answer_options(task, mods, ex),
                                   start) for i, ex in enumerate(examples)]
    return np.array([float(s[0] - s[1]) for s in scores])


def answer_options(task, mods, example) -> list:
    """The ids of "yes" and of "no" as the task's targets for this example spell them."""
    return [task.targets([replace(example, target=answer)], mods)[0] for answer in ("yes", "no")]


def summary(margin: np.ndarray, truth: np.ndarray, threshold: float | None = None) -> dict:
    pos, neg = margin[truth], margin[~truth]
    cuts = np.r_[np.sort(margin) - 1e-6, margin.max() + 1]
    out = {"n": len(margin), "yes_truth": truth.mean(), "yes_said": (margin >= 0).mean(),
           "accuracy_at_0": ((margin >= 0) == truth).mean(),   # evaluation's answers: "yes" wins a tie
           "accuracy_best_threshold": max(((margin > t) == truth).mean() for t in cuts),
           "auc": (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
           if len(pos) and len(neg) else None}   # undefined where the truth is all one answer
    if threshold is not None:
        out["accuracy_train_threshold"] = ((margin > threshold) == truth).mean()
    return {k: v if v is None or k == "n" else round(float(v), 3) for k, v in out.items()}


def run_margins(run: str, n: int) -> dict:
    model, mods = load_model_folder(run)
    model.eval()
    tasks, trained = TaskSet(model.config.task_options, known_only=True), set(model.config.trained_tasks or [])
    source, size = build_source("world", None, model.config.image_size), model.config.image_size
    out = {}
    if "itm" in trained:
        itm = tasks.get("itm")
        train = split_examples(itm, source, "train", n, size)
        train_margin = margins(model, mods, itm, train)
        threshold = np.quantile(train_margin, 1 - np.mean([e.target == "yes" for e in train]))
        test = split_examples(itm, source, "test", n, size)
        out["itm"] = summary(margins(model, mods, itm, test), np.array([e.target == "yes" for e in test]), threshold)
    if "vqa" in trained:
        vqa = tasks.get("vqa")
        questions = split_examples(vqa, source, "test", 4 * n, size)
        for kind in VQA_KINDS:
            chosen = [e for e in questions if e.meta.get("type") == kind][:n]
            truth = np.array([e.meta["answers"][0] == "yes" for e in chosen])
            out[f"vqa_{kind}"] = summary(margins(model, mods, vqa, chosen), truth)
            if kind == "spatial" and getattr(vqa, "ground", False) and "refexp" in trained:
                found = with_refexp_boxes(model, mods, tasks, vqa, chosen)
                out["vqa_spatial_refexp_boxes"] = summary(margins(model, mods, vqa, found), truth)
    return out


def with_refexp_boxes(model, mods, tasks, vqa, examples) -> list:
    """Copies of the spatial questions whose two boxes are the ones the model's refexp finds for the expressions
    they name (`vqa.ground=refexp`'s route, tasks/vqa.py), instead of the gold ones."""
    def ask(name, asked):
        return [a.prediction for a in generate_answers(model, mods, tasks.get(name), asked, tasks)]
    copies = [replace(ex, meta=dict(ex.meta)) for ex in examples]
    vqa.refexp_boxes_first(copies, tasks, ask)
    return [replace(ex, meta={**ex.meta, "boxes": ex.meta["found_boxes"]}) for ex in copies]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders (or their model/ folders)")
    p.add_argument("--n", type=int, default=500, help="test examples of ITM; of each vqa kind, at most this many "
                   "among 4n questions")
    p.add_argument("--json", help="write {run: {kind: figures}} here")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    report = {}
    for run in args.runs:
        report[run] = run_margins(run, args.n)
        for kind, figures in report[run].items():
            print(run, kind, json.dumps(figures))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()

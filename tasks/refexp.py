"""Referring expressions: a phrase that picks out one object -> its box.

The answer is exactly 4 location tokens (y1, x1, y2, x2, see tokenizers/coordinates.py).
Metrics: Acc@0.5 (IoU >= 0.5) and mean IoU, in the original image's pixels; where objects have a
`shape` attribute, Acc@0.5 per phrase that names the shape or not (`acc@0.5_names_shape`, `_no_shape`).
"""
from __future__ import annotations

import numpy as np

from unio.data.records import phrase_kind, refexp_of
from unio.kit.answers import LocationAnswer, box_from_ids, box_segment, box_to_ids
from unio.kit.metrics import box_iou
from unio.registries import register_task
from unio.task import Example, Grammar, choose_prompt, pick


@register_task
class RefExp(LocationAnswer):
    name, hub_task = "refexp", "zero-shot-object-detection"   # registry name; task type on the hub
    output = "boxes"
    prompts = ['Which region does the text "{}" describe?', 'Find the region of "{}".',
               'Where is "{}" in the image?']
    requires = ("image", "objects", "refexps")
    headline = "acc@0.5"

    def example(self, record, rng) -> Example:
        text, index = refexp_of(pick(record["refexps"], rng, record, "referring expression"))
        obj = record["objects"][index]
        shape = (obj.get("attributes") or {}).get("shape")
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng, text),
                       list(obj["box"]), {"expression": text, "phrase": phrase_kind(text, shape)})

    def targets(self, examples, mods):
        return [box_to_ids(ex.target, mods, ex) for ex in examples]

    def grammar(self, mods, image_size: int) -> Grammar:
        return Grammar((box_segment(mods),))

    def decode(self, ids, mods, example) -> list:
        return box_from_ids(ids, mods, example)

    def to_original(self, box, frame) -> list:
        return frame.box_to_original(box)

    def to_result(self, box) -> dict:
        return {"boxes": [box]}

    def evaluate(self, predictions, examples) -> dict:
        """`predictions` in original pixels, against the gold box mapped back through each frame."""
        ious = [box_iou(p, ex.frame.box_to_original(ex.target) if ex.frame else ex.target)
                for p, ex in zip(predictions, examples)]
        metrics = {"acc@0.5": float(np.mean([i >= 0.5 for i in ious])), "miou": float(np.mean(ious))}
        for kind in sorted({ex.meta.get("phrase") for ex in examples} - {None}):
            hits = [i >= 0.5 for i, ex in zip(ious, examples) if ex.meta.get("phrase") == kind]
            metrics[f"acc@0.5_{kind}"] = float(np.mean(hits))
        return metrics

    def baselines(self):
        return {"centre_box": _CentreBox, "mean_box": _MeanBox}


class _CentreBox:
    """A box of the mean training size, centred in the image."""

    def __init__(self, train_examples, mods=None):
        sizes = np.array([[b[2] - b[0], b[3] - b[1]] for b in (ex.target for ex in train_examples)])
        self.w, self.h = sizes.mean(0)

    def __call__(self, example):
        H, W = example.image.shape[:2]
        return [W / 2 - self.w / 2, H / 2 - self.h / 2, W / 2 + self.w / 2, H / 2 + self.h / 2]


class _MeanBox:
    def __init__(self, train_examples, mods=None):
        self.box = np.mean([ex.target for ex in train_examples], axis=0).tolist()

    def __call__(self, example):
        return list(self.box)

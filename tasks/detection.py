"""Object detection: "List all objects and their locations." -> each object as 4 location tokens
(y1, x1, y2, x2) then its class in text, repeated, then EOS (Pix2Seq, Unified-IO 2).

The class is the object's `category` ("large red cube" on the world, the category name on COCO), or
with `label_attribute="shape"` one of its attributes. Training lists the objects left to right
(`order="random"`: shuffled, as Pix2Seq; `"area"`: largest first; left to right measured twice the
AP of random at 600 steps, docs/experiments.md "Detection"), at most `max_objects`, whole groups within
`max_tokens`. A predicted box's score is the geometric mean of its tokens' probabilities; duplicates
go by non-maximum suppression per label. Metrics: COCO AP, AP50, AP75 and AR@100 (pycocotools).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from unio.kit.answers import LABEL_TOKENS, LISTED_OBJECTS, BoxListAnswer, box_groups, box_segment, listed_ids
from unio.kit.boxes import coco_ap, nms
from unio.kit.labels import label_of, left_to_right
from unio.registries import register_task
from unio.task import Example, Grammar, Repeat, Segment, choose_prompt

ORDERS = ("random", "x", "area")


@register_task
class Detection(BoxListAnswer):
    name, hub_task = "detection", "object-detection"   # registry name; task type on the hub
    helper = "detect"                   # unio.detect(image)
    prompts = ["List all objects and their locations.", "Detect every object in the image.",
               "What objects are in the image, and where are they?"]
    requires = ("image", "objects")
    headline = "ap"
    uses_token_logprobs = True          # decode() is given each generated token's log-probability
    stop_by_mass = True                 # ends the list only when EOS outweighs every next box together

    def __init__(self, order: str = "x", max_objects: int = LISTED_OBJECTS, max_label_tokens: int = LABEL_TOKENS,
                 max_tokens: int = 64, nms_iou: float = 0.6, label_attribute: str | None = None):
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
        self.order, self.max_objects, self.max_label_tokens = order, max_objects, max_label_tokens
        self.max_tokens, self.nms_iou, self.label_attribute = max_tokens, nms_iou, label_attribute

    def example(self, record, rng) -> Example:
        objects = [(list(o["box"]), label_of(o, self.label_attribute)) for o in record["objects"] if o.get("box") is not None]
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng), self.ordered(objects, rng)[:self.max_objects])

    def ordered(self, objects, rng) -> list:
        if self.order == "x":
            return left_to_right(objects)
        if self.order == "area":
            return sorted(objects, key=lambda o: -(o[0][2] - o[0][0]) * (o[0][3] - o[0][1]))
        return [objects[i] for i in rng.permutation(len(objects))]

    def targets(self, examples, mods):
        return [listed_ids(ex.target, mods, ex, self.max_label_tokens, self.max_tokens) for ex in examples]

    def grammar(self, mods, image_size: int) -> Grammar:
        label = Segment(mods.prompt_name, 1, self.max_label_tokens)
        return Grammar((Repeat((box_segment(mods), label), 0, self.max_objects),))

    def decode(self, ids, mods, example, logprobs=None) -> dict:
        """{boxes (model frame), labels, scores}, best first, after non-maximum suppression."""
        boxes, groups = box_groups(ids, logprobs, mods, example)
        labels = [mods.text_from_ids(g.label).strip() for g in groups]
        scores = [g.score for g in groups]
        kept = nms(boxes, scores, labels, self.nms_iou)
        return {"boxes": [boxes[i] for i in kept], "labels": [labels[i] for i in kept], "scores": [scores[i] for i in kept]}

    def gold(self, example) -> list:
        """[(box, label)] in the original image's pixels: every object of the record."""
        if example.record is not None and example.record.get("objects") is not None:
            return [(list(o["box"]), label_of(o, self.label_attribute)) for o in example.record["objects"]
                    if o.get("box") is not None]
        return [(example.frame.box_to_original(b) if example.frame else b, label) for b, label in example.target]

    def evaluate(self, predictions, examples) -> dict:
        predicted = [list(zip(p["boxes"], p["labels"], p["scores"])) for p in predictions]
        metrics = coco_ap([self.gold(ex) for ex in examples], predicted)
        metrics["objects_per_image"] = float(np.mean([len(p) for p in predicted])) if predicted else 0.0
        return metrics

    def training_texts(self, example) -> list:
        return [example.prompt] + [label for _, label in example.target]

    def baselines(self):
        return {"prior": _Prior}


class _Prior:
    """One box, the mean training box, with the most frequent class."""

    def __init__(self, train_examples, mods=None):
        objects = [o for ex in train_examples for o in ex.target]
        self.box = np.mean([b for b, _ in objects], axis=0).tolist()
        self.label = Counter(label for _, label in objects).most_common(1)[0][0]

    def __call__(self, example):
        return {"boxes": [list(self.box)], "labels": [self.label], "scores": [1.0]}

"""Tasks composed of trained ones at inference, with no training of their own: class segmentation
('Segment every "cube".') and the keypoints of every object ('Find the keypoints of every object.').

Each is answered through detection (`via`): it keeps the boxes whose label names the query (every word of it, a
plural "cubes" counting as "cube"; "object" matches anything), then asks the box-conditioned task
(`segment`'s box form, `keypoints`) about each kept box, all boxes of an image in one batch. The model
must have been trained with detection and that task. Results: the detection's `boxes`, `labels` and
`scores`, plus `mask` (the union, bool, original size) and `masks` (one per box), or `keypoints` (every
object's points in one list) and `instances` (one list per box).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from unio.kit.labels import query_matches
from unio.registries import TASKS, register_task
from unio.task import Example, slot_of


class PerDetectedObject:
    """Detection, then `per_box` (a task reading a region) on each box whose label names the query."""
    via = "detection"                  # answered through detection's answers (no training of its own)
    per_box: str
    requires = ("image", "objects")

    def prepare(self, example: Example) -> Example:
        """unio.run's example: the query is the text the prompt puts between the quotes (None: every object)."""
        example.meta.setdefault("query", slot_of(example.prompt, self.prompts))
        return example

    def from_answer(self, detected: dict, example: Example, ask) -> dict:
        """The detected boxes (model frame) whose label names the query, with `per_box`'s answer about each
        (`ask`: Result fields in the original image's pixels), all boxes of an image in one batch."""
        keep = [i for i, label in enumerate(detected["labels"]) if query_matches(label, example.meta.get("query"))]
        boxes = [detected["boxes"][i] for i in keep]
        frame = example.frame       # each box as the result states it (original pixels), read back as a region is
        regions = [frame.box_to_model(frame.box_to_original(box)) for box in boxes]
        asked = [replace(example, task=self.per_box, prompt=self.box_prompt(), region=r, meta={}) for r in regions]
        return {"boxes": boxes, "labels": [detected["labels"][i] for i in keep],
                "scores": [detected["scores"][i] for i in keep], "parts": ask(self.per_box, asked) if boxes else []}

    def to_original(self, prediction, frame) -> dict:
        return {**prediction, "boxes": [frame.box_to_original(b) for b in prediction["boxes"]],
                "shape": (frame.height, frame.width)}

    def to_result(self, prediction) -> dict:
        fields = {k: prediction[k] for k in ("boxes", "labels", "scores")}
        return {**fields, **self.merge(prediction["parts"], prediction["shape"])}

    def box_prompt(self) -> str:
        prompts = [p for p in TASKS.get(self.per_box).prompts if "{}" not in p]
        return next((p for p in prompts if "region" in p), prompts[0])


@register_task
class SegmentEvery(PerDetectedObject):
    name = "segment_every"
    hub_task = "image-segmentation"
    output = "mask"
    per_box = "segment"
    prompts = ['Segment every "{}".', "Segment every {}.", "Segment every object."]

    def merge(self, parts, shape) -> dict:
        masks = [np.asarray(p["mask"], bool) for p in parts]
        return {"mask": np.logical_or.reduce(masks) if masks else np.zeros(shape, bool), "masks": masks}


@register_task
class KeypointsEvery(PerDetectedObject):
    name = "keypoints_every"
    hub_task = "keypoint-detection"
    output = "keypoints"
    per_box = "keypoints"
    prompts = ["Find the keypoints of every object.", 'Find the keypoints of every "{}".']

    def merge(self, parts, shape) -> dict:
        instances = [p["keypoints"] for p in parts]
        return {"keypoints": [point for points in instances for point in points], "instances": instances}

"""Tasks composed of trained ones at inference, with no training of their own: class segmentation
('Segment every "cube".') and the keypoints of every object ('Find the keypoints of every object.').

Each runs detection on the image, keeps the boxes whose label names the query (every word of it, a
plural "cubes" counting as "cube"; "object" matches anything), then asks the box-conditioned task
(`segment`'s box form, `keypoints`) about each kept box, all boxes of an image in one batch. The model
must have been trained with detection and that task. Results: the detection's `boxes`, `labels` and
`scores`, plus `mask` (the union, bool, original size) and `masks` (one per box), or `keypoints` (every
object's points in one list) and `instances` (one list per box).
"""
from __future__ import annotations

import numpy as np

from unio.labels import query_matches
from unio.registries import TASKS, register_task
from unio.task import slot_of


class PerDetectedObject:
    """Detection, then `per_box` (a task reading a region) on each box whose label names the query."""
    detector = "detection"
    per_box: str
    composed = True                    # unio.run calls compose(); training and evaluation refuse it
    requires = ("image", "objects")

    @property
    def composed_of(self) -> tuple:
        return self.detector, self.per_box

    def compose(self, runner, examples, **options) -> list:
        from unio.inference import Result
        images = [ex.record["image"] for ex in examples]
        found = runner([TASKS.get(self.detector).prompts[0]] * len(images), images, task=self.detector, **options)
        results = []
        for example, detected in zip(examples, found):
            query = slot_of(example.record["prompt"], self.prompts)
            keep = [i for i, label in enumerate(detected.labels or []) if query_matches(label, query)]
            boxes = [detected.boxes[i] for i in keep]
            image = example.record["image"]
            parts = runner([self.box_prompt()] * len(boxes), [image] * len(boxes), task=self.per_box,
                           regions=boxes, **options) if boxes else []
            result = Result(self.name, example.record["prompt"], image, boxes=boxes,
                            labels=[detected.labels[i] for i in keep], scores=[detected.scores[i] for i in keep])
            result.fill(self.merge(parts, image.shape[:2]))
            results.append(result)
        return results

    def box_prompt(self) -> str:
        prompts = [p for p in TASKS.get(self.per_box).prompts if "{}" not in p]
        return next((p for p in prompts if "region" in p), prompts[0])


@register_task("segment_every")
class SegmentEvery(PerDetectedObject):
    name = "segment_every"
    output = "mask"
    per_box = "segment"
    prompts = ['Segment every "{}".', "Segment every {}.", "Segment every object."]

    def merge(self, parts, shape) -> dict:
        masks = [np.asarray(p.mask, bool) for p in parts]
        return {"mask": np.logical_or.reduce(masks) if masks else np.zeros(shape, bool), "masks": masks}


@register_task("keypoints_every")
class KeypointsEvery(PerDetectedObject):
    name = "keypoints_every"
    output = "keypoints"
    per_box = "keypoints"
    prompts = ["Find the keypoints of every object.", 'Find the keypoints of every "{}".']

    def merge(self, parts, shape) -> dict:
        instances = [p.keypoints for p in parts]
        return {"keypoints": [point for points in instances for point in points], "instances": instances}

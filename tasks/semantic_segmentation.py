"""Semantic segmentation: the image -> a class per pixel, as a colour-coded map of VQ-VAE image codes.

Unified-IO's form: class i is painted in the fixed palette's i-th colour (unio/kit/pixel_maps.py; the
most distinct colours first, unlabelled pixels black) and the painted map is coded by a codebook of its
own (`kind="class_map"`: the tokenizer config's `class_codes`); a decoded map is read back as the nearest
of the first n palette colours, n the number of classes. The classes are the record's `class_names` (the
world's: sky, ground, cube, sphere, cone, cylinder); an answer without a record (unio.run) names them by
the `class_names` option (default: the world's). Codes over no labelled pixel are left out of the loss.
Metrics over a split's pixels at the original resolution, from its summed confusion matrix: mean IoU over
the classes gold or the predictions hold, pixel accuracy, and each class's IoU.
"""
from __future__ import annotations

import warnings

import numpy as np
from PIL import Image

from unio.data.world.surfaces import CLASS_NAMES
from unio.kit.answers import ImageAnswer, ImageCodes, baseline
from unio.kit.drawing import _side_by_side
from unio.kit.image_codes import ignored_codes
from unio.kit.pixel_maps import class_colours, class_image, classes_from_image, confusion, segmentation_metrics
from unio.registries import register_task
from unio.task import Example, NothingToAsk, Target, choose_prompt


@register_task
class SemanticSegmentation(ImageAnswer):
    name, hub_task = "semantic_segmentation", "image-segmentation"   # registry name; task type on the hub
    output = "classes"
    prompts = ["Segment the image by class.", "Give the class of every pixel.", "Label every pixel of the image."]
    requires = ("image", "classes", "class_names")
    photometric = ("brightness", "contrast", "saturation", "hue")   # the world's classes name no colour
    headline = "miou"
    also_report = ("pixel_accuracy",)

    def __init__(self, class_names: list | None = None):
        self.class_names = list(class_names or CLASS_NAMES)
        self.codes = ImageCodes(to_tensor=class_image, channels=3, kind="class_map")

    def options_from_sources(self, splits) -> dict:
        """The class names its training sources name, saved with the model so that an answer without a record
        (unio.run) names what the model paints; none where they are this task's already (the world's) or the
        sources name different classes (then --task-option semantic_segmentation.class_names=[...] names them)."""
        named = {tuple(split[0]["class_names"]) for split in splits if len(split)}
        if len(named) > 1:
            warnings.warn(f"semantic_segmentation trains on sources that name different classes ({len(named)} "
                          "lists): the model saves none; name them with --task-option "
                          "semantic_segmentation.class_names=[...]", stacklevel=2)
        if len(named) != 1 or list(next(iter(named))) == self.class_names:
            return {}
        return {"class_names": list(named.pop())}

    def example(self, record, rng) -> Example:
        classes = np.asarray(record["classes"], np.int64)
        if not (classes >= 0).any():
            raise NothingToAsk(f"record {record.get('id', '?')!r} has no labelled pixel")
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng), classes,
                       {"key": (record.get("id"), classes.shape[0]), "class_names": list(record["class_names"])})

    def targets(self, examples, mods):
        """The painted maps' codes; codes over no labelled pixel are left out of the loss."""
        codes = super().targets(examples, mods)
        cell = mods[self.codes.tokenizer(mods)].downsample
        return [Target(c, () if (ex.target >= 0).all() else ignored_codes(ex.target >= 0, cell))
                for c, ex in zip(codes, examples)]

    def names(self, example) -> list:
        return example.meta.get("class_names") or self.class_names

    def decode(self, ids, mods, example) -> dict:
        h, w = example.image.shape[:2]
        names = self.names(example)
        return {"classes": classes_from_image(self.codes.decode(ids, mods, h, w), len(names)), "class_names": names}

    def to_original(self, prediction, frame) -> dict:
        classes = frame.map_to_original(prediction["classes"].astype(np.float32), Image.NEAREST)
        return {**prediction, "classes": np.rint(classes).astype(np.int64)}

    def to_result(self, prediction) -> dict:
        return dict(prediction)

    def evaluate(self, predictions, examples) -> dict:
        """`predictions` in original pixels, against the record's class map."""
        names = self.names(examples[0])
        counts = sum(confusion(p["classes"], _gold(ex), len(names)) for p, ex in zip(predictions, examples))
        return segmentation_metrics(counts, names)

    def draw(self, result):
        return _side_by_side(Image.fromarray(result.image).convert("RGB"), Image.fromarray(class_colours(result.classes)))

    def baselines(self):
        return {"majority": _MajorityPerPixel, "vq_ceiling": baseline(self.vq_ceiling)}

    def vq_ceiling(self, example, mods) -> dict:
        """The gold map through the codebook and back: the ceiling its codes allow."""
        names = self.names(example)
        return {"classes": classes_from_image(self.codes.round_trip(example.target, mods), len(names)),
                "class_names": names}


def _gold(example) -> np.ndarray:
    """The class map in the original image's pixels."""
    return example.target if example.record is None else np.asarray(example.record["classes"], np.int64)


class _MajorityPerPixel:
    """Each pixel's most frequent training class (model frame)."""

    def __init__(self, train_examples, mods=None):
        targets = np.stack([ex.target for ex in train_examples])                  # (N, H, W)
        n = max(int(targets.max()) + 1, 1)
        counts = np.stack([(targets == c).sum(0) for c in range(n)])              # (n, H, W)
        self.classes, self.names = counts.argmax(0), train_examples[0].meta["class_names"]

    def __call__(self, example):
        return {"classes": self.classes, "class_names": self.names}

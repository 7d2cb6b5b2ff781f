"""Surface normal estimation: the image -> a unit normal per pixel, as a grid of VQ-VAE image codes.

Normals (camera coordinates: x right, y up, z toward the viewer) in [-1, 1] become a 3-channel image
(n + 1) / 2 for a codebook of their own (`kind="normal"`: the tokenizer config's `normal_codes`); the zero
vector, where there is no surface (the world's sky, the padding of non-square images), is grey, and a
decoded pixel near grey reads as no surface again. Every code is trained, the sky's too, so an answer
says where there is no surface. Decoded normals are resized to the original image and renormalised.
Metrics, as the NYUv2 papers report them, over the pixels whose gold normal is known, at the original
resolution: mean and median angular error (degrees), share of pixels within 11.25, 22.5 and 30 degrees.
"""
from __future__ import annotations

import numpy as np

from unio.kit.answers import ImageAnswer, ImageCodes, baseline
from unio.kit.drawing import _side_by_side
from unio.kit.pixel_maps import angular_errors, normal_metrics, normals_from_image, normals_image, unit_normals
from unio.registries import register_task
from unio.task import Example, choose_prompt


@register_task
class Normals(ImageAnswer):
    name = "normals"
    output = "normals"
    headline, lower_is_better = "mean_angle", True
    also_report = ("median_angle", "within_11.25")
    prompts = ["What are the surface normals of the image?", "Estimate the surface normals of this image.",
               "Generate a surface normal map of the image."]
    requires = ("image", "normals")
    photometric = ("brightness", "contrast", "saturation", "hue")   # no answer names a colour

    def __init__(self):
        self.codes = ImageCodes(to_tensor=normals_image, channels=3, kind="normal")

    def example(self, record, rng) -> Example:
        normals = np.asarray(record["normals"], np.float32)
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng), normals,
                       {"key": (record.get("id"), normals.shape[0])})

    def decode(self, ids, mods, example) -> np.ndarray:
        h, w = example.image.shape[:2]
        return normals_from_image(self.codes.decode(ids, mods, h, w))

    def to_original(self, normals, frame) -> np.ndarray:
        return unit_normals(np.stack([frame.map_to_original(normals[..., c]) for c in range(3)], -1))

    def evaluate(self, predictions, examples) -> dict:
        """`predictions` in original pixels, against the record's normals where they are known."""
        return normal_metrics(np.concatenate([angular_errors(p, _gold(ex)) for p, ex in zip(predictions, examples)]))

    def draw(self, result):
        from PIL import Image
        return _side_by_side(Image.fromarray(result.image).convert("RGB"),
                             Image.fromarray(np.round((result.normals + 1) * 127.5).astype(np.uint8)))

    def baselines(self):
        return {"mean_normal": _MeanNormal, "vq_ceiling": baseline(self.vq_ceiling)}

    def vq_ceiling(self, example, mods) -> np.ndarray:
        """The gold normals through the codebook and back: the ceiling its codes allow."""
        return normals_from_image(self.codes.round_trip(example.target, mods))


def _gold(example) -> np.ndarray:
    """The normals in the original image's pixels."""
    return example.target if example.record is None else np.asarray(example.record["normals"], np.float32)


class _MeanNormal:
    """Each pixel's mean direction of the training normals there (model frame), zero where training saw
    no surface there."""

    def __init__(self, train_examples, mods=None):
        total = np.sum([unit_normals(ex.target) for ex in train_examples], axis=0)          # (H, W, 3)
        norm = np.linalg.norm(total, axis=-1, keepdims=True)
        self.normals = np.where(norm > 0, total / np.maximum(norm, 1e-12), 0).astype(np.float32)

    def __call__(self, example):
        return self.normals

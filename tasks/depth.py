"""Depth estimation: the image -> a metric depth map, as a grid of VQ-VAE image codes.

Depth is normalised to [0, 1] by the source's range (`max_depth` of the record: the world 20 m,
NYUv2 10 m), encoded as a single-channel image by the shared VQ-VAE, and turned back into metres
by decoding. Codes over pixels without a valid depth (holes, the padding of non-square images)
are left out of the loss and the metrics. VQ codes of gold depth maps are costly, so they are
computed in batches and cached per record.
Metrics: RMSE (metres), AbsRel and delta < 1.25 over valid pixels, at the original resolution.
Option `decoding` (`--task-option depth.decoding=expected`): each code cell decoded from the mean of its
codes' latents under the model's distribution, not from the generated (likeliest) code alone.
"""
from __future__ import annotations

import numpy as np
import torch

from unio.kit.answers import ImageAnswer, ImageCodes, baseline
from unio.kit.image_codes import ignored_codes
from unio.kit.metrics import depth_errors
from unio.registries import register_task
from unio.task import Example, Target, choose_prompt

DEFAULT_MAX_DEPTH = 20.0   # metres; the range of a model's answers when a prompt comes without a record
DECODINGS = ("likeliest", "expected")   # a cell's depth from its likeliest code, or its codes' expected latent


def depth_image(depth: np.ndarray, max_depth: float = DEFAULT_MAX_DEPTH) -> torch.Tensor:
    """(H, W) metres -> (1, H, W) float in [0, 1]."""
    return torch.from_numpy(np.clip(depth / max_depth, 0, 1).astype(np.float32))[None]


@register_task
class Depth(ImageAnswer):
    name, hub_task = "depth", "depth-estimation"   # registry name; task type on the hub
    output = "depth"
    prompts = ["What is the depth map of the image?", "Estimate the depth of this image.",
               "Generate a depth map of the image."]
    requires = ("image", "depth")
    photometric = ("brightness", "contrast", "saturation", "hue")   # no answer names a colour
    headline, lower_is_better = "rmse", True
    # half again a weight-1 task's examples: under --loss-mean sqrt its 65-token maps take less of the loss than
    # under one mean over all tokens, and depth error rose without it (docs/experiments.md, session 37)
    weight = 1.5

    def __init__(self, decoding: str = "likeliest"):
        if decoding not in DECODINGS:
            raise ValueError(f"depth decoding must be one of {', '.join(DECODINGS)}, got {decoding!r}")
        self.codes = ImageCodes(to_tensor=lambda image: image, channels=1, kind="depth")   # gold: depth_image tensors
        self.decoding = decoding
        self.uses_step_distributions = decoding == "expected"

    def example(self, record, rng) -> Example:
        depth = np.asarray(record["depth"], np.float32)
        valid = record.get("depth_valid")
        valid = np.ones(depth.shape, bool) if valid is None else np.asarray(valid, bool)
        max_depth = float(record.get("max_depth") or DEFAULT_MAX_DEPTH)
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng), depth,
                       {"key": (record.get("id"), depth.shape[0]), "valid": valid, "max_depth": max_depth})

    def targets(self, examples, mods):
        """Codes of the valid depth (the rest 0), cached; codes over no valid pixel are left out of the loss."""
        codes = self.codes.targets([self._image(ex) for ex in examples], [ex.meta["key"] for ex in examples], mods)
        cell = mods[self.codes.tokenizer(mods)].downsample
        return [Target(c, self._ignored(ex, cell)) for c, ex in zip(codes, examples)]

    def _ignored(self, example, cell: int) -> tuple:
        valid = example.meta["valid"]
        return () if valid.all() else tuple(ignored_codes(valid, cell))

    def _image(self, example) -> torch.Tensor:
        return depth_image(np.where(example.meta["valid"], example.target, 0), example.meta["max_depth"])

    def decode(self, ids, mods, example, distributions=None) -> np.ndarray:
        """The generated codes -> metres; with `decoding="expected"` and the steps' distributions, each
        cell decoded from its codes' expected latent (ImageCodes.decode_expected)."""
        h, w = example.image.shape[:2]
        if distributions is not None:
            depth = self.codes.decode_expected(distributions, mods, h, w)
        else:
            depth = self.codes.decode(ids, mods, h, w)
        return depth * example.meta.get("max_depth", DEFAULT_MAX_DEPTH)

    def to_original(self, depth, frame) -> np.ndarray:
        return frame.map_to_original(depth)

    def evaluate(self, predictions, examples) -> dict:
        """`predictions` in original pixels, against the record's depth where it is valid."""
        errors = [depth_errors(p, *_gold(ex)) for p, ex in zip(predictions, examples)]
        return {k: float(np.mean([e[k] for e in errors])) for k in errors[0]}

    def training_images(self, example) -> list:
        return [self._image(example)]

    def baselines(self):
        return {"mean_depth": _MeanDepth, "vq_ceiling": baseline(self.vq_ceiling)}

    def vq_ceiling(self, example, mods) -> np.ndarray:
        """The gold depth map through the image tokenizer and back: the ceiling quantisation allows."""
        max_depth = example.meta["max_depth"]
        return self.codes.round_trip(depth_image(example.target, max_depth), mods) * max_depth


def _gold(example) -> tuple:
    """(depth, valid) in the original image's pixels."""
    record = example.record
    if record is None:
        return example.target, example.meta["valid"]
    depth = np.asarray(record["depth"], np.float32)
    valid = record.get("depth_valid")
    return depth, (np.isfinite(depth) & (depth > 0)) if valid is None else np.asarray(valid, bool)


class _MeanDepth:
    def __init__(self, train_examples, mods=None):
        self.depth = np.mean([ex.target for ex in train_examples], axis=0)

    def __call__(self, example):
        return self.depth

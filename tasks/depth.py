"""Depth estimation: the image -> a metric depth map, as a grid of VQ-VAE image codes.

Depth is normalised to [0, 1] by the source's range (`max_depth` of the record: the world 20 m,
NYUv2 10 m), encoded as a single-channel image by the shared VQ-VAE, and turned back into metres
by decoding. Codes over pixels without a valid depth (holes, the padding of non-square images)
are left out of the loss and the metrics. VQ codes of gold depth maps are costly, so they are
computed in batches and cached per record.
Metrics: RMSE (metres), AbsRel and delta < 1.25 over valid pixels, at the original resolution.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from unio.metrics import depth_errors
from unio.registries import register_task
from unio.task import Example, Grammar, Segment, Target, choose_prompt

DEFAULT_MAX_DEPTH = 20.0   # metres; the range of a model's answers when a prompt comes without a record


def depth_image(depth: np.ndarray, max_depth: float = DEFAULT_MAX_DEPTH) -> torch.Tensor:
    """(H, W) metres -> (1, H, W) float in [0, 1]."""
    return torch.from_numpy(np.clip(depth / max_depth, 0, 1).astype(np.float32))[None]


def ignored_codes(valid: np.ndarray, cell: int) -> list:
    """Positions (raster order) of the code cells that hold no valid pixel."""
    h, w = valid.shape
    cells = valid[: h // cell * cell, : w // cell * cell].reshape(h // cell, cell, w // cell, cell).any((1, 3))
    return np.flatnonzero(~cells).tolist()


@register_task("depth")
class Depth:
    name = "depth"
    output = "depth"
    prompts = ["What is the depth map of the image?", "Estimate the depth of this image.",
               "Generate a depth map of the image."]
    requires = ("image", "depth")
    photometric = ("brightness", "contrast", "saturation", "hue")   # no answer names a colour
    headline, lower_is_better = "rmse", True
    cache_size = 200_000

    def __init__(self):
        self._codes: OrderedDict = OrderedDict()

    def example(self, record, rng) -> Example:
        depth = np.asarray(record["depth"], np.float32)
        valid = record.get("depth_valid")
        valid = np.ones(depth.shape, bool) if valid is None else np.asarray(valid, bool)
        max_depth = float(record.get("max_depth") or DEFAULT_MAX_DEPTH)
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng), depth,
                       {"key": (record.get("id"), depth.shape[0]), "valid": valid, "max_depth": max_depth})

    def targets(self, examples, mods):
        vq = mods["vq"]
        keys = [(ex.meta["key"], vq.signature()) if ex.meta["key"][0] is not None else None for ex in examples]
        codes = {i: self._codes[k] for i, k in enumerate(keys) if k in self._codes}
        todo = [i for i in range(len(examples)) if i not in codes]
        if todo:
            with torch.no_grad():
                encoded = vq.encode(torch.stack([self._image(examples[i]) for i in todo]))
            for i, c in zip(todo, encoded):
                codes[i] = c.flatten().tolist()
                if keys[i] is not None:
                    self._remember(keys[i], codes[i])
        return [Target(mods.vocab.to_global("vq", codes[i]), self._ignored(ex, vq.downsample))
                for i, ex in enumerate(examples)]

    def _ignored(self, example, cell: int) -> tuple:
        valid = example.meta["valid"]
        return () if valid.all() else tuple(ignored_codes(valid, cell))

    def _image(self, example) -> torch.Tensor:
        return depth_image(np.where(example.meta["valid"], example.target, 0), example.meta["max_depth"])

    def _remember(self, key, codes) -> None:
        self._codes[key] = codes
        while len(self._codes) > self.cache_size:
            self._codes.popitem(last=False)

    def grammar(self, mods, image_size: int) -> Grammar:
        side = image_size // mods["vq"].downsample
        return Grammar((Segment("vq", side * side, side * side),))

    def decode(self, ids, mods, example) -> np.ndarray:
        vq = mods["vq"]
        h, w = example.image.shape[:2]
        side_h, side_w = h // vq.downsample, w // vq.downsample
        local = mods.vocab.to_local("vq", ids)[: side_h * side_w]
        local += [0] * (side_h * side_w - len(local))
        image = vq.decode(torch.tensor(local).reshape(1, side_h, side_w), channels=1)[0, 0]
        return image.numpy() * example.meta.get("max_depth", DEFAULT_MAX_DEPTH)

    def to_original(self, depth, frame) -> np.ndarray:
        return frame.map_to_original(depth)

    def evaluate(self, predictions, examples) -> dict:
        """`predictions` in original pixels, against the record's depth where it is valid."""
        errors = [depth_errors(p, *_gold(ex)) for p, ex in zip(predictions, examples)]
        return {k: float(np.mean([e[k] for e in errors])) for k in errors[0]}

    def training_texts(self, example) -> list:
        return [example.prompt]

    def training_images(self, example) -> list:
        return [self._image(example)]

    def baselines(self):
        return {"mean_depth": _MeanDepth, "vq_ceiling": _VQRoundTrip}


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


class _VQRoundTrip:
    """The gold depth map through VQ encode -> decode: the ceiling quantisation allows."""

    def __init__(self, train_examples, mods):
        self.mods = mods

    def __call__(self, example):
        vq = self.mods["vq"]
        return vq.decode(vq.encode(depth_image(example.target, example.meta["max_depth"])),
                         channels=1)[0, 0].numpy() * example.meta["max_depth"]

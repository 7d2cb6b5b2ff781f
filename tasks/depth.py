"""Depth estimation: the image -> a metric depth map, as a grid of VQ-VAE image codes.

Depth is normalised to [0, 1] by the world's far depth, encoded as a single-channel image by the
shared VQ-VAE, and turned back into metres by decoding. VQ codes of gold depth maps are costly,
so they are computed in batches and cached per scene.
Metrics: RMSE (metres), AbsRel and delta < 1.25.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from unio.metrics import depth_errors
from unio.registries import register_task
from unio.task import Example, Grammar, Segment, choose_prompt
from unio.world import MAX_DEPTH


def depth_image(depth: np.ndarray) -> torch.Tensor:
    """(H, W) metres -> (1, H, W) float in [0, 1]."""
    return torch.from_numpy(np.clip(depth / MAX_DEPTH, 0, 1).astype(np.float32))[None]


@register_task("depth")
class Depth:
    name = "depth"
    output = "depth"
    prompts = ["What is the depth map of the image?", "Estimate the depth of this image.",
               "Generate a depth map of the image."]
    cache_size = 200_000

    def __init__(self):
        self._codes: OrderedDict = OrderedDict()

    def example(self, scene, rng) -> Example:
        return Example(self.name, scene.image, choose_prompt(self.prompts, rng), scene.depth,
                       {"key": (scene.split, scene.index, scene.image.shape[0])})

    def targets(self, examples, mods):
        vq = mods["vq"]
        todo = [ex for ex in examples if (ex.meta.get("key"), vq.signature()) not in self._codes]
        if todo:
            with torch.no_grad():
                codes = vq.encode(torch.stack([depth_image(ex.target) for ex in todo]))
            for ex, c in zip(todo, codes):
                self._remember((ex.meta.get("key"), vq.signature()), c.flatten().tolist())
        out = [self._codes[(ex.meta.get("key"), vq.signature())] for ex in examples]
        return [mods.vocab.to_global("vq", c) for c in out]

    def _remember(self, key, codes) -> None:
        if key[0] is None:  # no scene key: never cache
            self._codes[key] = codes
            return
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
        return image.numpy() * MAX_DEPTH

    def evaluate(self, predictions, examples) -> dict:
        errors = [depth_errors(p, ex.target) for p, ex in zip(predictions, examples)]
        return {k: float(np.mean([e[k] for e in errors])) for k in errors[0]}

    def training_texts(self, example) -> list:
        return [example.prompt]

    def training_images(self, example) -> list:
        return [depth_image(example.target)]

    def baselines(self):
        return {"mean_depth": _MeanDepth, "vq_ceiling": _VQRoundTrip}


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
        return vq.decode(vq.encode(depth_image(example.target)), channels=1)[0, 0].numpy() * MAX_DEPTH

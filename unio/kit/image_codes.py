"""RGB images as VQ-VAE codes, for tasks whose answer is an image (text to image, inpainting, ...).

A gold image becomes the raster-order grid of the shared VQ-VAE's codes (global ids of its range), computed
in batches and cached per record; generated codes become an (H, W, 3) uint8 image again. Plugins use
these helpers; the core names no task.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

from unio.grammar import Grammar, Segment
from unio.kit.images import image_tensor


def image_grammar(mods, name: str, image_size: int) -> Grammar:
    """Always a full grid: exactly side * side codes of tokenizer `name` (its range), then EOS."""
    side = image_size // mods[name].downsample
    return Grammar((Segment(name, side * side, side * side),))


class CodeCache:
    """Gold images -> global code ids of the image tokenizer `name`, batched, remembered per key (a record
    id and size) and tokenizer; `to_tensor` turns a gold image into the tokenizer's input (default: RGB)."""

    def __init__(self, name: str, size: int = 200_000, to_tensor=image_tensor):
        self.name, self.size, self._codes, self.to_tensor = name, size, OrderedDict(), to_tensor

    def __call__(self, images: list, keys: list, mods) -> list:
        vq = mods[self.name]
        keys = [None if k is None or k[0] is None else (k, vq.signature()) for k in keys]
        codes = {i: self._codes[k] for i, k in enumerate(keys) if k is not None and k in self._codes}
        todo = [i for i in range(len(images)) if i not in codes]
        if todo:
            with torch.no_grad():
                encoded = vq.encode(torch.stack([self.to_tensor(images[i]) for i in todo]))
            for i, c in zip(todo, encoded):
                codes[i] = mods.vocab.to_global(self.name, c.flatten().tolist())
                if keys[i] is not None:
                    self._remember(keys[i], codes[i])
        return [codes[i] for i in range(len(images))]

    def _remember(self, key, codes) -> None:
        self._codes[key] = codes
        while len(self._codes) > self.size:
            self._codes.popitem(last=False)


def decode_grid(ids, mods, name: str, height: int, width: int, channels: int) -> torch.Tensor:
    """Generated global ids of image tokenizer `name` (a full grid, or fewer: padded with code 0) ->
    its decoded (channels, height, width) image in [0, 1]."""
    vq = mods[name]
    side_h, side_w = height // vq.downsample, width // vq.downsample
    local = mods.vocab.to_local(name, list(ids))[: side_h * side_w]
    local += [0] * (side_h * side_w - len(local))
    return vq.decode(torch.tensor(local).reshape(1, side_h, side_w), channels=channels)[0]


def decode_expected_grid(distributions: torch.Tensor, mods, name: str, height: int, width: int,
                         channels: int) -> torch.Tensor:
    """Each generation step's log-probabilities (L, V) over a full grid of tokenizer `name`'s codes -> the
    decoded (channels, height, width) image in [0, 1] of the expected latent: at each cell the mean of the
    codes' latent vectors under the model's distribution over that tokenizer's codes, instead of the
    likeliest code's. Decoded from the mean, an uncertain cell lands between its candidate codes rather than
    on one of them. A heuristic (the decoder is not linear, so this is not the mean of the decoded maps): on the
    default model it lowered depth RMSE by 4% (experiments.md, session 30). It needs a distribution for every
    cell (a full grid; likeliest decoding pads a short one with code 0 instead)."""
    vq, ranged = mods[name], mods.vocab.range(name)
    side_h, side_w = height // vq.downsample, width // vq.downsample
    cells = side_h * side_w
    if distributions.shape[0] < cells:
        raise ValueError(f"expected decoding needs a distribution for each of the {cells} code cells, "
                         f"got {distributions.shape[0]}")
    probs = distributions[:cells, ranged.start:ranged.stop].float().softmax(-1)      # (cells, K)
    latents = probs @ vq.code_latents().to(probs.device)                             # (cells, D)
    return vq.decode_latents(latents.reshape(1, side_h, side_w, -1), channels=channels)[0]


def image_from_ids(ids, mods, name: str, height: int, width: int) -> np.ndarray:
    """Generated global ids of tokenizer `name` -> (H, W, 3) uint8 (see decode_grid)."""
    image = decode_grid(ids, mods, name, height, width, channels=3)                      # (3, H, W)
    return (image.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)


def round_trip(image: np.ndarray, vq) -> np.ndarray:
    """An (H, W, 3) uint8 image through an image tokenizer's encode -> decode: the ceiling the codes allow."""
    decoded = vq.decode(vq.encode(image_tensor(image)), channels=3)[0]
    return (decoded.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)


def image_to_original(image: np.ndarray, frame) -> np.ndarray:
    """A model-frame (size, size, 3) image -> the original image's (height, width, 3): the frame's
    content cropped and resized, as every other output is mapped back."""
    h, w = frame.content
    crop = Image.fromarray(np.ascontiguousarray(image[:h, :w]))
    return np.asarray(crop.resize((frame.width, frame.height), Image.BILINEAR))


def ignored_codes(valid: np.ndarray, cell: int) -> list:
    """Positions (raster order) of the code cells that hold no valid pixel."""
    h, w = valid.shape
    cells = valid[: h // cell * cell, : w // cell * cell].reshape(h // cell, cell, w // cell, cell).any((1, 3))
    return np.flatnonzero(~cells).tolist()

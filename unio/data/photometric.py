"""Photometric augmentation that keeps answers true, and the perturbations the robustness table uses.

Training jitters the brightness and contrast of every image (`SHARE`; every task tolerates those: a
darker red cube is still red) and, for tasks that declare it (`photometric` attribute: answers that name
no colour, such as depth), saturation and hue. Factors are drawn uniformly from 1 +- the ranges below
times `strength` (`--photometric S`, default 1; 0: off). Only the image's content is changed, not the
padding of the model's square input. The ranges are kept narrow enough that colour names stay true of
the world's palette (a wide brightness range turns a bright orange yellow and a dark yellow olive);
contrast reaches well past the x0.7 of the robustness table. The measurements behind the ranges are in
docs/experiments.md. Training applies it from the end of the spatial-first stage on (unio/data/mixture.py),
so grounding forms on clean images first.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

RANGES = {"brightness": 0.25, "contrast": 0.45, "saturation": 0.25, "hue": 0.03}   # hue: a fraction of the circle
SHARE = 1.0   # the share of training images jittered (the rest stay as they are)
DEFAULT_TOLERATED = ("brightness", "contrast")


def tolerated(task) -> tuple:
    return tuple(getattr(task, "photometric", DEFAULT_TOLERATED))


def augment(image: np.ndarray, rng: np.random.Generator, kinds, strength: float = 1.0, content=None,
            share: float = 1.0) -> np.ndarray:
    """A jittered copy of a (H, W, 3) uint8 image, or with probability 1 - `share` the image itself;
    `content`: the (height, width) to change (the rest is padding)."""
    if strength <= 0 or not kinds or (share < 1 and rng.random() >= share):
        return image
    h, w = content or image.shape[:2]
    x = image[:h, :w].astype(np.float32)
    factors = {k: 1 + rng.uniform(-1, 1) * RANGES[k] * strength for k in ("brightness", "contrast", "saturation", "hue")}
    if "brightness" in kinds:
        x = x * factors["brightness"]
    if "contrast" in kinds:
        x = x.mean() + (x - x.mean()) * factors["contrast"]
    if "saturation" in kinds:
        grey = x.mean(-1, keepdims=True)
        x = grey + (x - grey) * factors["saturation"]
    if "hue" in kinds:
        x = shift_hue(np.clip(x, 0, 255).astype(np.uint8), factors["hue"] - 1).astype(np.float32)
    out = image.copy()
    out[:h, :w] = np.clip(x + 0.5, 0, 255).astype(np.uint8)
    return out


def shift_hue(image: np.ndarray, turn: float) -> np.ndarray:
    hsv = np.asarray(Image.fromarray(image).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + int(round(turn * 256))) % 256
    return np.asarray(Image.fromarray(hsv, mode="HSV").convert("RGB"))


# -- perturbations of test images (scripts/evaluate.py --perturb NAME) -----------------------------
def _scaled(factor):
    return lambda x, rng: np.clip(x.astype(np.float32) * factor + 0.5, 0, 255).astype(np.uint8)


def _low_contrast(x, rng):
    f = x.astype(np.float32)
    return np.clip(f.mean() + (f - f.mean()) * 0.7 + 0.5, 0, 255).astype(np.uint8)


def _jpeg(x, rng, quality: int = 40):
    buffer = io.BytesIO()
    Image.fromarray(x).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _noise(x, rng, sigma: float = 8.0):
    return np.clip(x.astype(np.float32) + rng.normal(0, sigma, x.shape) + 0.5, 0, 255).astype(np.uint8)


def _resized(x, rng, factor: int = 3):
    """The image given at 3x its size: upscaled, then fitted back to the model's input (bicubic both ways)."""
    h, w = x.shape[:2]
    big = Image.fromarray(x).resize((w * factor, h * factor), Image.BICUBIC)
    return np.asarray(big.resize((w, h), Image.BICUBIC))


PERTURBATIONS = {"darker": _scaled(0.8), "brighter": _scaled(1.2), "low_contrast": _low_contrast,
                 "jpeg": _jpeg, "noise": _noise, "resized": _resized}


def perturb(image: np.ndarray, name: str, rng: np.random.Generator, content=None) -> np.ndarray:
    """The model input with perturbation `name` applied to its content (documented in PERTURBATIONS)."""
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r}; perturbations: {', '.join(PERTURBATIONS)}")
    h, w = content or image.shape[:2]
    out = image.copy()
    out[:h, :w] = PERTURBATIONS[name](np.ascontiguousarray(image[:h, :w]), rng)
    return out

"""Per-pixel maps as images for an image codebook, back again, and their metrics: surface normals (3 channels
in [-1, 1], shown as (n + 1) / 2, as RGB is), class maps (each class a fixed palette colour, read back
by the nearest colour of the palette's first n, Unified-IO's colour-coded maps) and depth maps shown grey
(near white, far black), as an image-conditioned generator reads them.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

MIN_NORM = 0.5          # a decoded normal shorter than this is no surface (the zero vector: grey)


# -- surface normals ----------------------------------------------------------------------------------
def unit_normals(vectors: np.ndarray) -> np.ndarray:
    """(..., 3) vectors -> unit vectors, the zero vector where they are shorter than MIN_NORM."""
    v = np.asarray(vectors, np.float32)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(norm >= MIN_NORM, v / np.maximum(norm, 1e-12), 0).astype(np.float32)


def normals_image(normals: np.ndarray) -> torch.Tensor:
    """(H, W, 3) normals in [-1, 1] (zero: none) -> (3, H, W) float in [0, 1] (none: grey)."""
    image = (np.clip(np.asarray(normals, np.float32), -1, 1) + 1) / 2
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def normals_from_image(image: np.ndarray) -> np.ndarray:
    """A decoded (H, W, 3) image (uint8, or float in [0, 1]) -> (H, W, 3) unit normals (zero where grey)."""
    image = np.asarray(image, np.float32)
    return unit_normals((image / 255.0 if image.max() > 1 else image) * 2 - 1)


def angular_errors(predicted: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Angles (degrees) between predicted and gold normals at the pixels where gold has a surface; a
    predicted zero vector (no surface) is 90 degrees off."""
    predicted, gold = np.asarray(predicted, np.float32), np.asarray(gold, np.float32)
    if predicted.shape != gold.shape or gold.shape[-1:] != (3,):
        raise ValueError(f"predicted normals {predicted.shape} and gold normals {gold.shape} must both be (H, W, 3)")
    valid = np.linalg.norm(gold, axis=-1) >= MIN_NORM
    cos = (unit_normals(predicted)[valid] * unit_normals(gold)[valid]).sum(-1)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def normal_metrics(errors: np.ndarray) -> dict:
    """The NYUv2 papers' figures over every valid pixel of a split: mean and median angular error (degrees)
    and the share of pixels within 11.25, 22.5 and 30 degrees."""
    errors = np.asarray(errors, np.float64)
    if errors.size == 0:
        raise ValueError("no pixel with a gold surface normal to score")
    return {"mean_angle": float(errors.mean()), "median_angle": float(np.median(errors)),
            **{f"within_{t:g}": float((errors < t).mean()) for t in (11.25, 22.5, 30)}}


# -- class maps ---------------------------------------------------------------------------------------
def _palette(count: int = 1000) -> np.ndarray:
    """A fixed sequence of distinct colours, the most distinct first: the corners of the RGB cube (black
    left out: it marks unlabelled pixels), then the points of ever finer grids not yet taken."""
    colours, seen = [], {(0, 0, 0)}
    for levels in itertools.count(2):
        grid = [tuple(int(round(255 * i / (levels - 1))) for i in p) for p in itertools.product(range(levels), repeat=3)]
        for c in sorted(grid, key=lambda c: (sum(v > 0 for v in c), c[::-1])):
            if c not in seen:
                seen.add(c)
                colours.append(c)
        if len(colours) >= count:
            return np.array(colours[:count], np.uint8)


PALETTE = _palette()        # (K, 3) uint8: class i's colour; unlabelled (-1) is black


def class_colours(classes: np.ndarray) -> np.ndarray:
    """(H, W) class indices (-1 unlabelled) -> (H, W, 3) uint8 palette colours (black unlabelled)."""
    classes = np.asarray(classes, np.int64)
    if classes.size and classes.max() >= len(PALETTE):
        raise ValueError(f"class {int(classes.max())} is beyond the palette's {len(PALETTE)} colours")
    return np.where(classes[..., None] >= 0, PALETTE[np.clip(classes, 0, None)], 0).astype(np.uint8)


def class_image(classes: np.ndarray) -> torch.Tensor:
    """(H, W) class indices -> (3, H, W) float in [0, 1], the codebook's input."""
    return torch.from_numpy(class_colours(classes).transpose(2, 0, 1).astype(np.float32) / 255.0)


def classes_from_image(image: np.ndarray, n: int) -> np.ndarray:
    """A decoded (H, W, 3) uint8 image -> (H, W) int64: the nearest of the first `n` palette colours."""
    if not 1 <= n <= len(PALETTE):
        raise ValueError(f"a class map has 1..{len(PALETTE)} classes, got {n}")
    pixels = np.asarray(image, np.float32).reshape(-1, 1, 3)
    distance = ((pixels - PALETTE[None, :n].astype(np.float32)) ** 2).sum(-1)       # (HW, n)
    return distance.argmin(1).reshape(np.shape(image)[:2]).astype(np.int64)


def confusion(predicted: np.ndarray, gold: np.ndarray, n: int) -> np.ndarray:
    """(n, n + 1) pixel counts [gold, predicted] over the pixels gold labels (0..n-1); the last column counts
    the pixels predicted as no class (-1) or out of range: misses."""
    predicted, gold = np.asarray(predicted, np.int64), np.asarray(gold, np.int64)
    if predicted.shape != gold.shape:
        raise ValueError(f"predicted classes {predicted.shape} and gold classes {gold.shape} differ in size")
    keep = (gold >= 0) & (gold < n)
    guess = np.where((predicted >= 0) & (predicted < n), predicted, n)[keep]
    return np.bincount(gold[keep] * (n + 1) + guess, minlength=n * (n + 1)).reshape(n, n + 1)


def segmentation_metrics(counts: np.ndarray, names) -> dict:
    """Mean IoU over the classes that gold or the predictions hold, pixel accuracy, and each class's IoU,
    from a split's summed confusion matrix (the semantic segmentation benchmarks' way)."""
    counts = np.asarray(counts, np.float64)
    n = counts.shape[0]
    inter = np.diag(counts[:, :n])
    union = counts[:, :n].sum(0) + counts.sum(1) - inter
    present = union > 0
    ious = {f"iou_{name}": float(inter[i] / union[i]) for i, name in enumerate(names) if present[i]}
    return {"miou": float((inter[present] / union[present]).mean()) if present.any() else float("nan"),
            "pixel_accuracy": float(inter.sum() / max(counts.sum(), 1)), **ious}


# -- depth maps shown grey ---------------------------------------------------------------------------
GREY_DEPTH = 10.0       # metres: the depth shown black; nearer is lighter, 0 m white


def depth_grey(depth: np.ndarray, depth_range: float = GREY_DEPTH, valid: np.ndarray | None = None) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8 grey 255 * (1 - d / depth_range), clipped to [0, 255]; black where
    `valid` is False (no depth known, the padding)."""
    depth = np.asarray(depth, np.float64)
    if depth.ndim != 2 or not depth_range > 0:
        raise ValueError(f"depth_grey takes an (H, W) depth map and a range > 0, got {depth.shape} and {depth_range}")
    grey = np.rint(255 * (1 - np.clip(depth / depth_range, 0, 1)))
    if valid is not None:
        grey = np.where(np.asarray(valid, bool), grey, 0)
    return np.repeat(grey.astype(np.uint8)[..., None], 3, -1)


def depth_from_grey(image: np.ndarray, depth_range: float = GREY_DEPTH) -> np.ndarray:
    """An (H, W, 3) uint8 grey image -> (H, W) metres (the channels' mean read back; black: depth_range)."""
    grey = np.asarray(image, np.float32).mean(-1)
    return ((1 - grey / 255) * depth_range).astype(np.float32)

"""Images as people have them -> the model's square input, and predictions back to the original frame.

Unified-IO style: the image is scaled so its longer side fits the model resolution and padded at
the bottom/right to a square; boxes are mapped back by the inverse scale and clipped.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from unio.task import several_boxes


class UnreadableImage(ValueError):
    """An image file (or encoded image) that cannot be decoded: missing, truncated, not an image."""


def to_rgb_array(image) -> np.ndarray:
    """PIL image, numpy array (HW, HWC; uint8, uint16 or float), torch tensor (CHW/HWC) or a path -> (H, W, 3) uint8."""
    if isinstance(image, (str, Path)):
        path = image
        try:
            image = Image.open(path)
            image.load()
        except (OSError, ValueError) as error:
            raise UnreadableImage(f"cannot read an image from {path!s}: {error}") from None
    if isinstance(image, Image.Image):
        try:
            image.load()      # an encoded image (a parquet cell) is decoded here
        except (OSError, ValueError) as error:
            raise UnreadableImage(f"cannot decode the image: {error}") from None
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            image = np.asarray(image).astype(np.float64) / (65535.0 if np.asarray(image).max() > 255 else 255.0)
        else:
            image = np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.dim() == 3 and image.shape[0] in (1, 3, 4) and image.shape[-1] not in (1, 3, 4):
            image = image.permute(1, 2, 0)
        image = image.numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a PIL image, numpy array, torch tensor or path, got {type(image).__name__}")
    return _normalise_array(image)


def _normalise_array(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image array must be (H, W) or (H, W, C) with C in 1, 3, 4; got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"image has zero size: {array.shape}")
    if array.dtype == np.uint16:
        array = array.astype(np.float64) / 65535.0
    elif array.dtype != np.uint8:
        array = array.astype(np.float64)
        if not np.isfinite(array).all():
            raise ValueError("image holds NaN or infinite values")
        if array.max() > 1.0:
            array = array / 255.0
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255 + 0.5).astype(np.uint8)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


@dataclass
class Frame:
    """How an original (height, width) image maps onto the model's square input."""
    height: int
    width: int
    size: int

    @property
    def scale(self) -> float:
        return self.size / max(self.height, self.width)

    @property
    def identity(self) -> bool:
        """Whether the original already is the model's square input (nothing to resize or pad)."""
        return self.height == self.width == self.size

    @property
    def content(self) -> tuple:
        """(height, width) of the image inside the padded square."""
        return max(1, round(self.height * self.scale)), max(1, round(self.width * self.scale))

    def to_model(self, image: np.ndarray) -> np.ndarray:
        h, w = self.content
        resized = np.asarray(Image.fromarray(image).resize((w, h), Image.BICUBIC))
        canvas = np.zeros((self.size, self.size, 3), np.uint8)
        canvas[:h, :w] = resized
        return canvas

    def map_to_model(self, array: np.ndarray, resample=Image.BILINEAR) -> np.ndarray:
        """A float (height, width) map over the original -> (size, size), zero in the padding."""
        h, w = self.content
        resized = np.asarray(Image.fromarray(np.asarray(array, np.float32), mode="F").resize((w, h), resample))
        canvas = np.zeros((self.size, self.size), np.float32)
        canvas[:h, :w] = resized
        return canvas

    def mask_to_model(self, mask: np.ndarray) -> np.ndarray:
        return self.map_to_model(np.asarray(mask, np.float32), Image.NEAREST) > 0.5

    def mask_to_original(self, mask: np.ndarray) -> np.ndarray:
        return self.map_to_original(np.asarray(mask, np.float32), Image.NEAREST) > 0.5

    def box_to_original(self, box) -> list:
        """A model-frame box -> original pixels, clipped to the image and never empty: a box that
        clipping would flatten (one in the padding) keeps at least a pixel's extent (or the image's)."""
        x1, y1, x2, y2 = (v / self.scale for v in box)
        x1, x2 = _span(x1, x2, self.width)
        y1, y2 = _span(y1, y2, self.height)
        return [x1, y1, x2, y2]

    def region_to_model(self, region):
        """A region (a box, or a list of boxes: unio.task.several_boxes) in the model's frame."""
        return [self.box_to_model(b) for b in region] if several_boxes(region) else self.box_to_model(region)

    def region_to_original(self, region):
        """A region (a box, or a list of boxes) in the original image's pixels."""
        return [self.box_to_original(b) for b in region] if several_boxes(region) else self.box_to_original(region)

    def box_to_model(self, box) -> list:
        """An original-pixel box (x1, y1, x2, y2) -> the model's frame (the inverse of box_to_original)."""
        return [float(v) * self.scale for v in box]

    def point_to_original(self, point) -> tuple:
        x, y, v = point
        return (min(max(x / self.scale, 0.0), self.width), min(max(y / self.scale, 0.0), self.height), v)

    def map_to_original(self, array: np.ndarray, resample=Image.BILINEAR) -> np.ndarray:
        """A (size, size) map over the model input -> (height, width) over the original image."""
        h, w = self.content
        crop = np.asarray(array, np.float32)[:h, :w]
        return np.asarray(Image.fromarray(crop, mode="F").resize((self.width, self.height), resample))


def _span(lo: float, hi: float, extent: float) -> tuple:
    """[lo, hi] clipped to [0, extent], at least min(1, extent) long."""
    lo, hi = min(max(lo, 0.0), extent), min(max(hi, 0.0), extent)
    need = min(1.0, float(extent))
    if hi - lo < need:
        hi = min(max(hi, lo + need), extent)
        lo = max(0.0, hi - need)
    return lo, hi


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0

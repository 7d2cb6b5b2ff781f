"""Rasterising world scenes with numpy: RGB, metric depth, visible masks, boxes, keypoints."""
from __future__ import annotations

import functools

import numpy as np

from unio.data.world.constants import CAMERA_HEIGHT, COLORS, HORIZON, MAX_DEPTH, SIZES

MIN_VISIBLE = 0.5   # an object must keep half its pixels, or the layout is resampled


def ground_depth(rows: np.ndarray, height: int) -> np.ndarray:
    """Metric depth of the ground plane at each image row (pinhole camera; sky = MAX_DEPTH)."""
    horizon = HORIZON * height
    focal = height  # pixels
    below = np.maximum(rows + 0.5 - horizon, 1e-6)
    depth = CAMERA_HEIGHT * focal / below
    return np.where(rows + 0.5 > horizon, np.minimum(depth, MAX_DEPTH), MAX_DEPTH).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _background_layers(res: int):
    """What every scene of this size shares: ground depth, row fraction, ground mask, sky colours."""
    rows = np.arange(res, dtype=np.float32)[:, None].repeat(res, 1)
    t = (rows / res)[..., None]
    sky = np.array([150, 190, 235], np.float32) * (1.05 - 0.3 * t)
    below = rows[:, 0] + 0.5 > HORIZON * res                   # the ground's rows, as ground_depth tests them
    first_ground = int(below.argmax()) if below.any() else res
    return ground_depth(rows, res), (0.75 + 0.35 * t)[first_ground:, :1], first_ground, sky


def _background(res: int, rng: np.random.Generator):
    depth, shade, first_ground, sky = _background_layers(res)
    ground = np.array([120, 115, 100], np.float32) * rng.uniform(0.9, 1.1)
    image = sky.copy()
    image[first_ground:] = ground * shade        # one shade a row, the same across it
    return image, depth.copy()


def _footprint(obj, res: int):
    """(centre x, base y, half width, height) in pixels for an object standing on the ground."""
    focal = res
    base_y = HORIZON * res + CAMERA_HEIGHT * focal / obj.depth
    size_px = SIZES[obj.size] * focal / obj.depth
    return obj.x * res, base_y, size_px / 2, size_px


@functools.lru_cache(maxsize=8)
def _pixel_centres(res: int):
    return np.mgrid[0:res, 0:res].astype(np.float32) + 0.5


def _shape_mask(obj, res: int):
    cx, base, half, height = _footprint(obj, res)
    yy, xx = _pixel_centres(res)
    top = base - height
    if obj.shape == "cube":
        inside = (abs(xx - cx) <= half) & (yy >= top) & (yy <= base)
        corners = [(cx - half, top), (cx + half, top), (cx + half, base), (cx - half, base)]
    elif obj.shape == "sphere":
        cy = base - half
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= half ** 2
        corners = [(cx, cy - half), (cx + half, cy), (cx, cy + half), (cx - half, cy)]
    elif obj.shape == "cone":
        frac = np.clip((yy - top) / max(height, 1e-6), 0, 1)
        inside = (yy >= top) & (yy <= base) & (abs(xx - cx) <= half * frac)
        corners = [(cx, top), (cx + half, base), (cx - half, base)]
    else:  # cylinder: narrower body with elliptical top and bottom
        w = 0.7 * half
        cap = 0.25 * w
        body = (abs(xx - cx) <= w) & (yy >= top + cap) & (yy <= base - cap)
        ends = ((xx - cx) / w) ** 2 + ((yy - (top + cap)) / cap) ** 2 <= 1
        ends |= ((xx - cx) / w) ** 2 + ((yy - (base - cap)) / cap) ** 2 <= 1
        inside = body | ends
        corners = [(cx - w, top + cap), (cx + w, top + cap), (cx + w, base - cap), (cx - w, base - cap)]
    centre = (cx, base - height / 2)
    return inside, [centre] + corners


def _shade(obj, inside: np.ndarray, res: int) -> np.ndarray:
    """Flat colour with a soft left-to-right light, so shapes read as solids."""
    cx, _, half, _ = _footprint(obj, res)
    xx = np.arange(res, dtype=np.float32)[None, :] + 0.5
    light = 1.0 - 0.25 * np.clip((xx - cx) / max(half, 1e-6), -1, 1)
    return np.array(COLORS[obj.color], np.float32) * light[..., None]


def draw(objects: list, res: int, rng: np.random.Generator):
    """Render far to near. Fills each object's mask, box and keypoints; returns (image, depth, ok)."""
    image, depth = _background(res, rng)
    owner = np.full((res, res), -1, np.int64)
    order = sorted(range(len(objects)), key=lambda i: -objects[i].depth)
    full_masks, points = {}, {}
    for i in order:
        inside, pts = _shape_mask(objects[i], res)
        full_masks[i], points[i] = inside, pts
        image[inside] = np.broadcast_to(_shade(objects[i], inside, res), image.shape)[inside]
        depth[inside] = np.float32(objects[i].depth)
        owner[inside] = i
    ok = True
    for i, obj in enumerate(objects):
        obj.mask = owner == i
        total = full_masks[i].sum()
        if total == 0 or obj.mask.sum() < MIN_VISIBLE * total:
            ok = False
            continue
        ys, xs = np.nonzero(obj.mask)
        obj.box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        obj.keypoints = [_keypoint(x, y, obj.mask, res) for x, y in points[i]]
    return np.clip(image, 0, 255).astype(np.uint8), depth.astype(np.float32), ok


def _keypoint(x: float, y: float, mask: np.ndarray, res: int):
    """(x, y, visibility): 2 visible, 1 inside the image but hidden, 0 outside the image."""
    if not (0 <= x < res and 0 <= y < res):
        return (float(x), float(y), 0)
    return (float(x), float(y), 2 if mask[int(y), int(x)] else 1)

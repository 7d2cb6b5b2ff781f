"""Per-pixel ground truth of a rendered scene: surface normals and the class map.

Normals are in camera coordinates, x right, y up, z toward the viewer (a surface facing the camera is
(0, 0, 1)), unit length where there is a surface and the zero vector where there is none (the sky).
Each object is the solid its silhouette in render.py draws, seen under weak perspective (the renderer
scales each object by focal / depth): a cube shows its front face, a sphere its front hemisphere, a cone
and a cylinder their curved sides (and the cylinder its top disc, the upper ellipse); the ground plane
faces up. The world's depth map gives each object one depth (a card); `surface_depth` gives the depth of
the solids whose normals these are, so the two can be checked against each other by finite differences.
Everything is derived from the scene's objects, consuming no random draws.

The class map: each pixel's class index into CLASS_NAMES (sky, ground, then one class per shape).
"""
from __future__ import annotations

from functools import partial

import numpy as np

from unio.data.records import LazyArray
from unio.data.world.constants import HORIZON, SHAPES
from unio.data.world.render import _footprint, _pixel_centres

CLASS_NAMES = ("sky", "ground") + tuple(SHAPES)
UP = np.array([0.0, 1.0, 0.0], np.float32)


def _unit(x, y, z) -> np.ndarray:
    n = np.stack(np.broadcast_arrays(x, y, z), -1).astype(np.float32)          # (H, W, 3)
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def _side(offset: np.ndarray, radius, rise: float = 0.0) -> tuple:
    """A vertical surface of revolution at column offset `offset` from its axis, of `radius` there (pixels),
    its normal rising by `rise` (radius / height of a cone): (height toward the viewer, normals)."""
    radius = np.maximum(radius, 1e-6)
    sin = np.clip(offset / radius, -1, 1)
    cos = np.sqrt(1 - sin ** 2)
    return radius * cos, _unit(sin, np.full_like(sin, rise), cos)


def shape_surface(obj, res: int) -> tuple:
    """(h, normals) over the whole image for one object's solid: h (H, W) how far its surface stands out
    toward the viewer from its silhouette's plane, in pixels; normals (H, W, 3). Only meaningful inside the
    object's silhouette (render._shape_mask)."""
    cx, base, half, height = _footprint(obj, res)
    yy, xx = _pixel_centres(res)
    dx = xx - cx
    if obj.shape == "cube":                                   # the front face
        return np.zeros_like(xx), _unit(0 * xx, 0 * xx, 1 + 0 * xx)
    if obj.shape == "sphere":
        cy = base - half
        h = np.sqrt(np.maximum(half ** 2 - dx ** 2 - (yy - cy) ** 2, 0))
        return h, _unit(dx, cy - yy, h)
    if obj.shape == "cone":                                   # radius half at the base, 0 at the apex
        radius = half * np.clip((yy - (base - height)) / max(height, 1e-6), 0, 1)
        return _side(dx, radius, rise=half / max(height, 1e-6))
    w = 0.7 * half                                            # cylinder: body radius and cap (render.py)
    cap = 0.25 * w
    h, normals = _side(dx, np.full_like(xx, w))
    top = (dx / w) ** 2 + ((yy - (base - height + cap)) / cap) ** 2 <= 1
    return h, np.where(top[..., None], UP, normals)


def owners(objects: list, res: int) -> np.ndarray:
    """(H, W) index of the object each pixel shows (its visible mask), -1 for the background."""
    owner = np.full((res, res), -1, np.int64)
    for i, obj in enumerate(objects):
        owner[np.asarray(obj.mask, bool)] = i
    return owner


def _ground(res: int) -> np.ndarray:
    return (np.arange(res)[:, None] + 0.5 > HORIZON * res).repeat(res, 1)


def surface_normals(objects: list, res: int) -> np.ndarray:
    """(H, W, 3) float32 unit normals of what each pixel shows; zero on the sky."""
    normals = np.where(_ground(res)[..., None], UP, 0).astype(np.float32)
    owner = owners(objects, res)
    for i, obj in enumerate(objects):
        normals[owner == i] = shape_surface(obj, res)[1][owner == i]
    return normals


def surface_depth(objects: list, depth: np.ndarray, res: int) -> np.ndarray:
    """The scene's depth map with each object's card replaced by its solid's surface (metres): the depth
    the normals are the finite-difference normals of (x = (u - cx) s, y = -v s, z = -depth; s = depth / focal)."""
    out = np.array(depth, np.float32)
    owner = owners(objects, res)
    for i, obj in enumerate(objects):
        h = shape_surface(obj, res)[0]
        out[owner == i] = obj.depth - (h * obj.depth / res)[owner == i]      # focal = res pixels
    return out


def class_map(objects: list, res: int) -> np.ndarray:
    """(H, W) int64 index into CLASS_NAMES of what each pixel shows."""
    classes = _ground(res).astype(np.int64)                                 # sky 0, ground 1
    owner = owners(objects, res)
    for i, obj in enumerate(objects):
        classes[owner == i] = CLASS_NAMES.index(obj.shape)
    return classes


def pixel_maps(scene) -> dict:
    """The record keys of a scene's per-pixel ground truth: normals, classes (computed when first read)
    and class_names."""
    res = scene.image.shape[0]
    return {"normals": LazyArray(partial(surface_normals, scene.objects, res)),
            "classes": LazyArray(partial(class_map, scene.objects, res)), "class_names": list(CLASS_NAMES)}

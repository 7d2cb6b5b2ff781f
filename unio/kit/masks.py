"""Binary masks as images and within boxes: the (1, H, W) tensor a VQ-VAE encodes, a box filled as a mask,
and a mask's box region stretched to a square grid and pasted back (Mask R-CNN's box-relative masks)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def mask_image(mask: np.ndarray) -> torch.Tensor:
    """(H, W) bool -> (1, H, W) float in {0, 1}: what the VQ-VAE encodes."""
    return torch.from_numpy(np.asarray(mask, np.float32))[None]


def box_mask(box, height: int, width: int) -> np.ndarray:
    """A box (x1, y1, x2, y2) filled as a (height, width) bool mask (pixels whose centres lie inside)."""
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    x1, y1, x2, y2 = box
    return (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)


def _sample(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, mode: str = "bilinear",
            padding: str = "zeros") -> np.ndarray:
    """Samples of a (H, W) map at pixel coordinates (xs, ys) (pixel centres at +0.5); outside it,
    0 (`padding="zeros"`) or the nearest edge value ("border")."""
    h, w = image.shape
    grid = torch.from_numpy(np.stack(np.broadcast_arrays(2 * xs / w - 1, 2 * ys / h - 1), -1)).float()[None]
    src = torch.from_numpy(np.asarray(image, np.float32))[None, None]
    return F.grid_sample(src, grid, mode=mode, padding_mode=padding, align_corners=False)[0, 0].numpy()


def crop_to_box(image: np.ndarray, box, size: int) -> np.ndarray:
    """The region `box` (x1, y1, x2, y2, pixels) of a (H, W) mask, stretched to (size, size) (nearest
    pixel: a mask that fills its box stays all ones)."""
    x1, y1, x2, y2 = box
    centres = (np.arange(size) + 0.5) / size
    return _sample(image, (x1 + centres * (x2 - x1))[None, :], (y1 + centres * (y2 - y1))[:, None], "nearest")


def paste_from_box(crop: np.ndarray, box, height: int, width: int) -> np.ndarray:
    """crop_to_box's inverse: a (size, size) map of the box's region -> a (height, width) map, 0 outside it.
    A pixel whose centre lies on the box's edge takes the crop's edge value, which crop_to_box sampled
    from that very pixel: a box decoded from location bins has its edges on pixel centres (bin centres),
    and interpolating there with the zeros outside would halve the value, so an edge decoded a little
    under 1 fell below the threshold and every such mask lost a row and a column."""
    x1, y1, x2, y2 = box
    size_y, size_x = crop.shape
    xs = ((np.arange(width) + 0.5 - x1) / (x2 - x1) * size_x)[None, :]
    ys = ((np.arange(height) + 0.5 - y1) / (y2 - y1) * size_y)[:, None]
    return _sample(crop, xs, ys, padding="border") * box_mask(box, height, width)

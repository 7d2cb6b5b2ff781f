"""Image quality metrics with no downloaded network: PSNR and SSIM (Wang et al., 2004), optionally
inside a box; and a diversity measure over several samples of one prompt. Also a box's region blanked
or pasted from another image."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

BLANK = 128     # grey: what a blanked region holds


def pixel_box(box, height: int, width: int) -> tuple:
    """A box (x1, y1, x2, y2) in pixels -> integer (x1, y1, x2, y2) covering it, inside the image, never empty."""
    x1, y1 = int(math.floor(max(box[0], 0))), int(math.floor(max(box[1], 0)))
    x2, y2 = int(math.ceil(min(box[2], width))), int(math.ceil(min(box[3], height)))
    x1, y1 = min(x1, width - 1), min(y1, height - 1)
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


def crop(image: np.ndarray, box) -> np.ndarray:
    x1, y1, x2, y2 = pixel_box(box, *image.shape[:2])
    return image[y1:y2, x1:x2]


def blank(image: np.ndarray, box) -> np.ndarray:
    """A copy of `image` with the pixels of `box` (x1, y1, x2, y2) set to BLANK."""
    x1, y1, x2, y2 = pixel_box(box, *image.shape[:2])
    out = np.array(image, np.uint8, copy=True)
    out[y1:y2, x1:x2] = BLANK
    return out


def paste(generated: np.ndarray, original: np.ndarray, box) -> np.ndarray:
    """`original` with the pixels of `box` taken from `generated` (same size); all others unchanged."""
    x1, y1, x2, y2 = pixel_box(box, *original.shape[:2])
    out = np.array(original, np.uint8, copy=True)
    out[y1:y2, x1:x2] = generated[y1:y2, x1:x2]
    return out


def psnr(prediction: np.ndarray, gold: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB of two same-shaped images (uint8 scale by default), capped at 100."""
    mse = float(np.mean((np.asarray(prediction, np.float64) - np.asarray(gold, np.float64)) ** 2))
    return 100.0 if mse <= 1e-10 else min(100.0, 10 * math.log10(peak ** 2 / mse))


def ssim(prediction: np.ndarray, gold: np.ndarray, peak: float = 255.0, window: int = 7) -> float:
    """Mean SSIM of two same-shaped (H, W[, C]) images, uniform `window` (as scikit-image's default),
    per channel; the window shrinks to fit images smaller than it."""
    a = torch.as_tensor(np.asarray(prediction, np.float64))
    b = torch.as_tensor(np.asarray(gold, np.float64))
    a, b = (x[..., None] if x.dim() == 2 else x for x in (a, b))
    a, b = a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None]                     # (1, C, H, W)
    k = max(1, min(window, a.shape[-1], a.shape[-2]))
    pool = lambda x: F.avg_pool2d(x, k, stride=1)
    mu_a, mu_b = pool(a), pool(b)
    n = k * k
    cov = n / max(n - 1, 1)                      # sample covariances, as scikit-image
    var_a = (pool(a * a) - mu_a ** 2) * cov
    var_b = (pool(b * b) - mu_b ** 2) * cov
    var_ab = (pool(a * b) - mu_a * mu_b) * cov
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * var_ab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def diversity(samples: list) -> float:
    """Mean pairwise absolute pixel difference (0..1) among samples of one prompt: 0 when all are equal."""
    if len(samples) < 2:
        return 0.0
    x = [np.asarray(s, np.float64) / 255.0 for s in samples]
    pairs = [(i, j) for i in range(len(x)) for j in range(i + 1, len(x))]
    return float(np.mean([np.abs(x[i] - x[j]).mean() for i, j in pairs]))

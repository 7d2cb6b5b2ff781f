"""Metric helpers shared by task plugins."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def depth_errors(pred: np.ndarray, gold: np.ndarray, valid: np.ndarray | None = None, min_depth: float = 1e-3,
                 max_depth: float | None = None) -> dict:
    """RMSE (metres), AbsRel, mean |log10 error| and delta < 1.25, 1.25^2, 1.25^3 (Eigen et al.) over the
    valid pixels (all, without a mask); with `max_depth`, only gold depths within min_depth..max_depth
    count and predictions are clipped to that range (the NYUv2 protocol, 0.001-10 m)."""
    pred, gold = np.asarray(pred, np.float64), np.asarray(gold, np.float64)
    if pred.shape != gold.shape:
        raise ValueError(f"predicted depth {pred.shape} and gold depth {gold.shape} differ in size")
    if max_depth is not None:
        in_range = (gold >= min_depth) & (gold <= max_depth)
        valid = in_range if valid is None else np.asarray(valid, bool) & in_range
        pred = np.clip(pred, None, max_depth)
    if valid is not None and not np.asarray(valid, bool).all():
        pred, gold = pred[np.asarray(valid, bool)], gold[np.asarray(valid, bool)]
    pred, gold = np.clip(pred, min_depth, None), np.clip(gold, min_depth, None)
    ratio = np.maximum(pred / gold, gold / pred)
    return {"rmse": float(np.sqrt(np.mean((pred - gold) ** 2))),
            "absrel": float(np.mean(np.abs(pred - gold) / gold)),
            "delta1": float(np.mean(ratio < 1.25)),
            "delta2": float(np.mean(ratio < 1.25 ** 2)),
            "delta3": float(np.mean(ratio < 1.25 ** 3)),
            "log10": float(np.mean(np.abs(np.log10(pred) - np.log10(gold))))}

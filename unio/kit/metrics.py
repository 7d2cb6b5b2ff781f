"""Metric helpers shared by task plugins."""
from __future__ import annotations

import math
import re
from collections import Counter
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


def mask_ious(predicted: np.ndarray, gold: np.ndarray) -> tuple:
    """(intersection, union) pixel counts of two bool masks of the same size."""
    predicted, gold = np.asarray(predicted, bool), np.asarray(gold, bool)
    if predicted.shape != gold.shape:
        raise ValueError(f"predicted mask {predicted.shape} and gold mask {gold.shape} differ in size")
    return int((predicted & gold).sum()), int((predicted | gold).sum())


def mask_metrics(pairs) -> dict:
    """mIoU, cumulative IoU, P@0.5 and P@0.7 over [(predicted, gold)] bool masks. Two empty masks agree (IoU 1)."""
    counts = [mask_ious(p, g) for p, g in pairs]
    ious = np.array([i / u if u else 1.0 for i, u in counts])
    inter, union = sum(i for i, _ in counts), sum(u for _, u in counts)
    return {"miou": float(ious.mean()), "ciou": float(inter / union) if union else 1.0,
            "p@0.5": float((ious >= 0.5).mean()), "p@0.7": float((ious >= 0.7).mean())}


def content_scores(predictions, golds) -> dict:
    """Precision, recall and F1 of the objects the captions name, each with all its attributes (its
    whole category phrase, e.g. "large red cube"), against the objects of each image: a caption that
    names a wrong colour, size or shape gets no credit for that object however fluent it reads.
    Mentions are found by the categories seen anywhere in the split, longest first."""
    names = sorted({c for gold in golds for c in gold}, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b", re.I)
    matched = named = wanted = 0
    for prediction, gold in zip(predictions, golds):
        said = Counter(m.lower() for m in pattern.findall(prediction))
        truth = Counter(c.lower() for c in gold)
        matched += sum((said & truth).values())
        named += sum(said.values())
        wanted += sum(truth.values())
    precision, recall = matched / max(named, 1), matched / max(wanted, 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"content_precision": precision, "content_recall": recall, "content_f1": f1}


def pck(predicted, gold, alpha: float) -> float:
    """The fraction of labelled gold points (v > 0) predicted within alpha * the longer side of the object's box."""
    hits = []
    for points, (gold_points, box, _) in zip(predicted, gold):
        reach = alpha * max(box[2] - box[0], box[3] - box[1])
        hits += [math.dist(p[:2], g[:2]) <= reach for p, g in zip(points, gold_points) if g[2] > 0]
    return float(np.mean(hits)) if hits else 0.0


def accuracy_by_target(right: Sequence[bool], examples) -> dict:
    """{target: the share right among the examples asking it}, for each target the examples hold, sorted."""
    return {target: float(np.mean([r for r, ex in zip(right, examples) if ex.target == target]))
            for target in sorted({ex.target for ex in examples})}

"""Reading an image with the world's own palette and geometry: which object colours it shows, how many
objects (connected regions of one palette colour) and in what left-to-right order. Metrics for generated
images that need no downloaded network: a pixel is an object's colour when it is close to that palette
colour under the renderer's shading (x0.75..1.25), and farther from the sky and the ground."""
from __future__ import annotations

import numpy as np

from unio.data.world.constants import COLORS

SHADES = np.linspace(0.7, 1.3, 13)
MAX_ERROR = 45.0       # RGB distance beyond which a pixel is not read as a palette colour
MIN_AREA = 5           # pixels of one colour that make an object (at 64 px the smallest object has ~20)


def _references(height: int) -> tuple:
    """Candidate colours (K, 3) and their labels (-1 background, else the palette index)."""
    refs, labels = [], []
    for index, rgb in enumerate(COLORS.values()):
        refs += [np.asarray(rgb, np.float32) * s for s in SHADES]
        labels += [index] * len(SHADES)
    sky = np.asarray([150, 190, 235], np.float32)
    ground = np.asarray([120, 115, 100], np.float32)
    refs += [sky * s for s in np.linspace(0.7, 1.1, 9)] + [ground * s for s in np.linspace(0.6, 1.3, 15)]
    labels += [-1] * 24
    return np.clip(np.stack(refs), 0, 255), np.asarray(labels)


def colour_map(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) int: the palette index each pixel reads as, -1 for none."""
    refs, labels = _references(image.shape[0])
    pixels = np.asarray(image, np.float32).reshape(-1, 1, 3)
    distance = np.linalg.norm(pixels - refs[None], axis=-1)                       # (HW, K)
    best = distance.argmin(1)
    out = np.where(distance[np.arange(len(best)), best] <= MAX_ERROR, labels[best], -1)
    return out.reshape(image.shape[:2])


def _components(mask: np.ndarray) -> list:
    """4-connected components of a bool mask: [(area, mean column)]."""
    seen, out = np.zeros_like(mask), []
    h, w = mask.shape
    for y, x in zip(*np.nonzero(mask)):
        if seen[y, x]:
            continue
        stack, cols = [(y, x)], []
        seen[y, x] = True
        while stack:
            cy, cx = stack.pop()
            cols.append(cx)
            for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        out.append((len(cols), float(np.mean(cols))))
    return out


def read_objects(image: np.ndarray, min_area: int | None = None) -> list:
    """The objects an image shows, left to right: [(colour name, centre column, area)]. `min_area`
    scales with the image (MIN_AREA at 64 px)."""
    names = list(COLORS)
    labels = colour_map(image)
    area = min_area if min_area is not None else max(1, round(MIN_AREA * image.shape[0] * image.shape[1] / 64 ** 2))
    found = [(names[c], x, a) for c in range(len(names)) for a, x in _components(labels == c) if a >= area]
    return sorted(found, key=lambda o: o[1])


def colour_scores(read: list, gold: list) -> tuple:
    """(precision, recall, F1) of the set of colours read against the set asked for."""
    said, truth = {c for c, *_ in read}, set(gold)
    hit = len(said & truth)
    precision = hit / len(said) if said else float(not truth)
    recall = hit / len(truth) if truth else 1.0
    return precision, recall, (2 * precision * recall / (precision + recall) if precision + recall else 0.0)


def order_score(read: list, gold: list) -> float | None:
    """Of the pairs of differently coloured objects asked for left to right (`gold` colour names in
    order), both colours found once each, the fraction in the right order; None when no pair counts."""
    first = {}
    for c, x, _ in read:
        first.setdefault(c, []).append(x)
    pos = {c: xs[0] for c, xs in first.items() if len(xs) == 1}
    pairs = [(a, b) for i, a in enumerate(gold) for b in gold[i + 1:]
             if a != b and gold.count(a) == 1 and gold.count(b) == 1 and a in pos and b in pos]
    return None if not pairs else float(np.mean([pos[a] < pos[b] for a, b in pairs]))


def palette_metrics(images, colours) -> dict:
    """Colour-set precision / recall / F1, count accuracy and left-to-right order accuracy of images
    against the colours asked for (left to right); examples without colours are left out."""
    scored = [(read_objects(np.asarray(im, np.uint8)), gold) for im, gold in zip(images, colours) if gold]
    if not scored:
        return {"color_f1": float("nan")}
    prf = np.array([colour_scores(read, gold) for read, gold in scored])
    orders = [o for o in (order_score(read, gold) for read, gold in scored) if o is not None]
    return {"color_precision": float(prf[:, 0].mean()), "color_recall": float(prf[:, 1].mean()),
            "color_f1": float(prf[:, 2].mean()),
            "count_accuracy": float(np.mean([len(read) == len(gold) for read, gold in scored])),
            "order_accuracy": float(np.mean(orders)) if orders else float("nan"), "n": len(scored)}

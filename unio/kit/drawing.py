"""Rendering results onto their images (PIL only)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def colourise(values: np.ndarray) -> np.ndarray:
    """A float map -> (H, W, 3) uint8, near bright and far dark."""
    v = np.asarray(values, np.float64)
    span = max(v.max() - v.min(), 1e-9)
    t = 1 - (v - v.min()) / span
    return (np.stack([t, t ** 2, 0.3 + 0.4 * (1 - t)], -1) * 255).astype(np.uint8)


def draw_result(result) -> Image.Image:
    if result.image is None:          # a text-only task: the prompt, and the answer below it
        base = Image.new("RGB", (320, 28), "white")
        ImageDraw.Draw(base).text((2, 1), result.prompt[:60], fill=(90, 90, 90))
    else:
        base = Image.fromarray(result.image).convert("RGB")
    if result.depth is not None:
        return _side_by_side(base, Image.fromarray(colourise(result.depth)))
    if result.generated_image is not None:
        return _side_by_side(base, Image.fromarray(np.asarray(result.generated_image, np.uint8)))
    if result.mask is not None:
        overlay = np.asarray(base).copy()
        overlay[result.mask] = (0.5 * overlay[result.mask] + [0, 127, 0]).astype(np.uint8)
        base = Image.fromarray(overlay)
    draw = ImageDraw.Draw(base)
    for i, box in enumerate(result.boxes or []):
        draw.rectangle([float(v) for v in box], outline=(255, 0, 0), width=max(1, base.width // 100))
        caption = box_caption(result, i)
        if caption:
            draw.text((float(box[0]) + 1, float(box[1]) + 1), caption, fill=(255, 255, 255))
    for x, y, visible in result.keypoints or []:
        if visible:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(255, 0, 255))
    if result.text:
        canvas = Image.new("RGB", (base.width, base.height + 14), "white")
        canvas.paste(base, (0, 0))
        ImageDraw.Draw(canvas).text((2, base.height + 1), result.text[:80], fill=(0, 0, 0))
        return canvas
    return base


def box_caption(result, i: int) -> str:
    """Box i's label and score, where the result has them ("large red cube 0.93")."""
    label = result.labels[i] if result.labels and i < len(result.labels) else ""
    score = f"{result.scores[i]:.2f}" if result.scores and i < len(result.scores) else ""
    return " ".join(x for x in (label, score) if x)


def _side_by_side(a: Image.Image, b: Image.Image) -> Image.Image:
    b = b.resize(a.size)
    canvas = Image.new("RGB", (a.width * 2, a.height))
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width, 0))
    return canvas

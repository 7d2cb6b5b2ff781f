"""Segmentation: the mask of one object, as a binary image of VQ-VAE codes (Unified-IO 2's form).

Two prompt forms, one task: referring segmentation ('Segment "the red cube".') where the record has
referring expressions, and box-conditioned segmentation ('Segment the object in the region.' with the
object's box as `region=`, location tokens after the prompt). Training picks the referring form with
probability `referring` where it can, else the box form; sources without `refexps` train the box form.

The answer is the object's visible mask in the model's square frame, encoded as a single-channel
image by the shared VQ-VAE: exactly (image_size / downsample)^2 codes in raster order, as a depth
map is. Decoding gives a [0, 1] map that is resized to the original image and thresholded at
`threshold`. Codes of gold masks are computed in batches and cached per (record, object).
Metrics, in original pixels: mean IoU, cumulative IoU (all intersections over all unions), precision
at IoU 0.5 and 0.7; mean IoU per form and per shape where objects have a `shape` attribute.
"""
from __future__ import annotations

import numpy as np
import torch

from unio.image_codes import CodeCache, decode_grid, image_grammar
from unio.records import refexp_of
from unio.registries import register_task
from unio.task import Example, Grammar, NothingToAsk, Target, choose_prompt

REFERRING = ['Segment "{}".', 'Give the mask of "{}".', 'Which pixels belong to "{}"?']
BOX = ["Segment the object in the region.", "Give the mask of the object in the region.",
       "Which pixels belong to the object in the region?"]


def mask_image(mask: np.ndarray) -> torch.Tensor:
    """(H, W) bool -> (1, H, W) float in {0, 1}: what the VQ-VAE encodes."""
    return torch.from_numpy(np.asarray(mask, np.float32))[None]


def box_mask(box, height: int, width: int) -> np.ndarray:
    """A box (x1, y1, x2, y2) filled as a (height, width) bool mask (pixels whose centres lie inside)."""
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    x1, y1, x2, y2 = box
    return (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)


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


def _objects_with_masks(record) -> list:
    """Indices of the objects that can be asked for: a box and a non-empty mask, not a COCO crowd region."""
    return [i for i, o in enumerate(record["objects"]) if o.get("mask") is not None and o.get("box") is not None
            and not (o.get("attributes") or {}).get("iscrowd") and np.asarray(o["mask"], bool).any()]


@register_task("segment")
class Segmentation:
    name = "segment"
    output = "mask"
    prompts = REFERRING + BOX          # the first: unio.segment(image, "the red cube"); with region= the box form
    requires = ("image", "objects")     # + refexps for the referring form (used where a record has them)
    photometric = ("brightness", "contrast")   # a referring phrase may name a colour
    headline = "miou"
    also_report = ("ciou", "p@0.5")
    cache_size = 200_000

    def __init__(self, referring: float = 0.5, threshold: float = 0.5):
        if not 0 <= referring <= 1:
            raise ValueError(f"referring must be a probability in [0, 1], got {referring}")
        self.referring, self.threshold = referring, threshold
        self._codes = CodeCache("vq", self.cache_size, to_tensor=mask_image)

    def example(self, record, rng) -> Example:
        candidates = _objects_with_masks(record)
        if not candidates:
            raise NothingToAsk(f"record {record.get('id', '?')!r} has no object with a non-empty mask to segment")
        refexps = [refexp_of(r) for r in record.get("refexps") or () if refexp_of(r)[1] in candidates]
        use_text = bool(refexps) and rng.random() < self.referring
        if use_text:
            text, index = refexps[int(rng.integers(len(refexps)))]
            prompt, region = choose_prompt(REFERRING, rng, text), None
        else:
            index = candidates[int(rng.integers(len(candidates)))]
            prompt, region = choose_prompt(BOX, rng), list(record["objects"][index]["box"])
        obj = record["objects"][index]
        shape = (obj.get("attributes") or {}).get("shape")
        mask = np.asarray(obj["mask"], bool)
        return Example(self.name, record["image"], prompt, mask, region=region,
                       meta={"key": (record.get("id"), index, mask.shape[0]), "object": index,
                             "form": "referring" if use_text else "box", "shape": shape,
                             "box": list(obj["box"])})

    # -- targets: VQ codes of the mask, cached -------------------------------------------------
    def targets(self, examples, mods):
        codes = self._codes([ex.target for ex in examples], [ex.meta.get("key") for ex in examples], mods)
        return [Target(c) for c in codes]

    def grammar(self, mods, image_size: int) -> Grammar:
        return image_grammar(mods, "vq", image_size)

    # -- answers -----------------------------------------------------------------------------
    def decode(self, ids, mods, example) -> np.ndarray:
        """Generated codes -> the mask's [0, 1] map over the model's frame (thresholded in to_original)."""
        h, w = example.image.shape[:2]
        return decode_grid(ids, mods, "vq", h, w, channels=1)[0].numpy()

    def to_original(self, soft_mask, frame) -> np.ndarray:
        """A [0, 1] map (or bool mask) over the model's frame -> a bool mask of the original image's size."""
        return frame.map_to_original(np.asarray(soft_mask, np.float32)) > self.threshold

    def to_result(self, mask) -> dict:
        return {"mask": np.asarray(mask, bool)}

    def gold(self, example) -> np.ndarray:
        """The gold mask in the original image's pixels."""
        if example.record is not None and example.record.get("objects"):
            return np.asarray(example.record["objects"][example.meta["object"]]["mask"], bool)
        return example.frame.mask_to_original(example.target) if example.frame else np.asarray(example.target, bool)

    def evaluate(self, predictions, examples) -> dict:
        pairs = [(p, self.gold(ex)) for p, ex in zip(predictions, examples)]
        metrics = mask_metrics(pairs)
        for key in ("form", "shape"):
            groups: dict = {}
            for pair, ex in zip(pairs, examples):
                if ex.meta.get(key) is not None:
                    groups.setdefault(ex.meta[key], []).append(pair)
            metrics.update({f"miou_{name}": mask_metrics(group)["miou"] for name, group in sorted(groups.items())})
        return metrics

    def training_texts(self, example) -> list:
        return [example.prompt]

    def training_images(self, example) -> list:
        return [mask_image(example.target)]

    def baselines(self):
        return {"gold_box": _GoldBox, "vq_ceiling": _VQRoundTrip}


class _GoldBox:
    """The object's gold box, filled: what a perfect box predictor gives as a mask."""

    def __init__(self, train_examples, mods=None):
        pass

    def __call__(self, example):
        h, w = example.target.shape
        return box_mask(example.meta["box"], h, w).astype(np.float32)


class _VQRoundTrip:
    """The gold mask through VQ encode -> decode: the ceiling the shared VQ-VAE allows."""

    def __init__(self, train_examples, mods):
        self.mods = mods

    def __call__(self, example):
        vq = self.mods["vq"]
        return vq.decode(vq.encode(mask_image(example.target)), channels=1)[0, 0].numpy()

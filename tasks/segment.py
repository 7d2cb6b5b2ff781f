"""Segmentation: the mask of one object, as a binary image of VQ-VAE codes (Unified-IO 2's form).

Two prompt forms, one task: referring segmentation ('Segment "the red cube".') where the record has
referring expressions, and box-conditioned segmentation ('Segment the object in the region.' with the
object's box as `region=`, location tokens after the prompt). Training picks the referring form with
probability `referring` where it can, else the box form; sources without `refexps` train the box form.

The answer is the object's visible mask encoded as a single-channel image by the shared VQ-VAE:
exactly (image_size / downsample)^2 codes in raster order, as a depth map is. `mask_in` says of what:
"image" (the default, Unified-IO 2's form): the mask over the model's square frame; "box": the
object's box first (4 location tokens, the same for both prompt forms), then the mask of that box's
region stretched to the full grid (Mask R-CNN's box-relative mask: a cube's mask is all ones wherever
it stands, and a small object gets the whole grid). Decoding gives a [0, 1] map over the frame (in
"box", pasted back into the decoded box) that is resized to the original image and thresholded at
`threshold`. Codes of gold masks are computed in batches and cached per (record, object).
Metrics, in original pixels: mean IoU, cumulative IoU (all intersections over all unions), precision
at IoU 0.5 and 0.7; mean IoU per form and per shape where objects have a `shape` attribute, and per
referring phrase that names the shape or not (`phrase_kind`).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from unio.image_codes import CodeCache, decode_grid, image_grammar
from unio.records import phrase_kind, refexp_of
from unio.registries import register_task
from unio.task import Example, Grammar, NothingToAsk, Segment, Target, choose_prompt

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

    def __init__(self, referring: float = 0.5, threshold: float = 0.5, mask_in: str = "image"):
        if not 0 <= referring <= 1:
            raise ValueError(f"referring must be a probability in [0, 1], got {referring}")
        if mask_in not in ("image", "box"):
            raise ValueError(f"mask_in must be 'image' (the mask over the frame) or 'box' (the box, then the "
                             f"mask within it), got {mask_in!r}")
        self.referring, self.threshold, self.mask_in = referring, threshold, mask_in
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
                             "phrase": phrase_kind(text, shape) if use_text else None, "box": list(obj["box"])})

    @property
    def tokenizer_signature(self):
        """The VQ-VAE learns from masks within their boxes in "box": another cached tokenizer."""
        return "mask_in=box" if self.mask_in == "box" else None

    # -- targets: VQ codes of the mask (after its box's location tokens in "box"), cached -----------
    def targets(self, examples, mods):
        if self.mask_in == "image":
            codes = self._codes([ex.target for ex in examples], [ex.meta.get("key") for ex in examples], mods)
            return [Target(c) for c in codes]
        boxes = [self.answer_box(ex, mods) for ex in examples]
        crops = [crop_to_box(ex.target, box, ex.image.shape[0]) for ex, (_, box) in zip(examples, boxes)]
        keys = [None if ex.meta.get("key") is None else (*ex.meta["key"], "box") for ex in examples]
        codes = self._codes(crops, keys, mods)
        return [Target(mods.vocab.to_global("coordinates", ids) + c) for (ids, _), c in zip(boxes, codes)]

    @staticmethod
    def answer_box(example, mods) -> tuple:
        """(its 4 location ids, the box they decode to): the box as the answer states it, whose region the mask fills."""
        h, w = example.image.shape[:2]
        coords = mods["coordinates"]
        ids = coords.encode_box(example.meta["box"], w, h)
        return ids, coords.decode_box(ids, w, h)

    def answer_prefix(self, example, mods) -> list | None:
        """In "box", a prompt's region is the answer's box: its location tokens are forced, the codes follow."""
        if self.mask_in != "box" or example.region is None:
            return None
        h, w = example.image.shape[:2]
        return mods.vocab.to_global("coordinates", mods["coordinates"].encode_box(example.region, w, h))

    def grammar(self, mods, image_size: int) -> Grammar:
        codes = image_grammar(mods, "vq", image_size)
        if self.mask_in == "image":
            return codes
        box = Segment("coordinates", 4, 4, local=(0, mods["coordinates"].num_bins), box=True)
        return Grammar((box, *codes.segments))

    # -- answers -----------------------------------------------------------------------------
    def decode(self, ids, mods, example) -> np.ndarray:
        """Generated codes -> the mask's [0, 1] map over the model's frame (thresholded in to_original)."""
        h, w = example.image.shape[:2]
        if self.mask_in == "image":
            return decode_grid(ids, mods, "vq", h, w, channels=1)[0].numpy()
        location = mods.vocab.to_local("coordinates", list(ids[:4]))
        box = mods["coordinates"].decode_box(location, w, h) if len(location) == 4 else [0.0, 0.0, float(w), float(h)]
        return paste_from_box(decode_grid(ids[4:], mods, "vq", h, w, channels=1)[0].numpy(), box, h, w)

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
        """Mask metrics over all examples, and mIoU per form, per shape, per form and shape
        ("miou_referring_sphere") and per referring phrase that does or does not name the shape
        ("miou_referring_sphere_names_shape")."""
        pairs = [(p, self.gold(ex)) for p, ex in zip(predictions, examples)]
        metrics = mask_metrics(pairs)
        for keys in (("form",), ("shape",), ("form", "shape"), ("form", "shape", "phrase")):
            groups: dict = {}
            for pair, ex in zip(pairs, examples):
                if all(ex.meta.get(k) is not None for k in keys):
                    groups.setdefault("_".join(ex.meta[k] for k in keys), []).append(pair)
            metrics.update({f"miou_{name}": mask_metrics(group)["miou"] for name, group in sorted(groups.items())})
        return metrics

    def training_texts(self, example) -> list:
        return [example.prompt]

    def training_images(self, example) -> list:
        if self.mask_in == "box":
            return [mask_image(crop_to_box(example.target, example.meta["box"], example.image.shape[0]))]
        return [mask_image(example.target)]

    def baselines(self):
        return {"gold_box": _GoldBox, "vq_ceiling": lambda train, mods: _VQRoundTrip(train, mods, self)}


class _GoldBox:
    """The object's gold box, filled: what a perfect box predictor gives as a mask."""

    def __init__(self, train_examples, mods=None):
        pass

    def __call__(self, example):
        h, w = example.target.shape
        return box_mask(example.meta["box"], h, w).astype(np.float32)


class _VQRoundTrip:
    """The gold answer through the tokenizers and back (VQ encode -> decode; in "box", the box's bins too):
    the ceiling the codes allow."""

    def __init__(self, train_examples, mods, task):
        self.mods, self.task = mods, task

    def __call__(self, example):
        if self.task.mask_in == "box":
            return self.task.decode(self.task.targets([example], self.mods)[0], self.mods, example)
        vq = self.mods["vq"]
        return vq.decode(vq.encode(mask_image(example.target)), channels=1)[0, 0].numpy()

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

from unio.data.records import phrase_kind, refexp_of
from unio.kit.answers import ImageAnswer, ImageCodes, baseline, box_from_ids, box_segment, box_to_ids, through_tokens
from unio.kit.masks import box_mask, crop_to_box, mask_image, paste_from_box
from unio.kit.metrics import mask_metrics
from unio.registries import register_task
from unio.task import Example, Grammar, NothingToAsk, Target, choose_prompt

REFERRING = ['Segment "{}".', 'Give the mask of "{}".', 'Which pixels belong to "{}"?']
BOX = ["Segment the object in the region.", "Give the mask of the object in the region.",
       "Which pixels belong to the object in the region?"]


def _objects_with_masks(record) -> list:
    """Indices of the objects that can be asked for: a box and a non-empty mask, not a COCO crowd region."""
    return [i for i, o in enumerate(record["objects"]) if o.get("mask") is not None and o.get("box") is not None
            and not (o.get("attributes") or {}).get("iscrowd") and np.asarray(o["mask"], bool).any()]


@register_task
class Segmentation(ImageAnswer):
    name, hub_task = "segment", "image-segmentation"   # registry name; task type on the hub
    output = "mask"
    prompts = REFERRING + BOX          # the first: unio.segment(image, "the red cube"); with region= the box form
    region_prompts = BOX               # the box form asks about region=; the referring form names its object
    requires = ("image", "objects")     # + refexps for the referring form (used where a record has them)
    photometric = ("brightness", "contrast")   # a referring phrase may name a colour
    headline = "miou"
    also_report = ("ciou", "p@0.5")

    def __init__(self, referring: float = 0.5, threshold: float = 0.5, mask_in: str = "image"):
        if not 0 <= referring <= 1:
            raise ValueError(f"referring must be a probability in [0, 1], got {referring}")
        if mask_in not in ("image", "box"):
            raise ValueError(f"mask_in must be 'image' (the mask over the frame) or 'box' (the box, then the "
                             f"mask within it), got {mask_in!r}")
        self.referring, self.threshold, self.mask_in = referring, threshold, mask_in
        self.codes = ImageCodes(to_tensor=mask_image, channels=1, kind="mask")

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
            codes = self.codes.targets([ex.target for ex in examples], [ex.meta.get("key") for ex in examples], mods)
            return [Target(c) for c in codes]
        boxes = [self.answer_box(ex, mods) for ex in examples]
        crops = [crop_to_box(ex.target, box, ex.image.shape[0]) for ex, (_, box) in zip(examples, boxes)]
        keys = [None if ex.meta.get("key") is None else (*ex.meta["key"], "box") for ex in examples]
        codes = self.codes.targets(crops, keys, mods)
        return [Target(ids + c) for (ids, _), c in zip(boxes, codes)]

    @staticmethod
    def answer_box(example, mods) -> tuple:
        """(its 4 global location ids, the box they decode to): the box as the answer states it, whose region
        the mask fills."""
        ids = box_to_ids(example.meta["box"], mods, example)
        return ids, box_from_ids(ids, mods, example)

    def answer_prefix(self, example, mods) -> list | None:
        """In "box", a prompt's region is the answer's box: its location tokens are forced, the codes follow."""
        if self.mask_in != "box" or example.region is None:
            return None
        return box_to_ids(example.region, mods, example)

    def grammar(self, mods, image_size: int) -> Grammar:
        codes = self.codes.grammar(mods, image_size)
        return codes if self.mask_in == "image" else Grammar((box_segment(mods), *codes.segments))

    # -- answers -----------------------------------------------------------------------------
    def decode(self, ids, mods, example) -> np.ndarray:
        """Generated codes -> the mask's [0, 1] map over the model's frame (thresholded in to_original)."""
        h, w = example.image.shape[:2]
        if self.mask_in == "image":
            return self.codes.decode(ids, mods, h, w)
        return paste_from_box(self.codes.decode(ids[4:], mods, h, w), box_from_ids(ids[:4], mods, example), h, w)

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

    def training_images(self, example) -> list:
        if self.mask_in == "box":
            return [mask_image(crop_to_box(example.target, example.meta["box"], example.image.shape[0]))]
        return [mask_image(example.target)]

    def baselines(self):
        # vq_ceiling: the gold answer through the tokenizers and back (in "box", the box's bins too)
        ceiling = through_tokens(self) if self.mask_in == "box" else \
            (lambda example, mods: self.codes.round_trip(example.target, mods))
        return {"gold_box": baseline(gold_box), "vq_ceiling": baseline(ceiling)}


def gold_box(example, mods=None) -> np.ndarray:
    """The object's gold box, filled: what a perfect box predictor gives as a mask (a baseline)."""
    return box_mask(example.meta["box"], *example.target.shape).astype(np.float32)

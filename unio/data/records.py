"""Records: what every source yields, and how a record is fitted to the model's input (the Frame).

A record is a plain mapping. Only `image` is required (and not even that for a task whose encoder reads
no image, `reads_image = False`: text pairs); a source fills what it has:

    image        the picture: PIL image, (H, W[, C]) array, (C, H, W) tensor or a path; any size
    id           a stable identifier, unique within the source ("world/train/17", a COCO image id ...)
    source       the source's name
    captions     [str, ...]                      all reference captions
    questions    [[question, [answers], type]]   the canonical answer first
    objects      [{box: [x1, y1, x2, y2] pixels, mask: (H, W) bool, keypoints: [[x, y, v]],
                   keypoint_names: [str], skeleton: [[i, j]],
                   category: str, attributes: {name: value}}]   any of the keys may be absent
                 a mask may be array-like (COCO's are decoded on np.asarray); keypoint_names name the
                 keypoints in order and skeleton pairs them (0-based indices into keypoints; COCO's
                 file writes them 1-based)
    refexps      [[text, object index]]
    depth        (H, W) metres;  depth_valid (H, W) bool;  max_depth: the source's normalising range
    normals      (H, W, 3) unit surface normals in camera coordinates (x right, y up, z toward the viewer);
                 the zero vector where there is no surface (the sky) or none is known
    classes      (H, W) int: each pixel's class, an index into class_names; -1 where unlabelled
    class_names  [str, ...]: the source's classes, the same list (and order) in every record
    relations    [[subject index, predicate, object index]]   relations between `objects` (Visual Genome's
                 relationships; the world's left of, in front of, larger than, same color as ...)
    entailment   [[premise, hypothesis, label]]   text pairs (label: entailment, neutral or contradiction); a
                 sequence: the world's is a LazyList, drawn when first read (index it or list() it; not a list)
    premise, hypothesis, sentence, label, label_names   one text example (GLUE-style rows; no image needed)

Columnar sources (Arrow / `datasets`) cannot hold mixed lists, so a question may also be a mapping
{question, answers, type} and a referring expression {text, object}: `question_of` / `refexp_of`
read either form.

`frame_record` resizes and pads the image exactly as `unio.run` does and maps every annotation
(boxes, masks, keypoints, depth) with it, so records of any size and aspect ratio train. A mask is
mapped (and a COCO mask decoded) only when a task reads it: a framed object with a mask is a
read-only mapping (`FramedObject`) whose `mask` is the (size, size) bool array once asked for.

Per-pixel maps (normals, classes) may be array-like values computed when first read (`LazyArray`), and
stay so when framed; a list few tasks read (the world's entailment pairs) may be a `LazyList`.

An image that cannot be decoded (a truncated file) is a `BadRecord` naming its file and record.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
from PIL import Image

from unio.data.bad_records import BadRecord
from unio.kit.images import Frame, UnreadableImage, to_rgb_array
from unio.task import Example

SCHEMA = ("image", "id", "source", "captions", "questions", "objects", "refexps", "depth", "depth_valid",
          "max_depth", "relations", "entailment", "premise", "hypothesis", "sentence", "label")
SCHEMA += ("normals", "classes", "class_names")


def frame_record(record: Mapping, size: int) -> tuple:
    """(the record in the model's square frame, its Frame). The original record is not changed."""
    if "image" not in record:
        raise KeyError(f"record {record.get('id', '?')!r} has no 'image'; every record needs one")
    image = record_image(record)
    frame = Frame(image.shape[0], image.shape[1], size)
    framed = dict(record)
    if frame.identity:
        framed["image"] = image
        return framed, frame
    framed["image"] = frame.to_model(image)
    if record.get("objects"):
        framed["objects"] = [frame_object(o, frame) for o in record["objects"]]
    if record.get("depth") is not None:
        framed["depth"], framed["depth_valid"] = frame_depth(record, frame)
    framed.update(frame_pixel_maps(record, frame))
    return framed, frame


def record_image(record: Mapping) -> np.ndarray:
    """The record's image as (H, W, 3) uint8; one that cannot be decoded is a BadRecord."""
    try:
        return to_rgb_array(record["image"])
    except UnreadableImage as error:
        image = record["image"]
        where = image if isinstance(image, (str, Path)) else f"source {record.get('source', '?')}"
        raise BadRecord(where, record.get("id", "?"), str(error).replace(f" from {image}", "")) from None


def frame_object(obj: Mapping, frame: Frame) -> Mapping:
    """The object in the model's frame: boxes and keypoints mapped now, a mask when it is read."""
    out = dict(obj)
    if obj.get("box") is not None:
        out["box"] = [float(v) * frame.scale for v in obj["box"]]
    if obj.get("keypoints") is not None:
        out["keypoints"] = [[float(x) * frame.scale, float(y) * frame.scale, int(v)] for x, y, v in obj["keypoints"]]
    if obj.get("mask") is not None:
        return FramedObject(out, frame)
    return out


class FramedObject(Mapping):
    """A framed object whose `mask` (still the original's in `fields`) is mapped to the model's frame,
    and decoded if it is a lazy COCO mask, the first time it is read; the other keys are as given.
    `"mask" in obj`, len() and iteration read no mask; `dict(obj)` reads it (a plain framed dict)."""

    def __init__(self, fields: dict, frame: Frame):
        self._fields, self._frame = fields, frame          # _frame: None once the mask is mapped

    def __getitem__(self, key: str):
        if key == "mask" and self._frame is not None:
            self._fields["mask"] = self._frame.mask_to_model(np.asarray(self._fields["mask"], bool))
            self._frame = None
        return self._fields[key]

    def __contains__(self, key) -> bool:
        return key in self._fields

    def __iter__(self) -> Iterator:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def copy(self) -> dict:
        return dict(self)

    def __repr__(self) -> str:
        pending = " (mask not mapped yet)" if self._frame is not None else ""
        return f"FramedObject({ {k: v for k, v in self._fields.items() if k != 'mask'} }{pending})"


def frame_depth(record: Mapping, frame: Frame) -> tuple:
    """Depth resized (nearest: no invented depths between objects) and padded; padding is invalid."""
    depth = np.asarray(record["depth"], np.float32)
    valid = record.get("depth_valid")
    valid = np.isfinite(depth) & (depth > 0) if valid is None else np.asarray(valid, bool)
    framed = frame.map_to_model(np.where(valid, depth, 0).astype(np.float32), Image.NEAREST)
    return framed, frame.mask_to_model(valid)


def frame_pixel_maps(record: Mapping, frame: Frame) -> dict:
    """Normals (zero in the padding) and classes (-1 in the padding) in the model's frame, resized nearest,
    each computed when first read."""
    out = {}
    if record.get("normals") is not None:
        out["normals"] = LazyArray(partial(_frame_normals, record["normals"], frame))
    if record.get("classes") is not None:
        out["classes"] = LazyArray(partial(_frame_classes, record["classes"], frame))
    return out


def _frame_normals(normals, frame: Frame) -> np.ndarray:
    normals = np.asarray(normals, np.float32)
    return np.stack([frame.map_to_model(normals[..., c], Image.NEAREST) for c in range(3)], -1)


def _frame_classes(classes, frame: Frame) -> np.ndarray:
    shifted = frame.map_to_model(np.asarray(classes, np.float32) + 1, Image.NEAREST)     # padding 0 -> -1
    return np.rint(shifted).astype(np.int64) - 1


def question_of(item) -> tuple:
    """(question, [answers], type) from [q, answers, type] or {question, answers, type}."""
    if isinstance(item, Mapping):
        question, answers, kind = item["question"], item.get("answers", item.get("answer")), item.get("type")
    else:
        question, answers, kind = (list(item) + [None])[:3]
    return question, [answers] if isinstance(answers, str) else list(answers), kind


def refexp_of(item) -> tuple:
    """(text, object index) from [text, index] or {text, object}."""
    if isinstance(item, Mapping):
        return item["text"], int(item["object"])
    return item[0], int(item[1])


def phrase_kind(text: str, shape: str | None) -> str | None:
    """Whether a referring phrase names its object's shape ("names_shape": the world names it only where
    the colour alone is ambiguous, so the shape must be seen) or not ("no_shape"); None without a shape."""
    if not shape:
        return None
    return "names_shape" if re.search(rf"\b{re.escape(shape)}\b", text) else "no_shape"


def missing_keys(required, keys) -> list:
    return [k for k in required if k not in keys]


def make_example(task, record, image_size: int, rng: np.random.Generator, keep_record: bool = True) -> Example:
    """The one way a record becomes an example: framed to the model's input, then the task's. A record
    without an image (a GLUE row) makes an example of a task that reads none, with no frame."""
    if "image" not in record and not getattr(task, "reads_image", True):
        framed, frame = dict(record), None
    else:
        framed, frame = frame_record(record, image_size)
    example = task.example(framed, rng)
    example.frame, example.source = frame, record.get("source")
    example.record = record if keep_record else None
    example.meta.setdefault("id", record.get("id"))
    return example


class LazyArray:
    """An array-like record value computed by `make()` the first time it is read (np.asarray), then kept:
    per-pixel ground truth that most tasks never read (the world's normals, a panoptic PNG's classes)."""

    def __init__(self, make):
        self._make, self._value = make, None

    def __array__(self, dtype=None, copy=None):
        if self._value is None:
            self._value = np.asarray(self._make())
        return self._value if dtype is None else self._value.astype(dtype)


class LazyList(Sequence):
    """A list-like record value computed by `make()` the first time it is read (its length, an item, a
    loop), then kept: annotations few tasks read (the world's entailment pairs)."""

    def __init__(self, make):
        self._make, self._value = make, None

    def _list(self) -> list:
        if self._value is None:
            self._value, self._make = list(self._make()), None   # the maker (and what it holds) let go
        return self._value

    def __getitem__(self, index):
        return self._list()[index]

    def __len__(self) -> int:
        return len(self._list())

    def __eq__(self, value) -> bool:
        return self._list() == (value._list() if isinstance(value, LazyList) else value)

    def __repr__(self) -> str:
        return repr(self._list())

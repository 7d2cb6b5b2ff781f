"""COCO panoptic segmentation from its official files, as class maps: `--source pan=coco_panoptic:PATH`.

    PATH/annotations/panoptic_{split}.json   images, categories (things and stuff) and per image its PNG's
                                             `file_name` and `segments_info` [{id, category_id, iscrowd, ...}]
    PATH/annotations/panoptic_{split}/       the PNGs (or PATH/panoptic_{split}/, or `masks=FOLDER` holding
                                             the split folders): segment id = R + 256 G + 256^2 B, 0 unlabelled
    PATH/{split}/{file_name}                 the images (or `images=FOLDER` holding the split folders)

One record per annotated image (in the file's order): `classes` (H, W), each pixel its segment's category
as an index into `class_names` (the file's categories in order, things and stuff alike; crowd regions keep
their category), -1 where unlabelled or where the PNG holds an id its `segments_info` does not list; the
PNG is read when `classes` is first read. Splits are named as the files name them (train2017, val2017);
'train' is the train split, 'validation' and 'test' the val split.
"""
from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from unio.data.readers.common import BadRecord, LazySplit, ReaderSource, first_dir, image_file
from unio.data.readers.json_items import JsonItems
from unio.data.records import LazyArray
from unio.registries import register_source

_FILE = re.compile(r"^panoptic_(.+)\.json$")


def panoptic_files(root: Path) -> dict:
    """{split: path} of the panoptic_{split}.json files in PATH/annotations (or PATH)."""
    found = {}
    for folder in (root / "annotations", root):
        for path in sorted(folder.glob("panoptic_*.json")) if folder.is_dir() else []:
            found.setdefault(_FILE.match(path.name).group(1), path)
    return found


def segment_ids(png: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 panoptic PNG -> (H, W) segment ids (R + 256 G + 256^2 B)."""
    rgb = np.asarray(png, np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def read_classes(path: Path, segments: dict) -> np.ndarray:
    """The class map of one PNG: {segment id: class index} applied, -1 elsewhere."""
    ids = segment_ids(np.asarray(Image.open(path).convert("RGB")))
    classes = np.full(ids.shape, -1, np.int64)
    for segment, index in segments.items():
        classes[ids == segment] = index
    return classes


@register_source("coco_panoptic")
class CocoPanopticSource(ReaderSource):
    """Class maps from COCO panoptic annotations of each split found under `path`."""
    keys = ("image", "id", "source", "classes", "class_names")
    role_defaults = {"train": ["train2017"], "validation": ["val2017"], "test": ["val2017"]}

    def __init__(self, path, name: str = "coco_panoptic", images=None, masks=None, train=None, validation=None,
                 test=None):
        self.root, self.name = Path(path), name
        self.images, self.masks = (None if p is None else Path(p) for p in (images, masks))
        self.files = panoptic_files(self.root)
        self._init_splits(sorted(self.files), {"train": train, "validation": validation, "test": test})

    def build_split(self, name: str) -> LazySplit:
        items = JsonItems(self.files[name])
        categories = [items.item(span) for span in items.lists.get("categories", [])]
        if not categories:
            raise BadRecord(self.files[name], "categories", "the file lists no categories")
        index = {c["id"]: i for i, c in enumerate(categories)}
        names = [str(c["name"]) for c in categories]
        images = {}
        for span in items.lists.get("images", []):
            image = items.item(span)
            images[image["id"]] = image
        annotations = [items.item(span) for span in items.lists.get("annotations", [])]
        folder = first_dir(*(None if base is None else base / name for base in (self.images, self.root,
                                                                                 self.root / "images")), self.images)
        pngs = first_dir(*(None if base is None else base / f"panoptic_{name}"
                           for base in (self.masks, self.root / "annotations", self.root)))
        problems = [BadRecord(self.files[name], f"annotation of image {a.get('image_id')}", "its image_id is not "
                              "among the file's images") for a in annotations if a.get("image_id") not in images]
        known = [a for a in annotations if a.get("image_id") in images]
        return LazySplit(known, lambda ann: self.record(ann, images[ann["image_id"]], folder, pngs, name, index, names),
                         problems)

    def record(self, ann: dict, image: dict, folder: Path, pngs: Path, split: str, index: dict, names: list) -> dict:
        rid = f"{split}/{image['id']}"
        unknown = [s["category_id"] for s in ann.get("segments_info", []) if s.get("category_id") not in index]
        if unknown:
            raise BadRecord(self.files[split], rid, f"segments name categories {unknown} that the file does not list")
        segments = {int(s["id"]): index[s["category_id"]] for s in ann.get("segments_info", [])}
        png = pngs / ann["file_name"]
        if not png.is_file():
            raise BadRecord(png, f"{self.name}/{rid}", "panoptic PNG not found")
        return {"image": image_file(folder / image["file_name"], self.name, rid), "id": f"{self.name}/{rid}",
                "source": self.name, "image_id": image["id"], "class_names": names,
                "classes": LazyArray(partial(read_classes, png, segments))}

"""COCO 2014 / 2017 from its official files: `--source coco=coco:PATH`.

    PATH/annotations/captions_{split}.json          all reference captions of each image
    PATH/annotations/instances_{split}.json         boxes [x, y, w, h], polygon or RLE segmentations, iscrowd
    PATH/annotations/person_keypoints_{split}.json  17 [x, y, v] per person (v: 0 absent, 1 hidden, 2 visible)
    PATH/{split}/{file_name}                        the images (or `images=FOLDER` holding the split folders)

One record per image (in the annotation file's order); images are read and masks decoded only when
a record is asked for. Splits are named as the files name them (train2017, val2014 ...); 'train' is
the train split, 'validation' and 'test' the val split (COCO's test annotations are not public).
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from unio.data.readers.common import (
    BadRecord,
    LazyMask,
    LazySplit,
    ReaderSource,
    first_dir,
    image_file,
    xywh_box,
)
from unio.data.readers.json_items import JsonItems, read_item
from unio.registries import register_source

KINDS = ("captions", "instances", "person_keypoints")
_INDEXES: dict = {}   # CocoIndex.of's, by their files
_FILE = re.compile(r"^(captions|instances|person_keypoints)_(.+)\.json$")


def annotation_files(root: Path) -> dict:
    """{split: {kind: path}} from the file names in PATH/annotations (or PATH)."""
    found = defaultdict(dict)
    for folder in (root / "annotations", root):
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            match = _FILE.match(path.name)
            if match:
                found[match.group(2)].setdefault(match.group(1), path)
    return dict(found)


class CocoIndex:
    """One split's files indexed once: images by id, captions and annotations grouped by image, each as
    the byte span of its JSON (json_items.py), parsed when a record asks for it; annotations of images the
    files do not list are left out, each a BadRecord in `problems`."""

    def __init__(self, files: dict):
        self.files, self.problems, self.categories = files, [], {}
        self._images, self._captions, self._objects, self._keypoints = {}, defaultdict(list), defaultdict(list), {}
        for kind in KINDS:
            if kind in files:
                self._read(kind, files[kind])

    def _read(self, kind: str, path: Path) -> None:
        annotations = []   # (image id, annotation id): checked once the file's images are all known
        items = JsonItems(path, lambda key, item: annotations.append((item.get("image_id"), item.get("id")))
                          if key == "annotations" else None)
        for span in items.lists.get("images", []):
            self._images.setdefault(items.item(span)["id"], (path, span))
        for span in items.lists.get("categories", []):   # person_keypoints' adds the keypoint names and skeleton
            category = items.item(span)
            self.categories.setdefault(category["id"], {}).update(category)
        for (image_id, ann_id), span in zip(annotations, items.lists.get("annotations", [])):
            if image_id not in self._images:
                self.problems.append(BadRecord(path, f"annotation {ann_id}", f"image_id {image_id!r} is not "
                                               f"among the file's images"))
            elif kind == "captions":
                self._captions[image_id].append((path, span))
            elif kind == "instances" or "instances" not in self.files:
                self._objects[image_id].append((path, span))
            if kind == "person_keypoints" and image_id in self._images:
                self._keypoints[ann_id] = (path, span)

    @classmethod
    def of(cls, files: dict) -> "CocoIndex":
        """The index of these files, built once per process (several sources may read one file)."""
        key = tuple(sorted((kind, str(Path(path).resolve())) for kind, path in files.items()))
        if key not in _INDEXES:
            _INDEXES[key] = cls(files)
        return _INDEXES[key]

    @property
    def image_ids(self) -> list:
        return list(self._images)

    def image(self, image_id) -> dict | None:
        found = self._images.get(image_id)
        return None if found is None else read_item(*found)

    def captions(self, image_id) -> list:
        return [read_item(*found)["caption"].strip() for found in self._captions.get(image_id, [])]

    def objects(self, image_id) -> list:
        """[(file, annotation)] of the image."""
        return [(path, read_item(path, span)) for path, span in self._objects.get(image_id, [])]

    def keypoints(self, ann_id) -> list | None:
        found = self._keypoints.get(ann_id)
        return None if found is None else read_item(*found)["keypoints"]


@register_source("coco")
class CocoSource(ReaderSource):
    """COCO captions, instances and person keypoints of each split found under `path`."""
    role_defaults = {"train": ["train2017", "train2014"], "validation": ["val2017", "val2014"],
                     "test": ["val2017", "val2014"]}

    def __init__(self, path, name: str = "coco", images=None, masks: bool = True, train=None, validation=None,
                 test=None):
        self.root, self.name, self.masks = Path(path), name, bool(masks)
        self.images = None if images is None else Path(images)
        self.files = annotation_files(self.root)
        kinds = {k for f in self.files.values() for k in f}
        self.keys = ("image", "id", "source") + (("captions",) if "captions" in kinds else ()) + \
                    (("objects",) if kinds - {"captions"} else ())
        self._init_splits(sorted(self.files), {"train": train, "validation": validation, "test": test})

    def build_split(self, name: str) -> LazySplit:
        index = CocoIndex.of(self.files[name])
        folder = first_dir(*(None if base is None else base / name for base in (self.images, self.root,
                                                                                 self.root / "images")), self.images)
        return LazySplit(index.image_ids, lambda image_id: self.record(index, folder, name, image_id),
                         index.problems)

    def record(self, index: CocoIndex, folder: Path, split: str, image_id) -> dict:
        image = index.image(image_id)
        record = {"image": image_file(folder / image["file_name"], self.name, f"{split}/{image_id}"),
                  "id": f"{self.name}/{split}/{image_id}", "source": self.name, "image_id": image_id}
        if "captions" in self.keys:
            record["captions"] = index.captions(image_id)
        if "objects" in self.keys:
            record["objects"] = [coco_object(index, image, path, ann, self.masks) for path, ann in index.objects(image_id)]
        return record


def coco_object(index: CocoIndex, image: dict, path: Path, ann: dict, masks: bool = True) -> dict:
    """One COCO annotation -> an object of the record schema (box corners, lazy mask, keypoints)."""
    category = index.categories.get(ann.get("category_id"), {})
    obj = {"box": xywh_box(ann.get("bbox"), path, f"annotation {ann.get('id')}"),
           "category": category.get("name", str(ann.get("category_id"))),
           "attributes": {"iscrowd": int(ann.get("iscrowd", 0)), "category_id": ann.get("category_id"),
                          "area": ann.get("area"), "annotation_id": ann.get("id")}}
    if masks and ann.get("segmentation"):
        obj["mask"] = LazyMask(ann["segmentation"], image["height"], image["width"])
    points = index.keypoints(ann.get("id"))
    if points is not None:
        obj["keypoints"] = [[float(x), float(y), int(v)] for x, y, v in zip(points[0::3], points[1::3], points[2::3])]
        obj.update(keypoint_skeleton(category, len(obj["keypoints"]), path))
    return obj


def keypoint_skeleton(category: dict, n: int, path: Path) -> dict:
    """The category's keypoint names and skeleton, its 1-based pairs made 0-based (what it has of them)."""
    out = {}
    if category.get("keypoints"):
        out["keypoint_names"] = [str(name) for name in category["keypoints"]]
    if category.get("skeleton"):
        pairs = [[int(a) - 1, int(b) - 1] for a, b in category["skeleton"]]
        if not all(0 <= i < n for pair in pairs for i in pair):
            raise BadRecord(path, f"category {category.get('id')}", f"skeleton {category['skeleton']} names a "
                            f"keypoint outside 1..{n}")
        out["skeleton"] = pairs
    return out

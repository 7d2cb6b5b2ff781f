"""Visual Genome's relationships from its official files: `--source vg=visual_genome:PATH`.

    PATH/relationships.json    [{image_id, relationships: [{relationship_id, predicate, subject, object}]}],
                               subject and object {object_id, x, y, w, h, name (or names: [..])}
    PATH/image_data.json       [{image_id (id in v1.0), url, width, height, coco_id, flickr_id}]
    PATH/VG_100K/{id}.jpg, PATH/VG_100K_2/{id}.jpg   the images (the folder the url names; or `images=FOLDER`)

One record per image that has relationships: `objects` (every subject and object, once per object_id: box
corners, name as category) and `relations` [[subject index, predicate, object index]]; names and
predicates lower-cased and stripped ("ON" -> "on"), as the scene-graph papers read them. A relationship
whose subject or object box has no area is left out. Visual Genome has no official split: 'train' is the
first 70% of the images in the file's order and 'test' the rest (Xu et al. 2017 split 70/30 too, by
their own list of images); 'validation' is 'test'. The relationships file is indexed as byte spans and an
image's entry parsed only when its record is asked for (json_items.py): the real file is 700 MB.
"""
from __future__ import annotations

import math
from pathlib import Path

from unio.data.readers.common import LazySplit, ReaderSource, image_file, load_json
from unio.data.readers.json_items import list_spans, read_item
from unio.registries import register_source

FOLDERS = ("VG_100K", "VG_100K_2")


def image_id_of(entry: dict):
    return entry.get("image_id", entry.get("id"))


def object_name(obj: dict) -> str:
    names = obj.get("names") or [obj.get("name", "object")]
    return str(names[0]).strip().lower()


def box_of(obj: dict) -> list | None:
    """[x1, y1, x2, y2] from VG's x, y, w, h; None for a box without area."""
    x, y, w, h = (float(obj.get(k, 0)) for k in ("x", "y", "w", "h"))
    return [x, y, x + w, y + h] if w > 0 and h > 0 and all(map(math.isfinite, (x, y, w, h))) else None


def object_key(obj: dict):
    """An object's identity: its object_id, else its box and name."""
    return obj.get("object_id", (obj.get("x"), obj.get("y"), obj.get("w"), obj.get("h"), object_name(obj)))


def scene_graph(entry: dict) -> tuple:
    """(objects, relations) of one image's relationships."""
    objects, index, relations = [], {}, []
    for rel in entry.get("relationships", []):
        ends = [rel["subject"], rel["object"]]
        if any(box_of(e) is None for e in ends):
            continue
        for end in ends:
            if object_key(end) not in index:
                index[object_key(end)] = len(objects)
                objects.append({"box": box_of(end), "category": object_name(end),
                                "attributes": {"object_id": end.get("object_id")}})
        relations.append([index[object_key(ends[0])], str(rel["predicate"]).strip().lower(), index[object_key(ends[1])]])
    return objects, relations


@register_source("visual_genome")
class VisualGenomeSource(ReaderSource):
    """Visual Genome images with their relationships (scene graphs)."""
    keys = ("image", "id", "source", "objects", "relations")
    role_defaults = {"train": ["train"], "validation": ["test"], "test": ["test"]}

    def __init__(self, path, name: str = "visual_genome", images=None, train_share: float = 0.7, train=None,
                 validation=None, test=None):
        self.root, self.name = Path(path), name
        self.images = Path(images) if images is not None else self.root
        for needed in ("relationships.json", "image_data.json"):
            if not (self.root / needed).is_file():
                raise FileNotFoundError(f"source {name!r}: no {needed} in {self.root} (Visual Genome's layout: "
                                        "relationships.json, image_data.json, VG_100K/, VG_100K_2/)")
        self.file, self.info, ids = self.root / "relationships.json", {}, []
        self.spans = list_spans(self.file, lambda item: ids.append(image_id_of(item)))
        for entry in load_json(self.root / "image_data.json"):
            self.info[image_id_of(entry)] = entry
        cut = int(round(len(ids) * float(train_share)))
        order = list(zip(ids, self.spans))
        self.parts = {"train": order[:cut], "test": order[cut:]}
        self._init_splits(["train", "test"], {"train": train, "validation": validation, "test": test})

    def build_split(self, name: str) -> LazySplit:
        return LazySplit(self.parts[name], lambda item: self.record(name, *item))

    def record(self, split: str, image_id, span) -> dict:
        objects, relations = scene_graph(read_item(self.file, span))
        return {"image": image_file(self.image_path(image_id), self.name, f"{split}/{image_id}"),
                "id": f"{self.name}/{split}/{image_id}", "source": self.name, "image_id": image_id,
                "objects": objects, "relations": relations}

    def image_path(self, image_id) -> Path:
        """The image where its url's folder puts it (VG_100K or VG_100K_2), else wherever it is found."""
        url = str(self.info.get(image_id, {}).get("url", ""))
        named = url.rstrip("/").split("/")[-2] if url.count("/") >= 2 else None
        candidates = [self.images / folder / f"{image_id}.jpg" for folder in dict.fromkeys([named, *FOLDERS]) if folder]
        return next((c for c in candidates if c.is_file()), candidates[0])



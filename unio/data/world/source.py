"""The embedded world as a source: scene i of a split -> a record of the schema (unio/data/records.py)."""
from __future__ import annotations

from functools import partial

import numpy as np

from unio.data.records import LazyList
from unio.data.world.constants import MAX_DEPTH, SPLITS
from unio.data.world.scene import World
from unio.data.world.surfaces import pixel_maps
from unio.registries import register_source

SPLIT_LENGTH = 1_000_000     # the world has a scene at every index; this many are addressed
KEYS = ("image", "id", "source", "captions", "questions", "objects", "refexps", "depth", "depth_valid", "max_depth",
        "relations", "entailment")
KEYS += ("normals", "classes", "class_names")     # per-pixel ground truth (surfaces.py)


def scene_record(scene, name: str = "world") -> dict:
    objects = [{"box": list(o.box), "mask": o.mask, "keypoints": [list(p) for p in o.keypoints],
                "category": o.name, "attributes": {"size": o.size, "color": o.color, "shape": o.shape}}
               for o in scene.objects]
    return {"image": scene.image, "id": f"{name}/{scene.split}/{scene.index}", "source": name,
            "captions": [scene.caption], "questions": [[q, [a], t] for q, a, t in scene.questions],
            "objects": objects, "refexps": [list(r) for r in scene.refexps], "depth": scene.depth,
            "depth_valid": np.ones(scene.depth.shape, bool), "max_depth": MAX_DEPTH,
            "relations": [list(r) for r in scene.relations],
            "entailment": LazyList(partial(_pairs_as_lists, scene.entailment)),   # drawn when a task reads it
            **pixel_maps(scene)}


def _pairs_as_lists(pairs) -> list:
    return [list(pair) for pair in pairs]


class WorldSplit:
    """Records of one split of the world, rendered on demand."""

    def __init__(self, split: str, resolution: int, max_objects: int, name: str):
        self.world, self.name = World(split, resolution=resolution, max_objects=max_objects), name

    def __len__(self) -> int:
        return SPLIT_LENGTH

    def __getitem__(self, index: int) -> dict:
        if not 0 <= int(index) < SPLIT_LENGTH:
            raise IndexError(f"world record {index} is outside 0..{SPLIT_LENGTH - 1}")
        return scene_record(self.world[int(index)], self.name)


@register_source("world")
class WorldSource:
    """Procedural scenes at the model's resolution (`image_size`), with every annotation of the schema."""
    keys = KEYS
    max_depth = MAX_DEPTH

    def __init__(self, image_size: int = 64, max_objects: int = 4, name: str = "world"):
        self.name, self.resolution, self.max_objects = name, int(image_size), int(max_objects)

    def splits(self) -> list:
        return list(SPLITS)

    def split(self, name: str) -> WorldSplit:
        if name not in SPLITS:
            raise KeyError(f"the world has no split {name!r}; splits: {', '.join(SPLITS)}")
        return WorldSplit(name, self.resolution, self.max_objects, self.name)

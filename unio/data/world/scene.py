"""The embedded world: procedural scenes with full ground truth, deterministic from (split, index).

Objects (shape, colour, size) stand on a ground plane under a horizon, each at its own metric
depth; they are drawn far to near, so nearer ones occlude. A pinhole camera sets each object's
row and apparent size from its depth. Everything a task needs is in the returned Scene.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from unio.data.world import render
from unio.data.world.constants import COLORS, FAR, NEAR, SHAPES, SIZES, SPLITS
from unio.data.world.language import describe_scene
from unio.data.world.relations import describe_relations


@dataclass
class WorldObject:
    shape: str
    color: str
    size: str
    depth: float                   # metres from the camera
    x: float                       # centre column, fraction of width
    box: tuple = ()                # visible (x1, y1, x2, y2) in pixels, x2/y2 exclusive
    mask: np.ndarray | None = None  # (H, W) bool, visible pixels
    keypoints: list = field(default_factory=list)  # [(x, y, visibility)] centre first

    @property
    def name(self) -> str:
        return f"{self.size} {self.color} {self.shape}"


@dataclass
class Scene:
    split: str
    index: int
    image: np.ndarray              # (H, W, 3) uint8
    depth: np.ndarray              # (H, W) float32 metres
    objects: list
    caption: str = ""
    questions: list = field(default_factory=list)   # [(question, answer, type)]
    refexps: list = field(default_factory=list)     # [(expression, object index)]
    relations: list = field(default_factory=list)   # [(subject index, predicate, object index)] that hold
    entailment: list = field(default_factory=list)  # [(premise, hypothesis, label)]


class World:
    """Scenes of 1..max_objects objects at `resolution` pixels; `world[i]` is scene i of `split`."""

    def __init__(self, split: str = "train", resolution: int = 64, max_objects: int = 4, min_objects: int = 1):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
        if resolution < 16:
            raise ValueError(f"resolution must be at least 16 pixels, got {resolution}")
        if not 1 <= min_objects <= max_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
        self.split, self.resolution = split, resolution
        self.min_objects, self.max_objects = min_objects, max_objects

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([SPLITS[self.split], int(index), 7919])

    def __getitem__(self, index: int) -> Scene:
        rng = self.rng(index)
        for _ in range(50):  # resample layouts where an object is mostly hidden
            objects = self._sample_objects(rng)
            image, depth, ok = render.draw(objects, self.resolution, rng)
            if ok:
                break
        scene = Scene(self.split, int(index), image, depth, objects)
        describe_scene(scene, rng)
        describe_relations(scene)      # from the layout and an rng of its own: the stream above is unchanged
        return scene

    def stream(self, start: int = 0, stop: int | None = None):
        index = start
        while stop is None or index < stop:
            yield self[index]
            index += 1

    def _sample_objects(self, rng: np.random.Generator) -> list:
        count = int(rng.integers(self.min_objects, self.max_objects + 1))
        objects = []
        for _ in range(count):
            objects.append(WorldObject(
                shape=SHAPES[rng.integers(len(SHAPES))], color=list(COLORS)[rng.integers(len(COLORS))],
                size=list(SIZES)[rng.integers(len(SIZES))], depth=float(rng.uniform(NEAR, FAR)),
                x=float(rng.uniform(0.1, 0.9))))
        return objects

"""Image classification: "What is this?" -> the category of the image's object (the largest one where
there are several), ranked among answer options by likelihood (`categories`; default: the world's 48
"size colour shape" names; `None` generates freely). Evaluated on single-object scenes:
`--tasks classify@world_single` (configs/data/world_single.yaml). Metric: accuracy.
"""
from __future__ import annotations

from itertools import product

from unio.data.world.constants import COLORS, SHAPES, SIZES
from unio.kit.answers import ShortTextAnswer
from unio.registries import register_task
from unio.task import Example, choose_prompt

WORLD_CATEGORIES = [f"{size} {color} {shape}" for size, color, shape in product(SIZES, COLORS, SHAPES)]


def area(box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


@register_task
class Classify(ShortTextAnswer):
    name, hub_task = "classify", "image-classification"   # registry name; task type on the hub
    output = "text"
    prompts = ["What is this?", "What object is this?", "Classify the object in the image."]
    requires = ("image", "objects")

    def __init__(self, categories: list | None = tuple(WORLD_CATEGORIES)):
        self.categories = list(categories) if categories is not None else None

    def example(self, record, rng) -> Example:
        objects = [o for o in record["objects"] if o.get("box") is not None] or list(record["objects"])
        main = max(objects, key=lambda o: area(o["box"]) if o.get("box") is not None else 0.0)
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng), str(main.get("category", "object")))

    def answer_options(self, example):
        return self.categories

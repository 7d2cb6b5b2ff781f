"""Region classification: "What is the category of the object in the region?" with a region (a box
given as location tokens after the prompt) -> the object's category. Generated under a text grammar,
or, with `categories` set (a list of names), ranked among them by likelihood. Metric: accuracy.
"""
from __future__ import annotations

from unio.kit.answers import ShortTextAnswer
from unio.registries import register_task
from unio.task import Example, choose_prompt, pick


@register_task
class RegionClass(ShortTextAnswer):
    name = "region_class"
    hub_task = "image-classification"
    output = "text"
    prompts = ["What is the category of the object in the region?", "What kind of object is in the region?"]
    region_prompts = prompts           # every prompt asks about the box given as region=
    requires = ("image", "objects")

    def __init__(self, categories: list | None = None):
        self.categories = categories

    def example(self, record, rng) -> Example:
        obj = pick([o for o in record["objects"] if o.get("box") is not None], rng, record, "object with a box")
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng), str(obj.get("category", "object")),
                       region=list(obj["box"]))

    def answer_options(self, example):
        return self.categories

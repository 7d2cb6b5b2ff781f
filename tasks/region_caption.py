"""Region captioning: "What does the region describe?" with a region (a box given as location tokens
after the prompt) -> a description of the object there: its `description` where the record has one,
else its category with an article ("a large red cube" on the world).

    unio.run("What does the region describe?", image, region=[x1, y1, x2, y2])   # original pixels

Metrics: exact match, and CIDEr-D / BLEU-4 through pycocoevalcap.
"""
from __future__ import annotations

import numpy as np

from unio.kit.answers import ShortTextAnswer, text_scores
from unio.registries import register_task
from unio.task import Example, choose_prompt, pick


def description(obj) -> str:
    if obj.get("description"):
        return str(obj["description"])
    category = str(obj.get("category", "object"))
    return ("an " if category[:1].lower() in "aeiou" else "a ") + category


def pick_object(record, rng) -> dict:
    return pick([o for o in record["objects"] if o.get("box") is not None], rng, record, "object with a box")


@register_task
class RegionCaption(ShortTextAnswer):
    baseline_name = "most_frequent"
    name, hub_task = "region_caption", "image-to-text"   # registry name; task type on the hub
    output = "text"
    prompts = ["What does the region describe?", "Describe the region.", "What is in the region?"]
    region_prompts = prompts           # every prompt asks about the box given as region= (unio/infer/calls.py)
    requires = ("image", "objects")
    headline = "exact_match"
    max_tokens = 12

    def example(self, record, rng) -> Example:
        obj = pick_object(record, rng)
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng), description(obj),
                       region=list(obj["box"]))

    def evaluate(self, predictions, examples) -> dict:
        exact = float(np.mean([p == ex.target for p, ex in zip(predictions, examples)]))
        return {"exact_match": exact, **text_scores(list(predictions), [[ex.target] for ex in examples])}

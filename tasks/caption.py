"""Image captioning: the image -> one sentence.

Metrics: BLEU-4, METEOR (where Java runs it), ROUGE-L and CIDEr-D over all reference captions,
through pycocoevalcap after its PTB tokenisation, as the COCO caption evaluation computes them;
and, where the source lists its objects, content precision / recall / F1: the objects a caption names
with all their attributes, against the image's objects (CIDEr-D against one templated reference
rewards the template, even with a wrong colour).
"""
from __future__ import annotations

from unio.kit.answers import ShortTextAnswer, text_scores
from unio.kit.metrics import content_scores
from unio.registries import register_task
from unio.task import Example, choose_prompt, pick


def _categories(example) -> list:
    objects = (example.record or {}).get("objects") or []
    return [o["category"] for o in objects if o.get("category")] if objects else []


@register_task
class Caption(ShortTextAnswer):
    name, hub_task = "caption", "image-to-text"   # registry name; task type on the hub
    output = "text"
    prompts = ["What does the image describe?", "Write a caption for the image.", "Describe this image."]
    # open questions about the whole image: unio.run answers them with a caption of what is there
    aliases = ["What is in the image?", "What is in this image?", "What do you see?", "What can you see?",
               "Describe the image.", "What is this image?", "What's in the image?", "What is in the picture?"]
    requires = ("image", "captions")
    headline, also_report = "cider", ("content_f1",)
    # twice the examples of a task at weight 1: captions learn the shapes they name from their own examples,
    # and lose them at weight 1 in a mixture that trains them from step 0 (docs/experiments.md, session 37)
    weight = 2.0
    max_tokens, baseline_name = 48, "most_frequent"

    def example(self, record, rng) -> Example:
        prompt = choose_prompt(self.prompts, rng)
        captions = list(record["captions"])
        target = captions[0] if len(captions) == 1 else pick(captions, rng, record, "caption")
        return Example(self.name, record["image"], prompt, target, {"references": captions})

    def evaluate(self, predictions, examples) -> dict:
        scores = text_scores(list(predictions), [ex.meta["references"] for ex in examples], rouge=True, meteor=True)
        golds = [_categories(ex) for ex in examples]
        if all(golds):   # only where the source lists its objects' categories
            scores.update(content_scores(predictions, golds))
        return scores

"""Counting objects: the worked example of a task plugin (docs/plugins.md) (one file, loaded by path).

"How many objects are in the image?" -> a number written in digits ("3").
"""
from unio.kit.answers import ShortTextAnswer
from unio.registries import register_task
from unio.task import Example, choose_prompt


@register_task                          # registered under its `name`
class Count(ShortTextAnswer):           # text targets, grammar, decoding, accuracy and the majority baseline
    name = "count"                      # the registry name, used by --tasks
    output = "text"                     # decode() returns text; unio.run puts it in result.text
    hub_task = "visual-question-answering"
    prompts = ["How many objects are in the image?", "Count the objects in the image."]
    requires = ("image", "objects")     # the record keys it reads: a source without them is refused
    max_tokens = 3                      # a well-formed answer: 1 to 3 text tokens, then EOS

    def example(self, record, rng) -> Example:
        """One training or evaluation example from a record (already in the model's frame)."""
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng), str(len(record["objects"])))

    def evaluate(self, predictions, examples) -> dict:
        correct = [p == ex.target for p, ex in zip(predictions, examples)]
        return {"accuracy": sum(correct) / max(len(correct), 1)}

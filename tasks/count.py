"""Counting objects: the README's worked example of a task plugin (one file, loaded by path).

"How many objects are in the image?" -> a number written in digits ("3").
"""
from unio.registries import register_task
from unio.task import Example, Grammar, Segment, choose_prompt


@register_task("count")
class Count:
    name = "count"                      # the registry name, used by --tasks
    output = "text"                     # decode() returns text; unio.run puts it in result.text
    prompts = ["How many objects are in the image?", "Count the objects in the image."]
    requires = ("image", "objects")     # the record keys it reads: a source without them is refused
    headline = "accuracy"

    def example(self, record, rng) -> Example:
        """One training or evaluation example from a record (already in the model's frame)."""
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng), str(len(record["objects"])))

    def targets(self, examples, mods):
        """Gold answers as ids of the unified vocabulary (EOS is added by unio)."""
        return [mods.text_ids(ex.target) for ex in examples]

    def grammar(self, mods, image_size):
        """A well-formed answer: 1 to 3 text tokens, then EOS."""
        return Grammar((Segment("text", 1, 3),))

    def decode(self, ids, mods, example=None) -> str:
        return mods.text_from_ids(ids).strip()

    def evaluate(self, predictions, examples) -> dict:
        correct = [p == ex.target for p, ex in zip(predictions, examples)]
        return {"accuracy": sum(correct) / max(len(correct), 1)}

    def training_texts(self, example):
        return [example.prompt, example.target]

    def training_images(self, example):
        return []

    def baselines(self):
        return {"majority": _Majority}


class _Majority:
    def __init__(self, train_examples, mods=None):
        answers = [ex.target for ex in train_examples]
        self.answer = max(set(answers), key=answers.count)

    def __call__(self, example):
        return self.answer

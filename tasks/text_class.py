"""Sentence classification, a text-only task (no image: the encoder reads the prompt alone):
"Sentence: {} Label:" -> one of the source's label names, ranked by likelihood.

For GLUE-style single-sentence data through the hf source (SST-2: negative / positive, CoLA: unacceptable /
acceptable), the columns mapped onto `sentence` and `label`, the names from the dataset's ClassLabel or the
source's `label_names` (docs/data.md, "Text-only data"). Metric: accuracy (also per label).
"""
from __future__ import annotations

from unio.kit.text_labels import RankedLabel, label_name
from unio.registries import register_task
from unio.task import Example, NothingToAsk, choose_prompt


@register_task
class TextClass(RankedLabel):
    name, hub_task = "text_class", "text-classification"
    output = "text"
    prompts = ["Sentence: {} Label:", "Classify the sentence: {}"]
    requires = ("sentence", "label")

    def __init__(self, labels: list = ("negative", "positive")):
        self.labels = list(labels)

    def example(self, record, rng) -> Example:
        if record.get("sentence") is None:
            raise NothingToAsk(f"record {record.get('id', '?')!r} has no sentence")
        label = label_name(record, self.labels)
        return Example(self.name, None, choose_prompt(self.prompts, rng, str(record["sentence"]).strip()), label,
                       {"labels": record.get("label_names")})

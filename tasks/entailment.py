"""Textual entailment, a text-only task (no image: the encoder reads the prompt alone):
"Premise: {} Hypothesis: {}" -> entailment, neutral or contradiction, ranked among the labels.

    unio.run("Premise: a large red cube and a small blue sphere. Hypothesis: There are two objects.")

On the world, a scene's caption and a statement it entails, contradicts or leaves open (its `entailment`
pairs, unio/data/world/relations.py); on any GLUE-style sentence-pair data through the hf source, with the
columns mapped onto `premise`, `hypothesis` and `label` (MNLI, RTE, QNLI, MRPC, QQP, WNLI: docs/data.md,
"Text-only data"), ranked among the source's label names. A prompt longer than the model's text length loses its
end (the hypothesis): `max_premise_words` cuts long premises (MNLI's) first. Metric: accuracy (also per label).
Baselines: the majority label, and `hypothesis_only`, a bag-of-words classifier that never reads the premise
(the check NLI papers run for labels readable off the hypothesis alone).
"""
from __future__ import annotations

from unio.data.world.relations import LABELS
from unio.kit.answers import MostFrequentAnswer
from unio.kit.text_labels import HypothesisOnly, RankedLabel, label_name
from unio.registries import register_task
from unio.task import Example, NothingToAsk, choose_prompt, pick


@register_task
class Entailment(RankedLabel):
    name, hub_task = "entailment", "text-classification"
    output = "text"
    prompts = ["Premise: {} Hypothesis: {}", 'Does "{}" imply "{}"?']

    def __init__(self, labels: list = LABELS, max_premise_words: int | None = None):
        self.labels, self.max_premise_words = list(labels), max_premise_words

    def example(self, record, rng) -> Example:
        if record.get("entailment"):
            premise, hypothesis, label = pick(record["entailment"], rng, record, "entailment pair")
        elif record.get("premise") is not None and record.get("hypothesis") is not None:
            premise, hypothesis, label = record["premise"], record["hypothesis"], label_name(record, self.labels)
        else:
            raise NothingToAsk(f"record {record.get('id', '?')!r} has no entailment pairs, nor premise and hypothesis")
        words = str(premise).split()   # a prompt longer than the model's text length loses its end: cut the premise
        premise = " ".join(words[:self.max_premise_words]) if self.max_premise_words else " ".join(words)
        prompt = choose_prompt(self.prompts, rng, premise, str(hypothesis).strip())
        return Example(self.name, None, prompt, str(label), {"labels": record.get("label_names"),
                                                             "hypothesis": str(hypothesis).strip()})

    def baselines(self):
        return {self.baseline_name: MostFrequentAnswer, "hypothesis_only": HypothesisOnly}

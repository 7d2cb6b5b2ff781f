"""Text classification examples (GLUE-style rows, the world's entailment pairs): a record's label as the
name the model answers with, and the task kind that ranks an answer among the label names.

A label is a name ("entailment") or an integer into the record's `label_names` (what a Hugging Face
dataset's ClassLabel column holds; the hf source passes its names on); GLUE's hidden test labels (-1)
leave a record with nothing to ask.
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict

import numpy as np

from unio.kit.answers import ShortTextAnswer
from unio.kit.metrics import accuracy_by_target
from unio.task import NothingToAsk


def label_name(record, default_names) -> str:
    """The record's `label` as a name; NothingToAsk for an unlabelled row (None or -1)."""
    label = record.get("label")
    if label is None or (isinstance(label, (int, np.integer)) and label < 0):
        raise NothingToAsk(f"record {record.get('id', '?')!r} has no label (GLUE's test rows hide theirs)")
    if isinstance(label, str):
        return label
    names = record.get("label_names") or default_names
    if not 0 <= int(label) < len(names):
        raise ValueError(f"record {record.get('id', '?')!r}: label {label} is outside the label names {list(names)}; "
                         "give the source label_names=[...]")
    return str(names[int(label)])


class RankedLabel(ShortTextAnswer):
    """A text task answered by one of its label names, ranked by likelihood: the record's `label_names`
    where it has them (set on the example's meta["labels"]), else the task's `labels`. Metrics: accuracy
    and the accuracy per gold label."""
    reads_image = False              # the encoder reads the prompt alone
    requires = ()
    max_tokens = 6
    photometric = ()

    def answer_options(self, example):
        return list(example.meta.get("labels") or self.labels)

    def evaluate(self, predictions, examples) -> dict:
        right = [p == ex.target for p, ex in zip(predictions, examples)]
        return {"accuracy": float(np.mean(right)),
                **{f"accuracy_{label}": a for label, a in accuracy_by_target(right, examples).items()}}

    def training_texts(self, example) -> list:
        return [example.prompt, *self.answer_options(example)]


class HypothesisOnly:
    """A baseline that reads the hypothesis alone (meta["hypothesis"]), never the premise: multinomial naive
    Bayes over the hypothesis' lower-cased words and word pairs, add-one smoothing, fitted on the training
    examples. The check of Gururangan et al. and Poliak et al. (2018): accuracy far above the majority label
    says the labels can be read off the hypotheses, so a model's accuracy is not all reasoning."""

    def __init__(self, train_examples, mods=None):
        self.priors, self.counts = Counter(), defaultdict(Counter)
        for ex in train_examples:
            self.priors[ex.target] += 1
            self.counts[ex.target].update(bag_of_words(ex.meta["hypothesis"]))
        self.vocabulary = set().union(*self.counts.values())
        self.totals = {label: sum(counts.values()) for label, counts in self.counts.items()}

    def log_likelihood(self, label: str, words: list) -> float:
        smoothed = self.totals[label] + len(self.vocabulary)
        return math.log(self.priors[label]) + sum(math.log((self.counts[label][w] + 1) / smoothed) for w in words)

    def __call__(self, example) -> str:
        words = [w for w in bag_of_words(example.meta["hypothesis"]) if w in self.vocabulary]
        return max(self.priors, key=lambda label: self.log_likelihood(label, words))


def bag_of_words(text: str) -> list:
    """Lower-cased words and adjacent word pairs."""
    words = re.findall(r"[a-z0-9']+", text.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]

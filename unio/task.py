"""What a task plugin is: examples, and the protocol a task file implements.

A task is any object with these attributes (no base class to inherit):

    name: str                       registry name
    prompts: list[str]              paraphrases; '{}' is filled with the example's text slot
    output: str                     the Result field its prediction fills: 'text', 'boxes', 'depth', ...
    requires: tuple[str]            the record keys it reads (checked against each source)
    headline: str                   its headline metric; `lower_is_better` when it is an error
    example(record, rng) -> Example one example from a record already in the model's frame (an
                                    Example's `region`, a box, reaches the encoder as location tokens);
                                    raises NothingToAsk for a record without what it asks about
    targets(examples, mods) -> list[list[int]]   gold target ids (global, no EOS), batched
    grammar(mods, image_size) -> Grammar         the shape of a well-formed answer
    decode(ids, mods, example) -> prediction     generated ids (global, no EOS) -> answer, model frame
                                    (with `uses_token_logprobs = True`: also logprobs=, one per id, or None)
    to_original(prediction, frame) -> prediction the answer in the original image's pixels (optional)
    to_result(prediction) -> dict                Result fields (optional; default {output: prediction})
    draw(result) -> PIL image                    how a result is shown (optional; default: drawing.py)
    evaluate(predictions, examples) -> dict      metrics over a split, predictions in original pixels
    training_texts(example) -> list[str]         text for the sentencepiece model
    training_images(example) -> list[tensor]     image-like targets for the VQ-VAE (may be empty)
    baselines() -> {name: class}                 predictors fitted on train examples
    answer_options(example) -> list[str] | None  candidate answers to rank by likelihood instead of
                                                 generating (optional)
    helper: str                                  another name for its `unio.<helper>` function (optional)
    stop_by_mass: bool                           end only when EOS outweighs all continuations (lists)
    answer_prefix(example, mods) -> list | None  global ids the answer must start with (e.g. a box the
                                                 prompt already gives); decoding forces them (optional)
    reads_image: bool                            False: the encoder reads the prompt alone (Example.image
                                                 None; unio.run takes an image only for the output's size)
    prepare(example) -> Example                  finishes an inference example (e.g. blanks a region)
    for_training(example, rng) -> Example        changes a training example (e.g. guidance's null prompts)
    unconditional(example) -> Example            its null-prompt twin: classifier-free guidance applies
    helper_call(run, *args, **options)           its own `unio.<task>` function (e.g. unio.generate)
    report_samples: int, report_options: dict    how many answers the run's report draws, with what options
    warm_up: dict[str, float]                    tasks trained on its source in the training's first stage
                                                 alone, at these weights, for what they teach the encoder
                                                 (optional; unio.training.add_warm_ups)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np
import torch

from unio.grammar import Grammar, Repeat, Segment  # noqa: F401  (part of a task's vocabulary)
from unio.images import Frame
from unio.records import frame_record


@dataclass
class Example:
    task: str
    image: np.ndarray       # (H, W, 3) uint8, the model-resolution image
    prompt: str
    target: Any             # the gold answer in the task's own terms, in the model's frame
    meta: dict = field(default_factory=dict)
    frame: Frame | None = None     # how the original image maps onto the model's input
    record: Any = None             # the original record (evaluation reads gold in original pixels)
    source: str | None = None
    region: list | None = None     # a box (x1, y1, x2, y2), model frame: location tokens after the prompt


class NothingToAsk(ValueError):
    """A record that is fine but holds nothing this task can ask about (a COCO image without a person,
    for person keypoints; an image without objects, for region captions). Not a bad record: training
    draws another record of the pair, evaluation and the tokenizers' corpus read on to the next."""


def pick(items, rng: np.random.Generator, record, what: str):
    """One of `items` at random; NothingToAsk naming the record and `what` it lacks when there is none."""
    if not len(items):
        raise NothingToAsk(f"record {record.get('id', '?')!r} has no {what}")
    return items[int(rng.integers(len(items)))]


class Target(list):
    """Target ids whose positions in `ignored` are fed to the decoder but left out of the loss
    (e.g. depth codes over pixels without a valid depth)."""

    def __init__(self, ids, ignored=()):
        super().__init__(ids)
        self.ignored = tuple(ignored)


def make_example(task, record, image_size: int, rng: np.random.Generator, keep_record: bool = True) -> Example:
    """The one way a record becomes an example: framed to the model's input, then the task's."""
    framed, frame = frame_record(record, image_size)
    example = task.example(framed, rng)
    example.frame, example.source = frame, record.get("source")
    example.record = record if keep_record else None
    example.meta.setdefault("id", record.get("id"))
    return example


def to_original(task, prediction, frame: Frame | None):
    """A task's prediction in the original image's pixels (unchanged for tasks without geometry)."""
    convert = getattr(task, "to_original", None)
    return prediction if convert is None or frame is None else convert(prediction, frame)


class Task(Protocol):
    name: str
    prompts: list
    output: str
    requires: tuple

    def example(self, record, rng: np.random.Generator) -> Example: ...
    def targets(self, examples: Sequence[Example], mods) -> list: ...
    def grammar(self, mods, image_size: int) -> "Grammar": ...
    def decode(self, ids: Sequence[int], mods, example: Example) -> Any: ...
    def evaluate(self, predictions: Sequence[Any], examples: Sequence[Example]) -> dict: ...


def choose_prompt(prompts: Sequence[str], rng: np.random.Generator, *slot: str) -> str:
    return prompts[int(rng.integers(len(prompts)))].format(*slot)


def slot_of(prompt: str, templates) -> str | None:
    """The text a prompt fills into the first template it matches ('Segment every "cube".' -> 'cube')."""
    for template in templates:
        pattern = "^" + re.escape(template).replace(r"\{\}", "(.+)") + "$"
        found = re.match(pattern, prompt.strip(), flags=re.I | re.S)
        if found:
            return found.group(1) if found.groups() else None
    return None


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0


class ShortTextAnswer:
    """What tasks answering in a few words share (optional: inherit it or write your own): text targets,
    a grammar of 1 to `max_tokens` text tokens, the decoded text, the texts the tokenizer learns from and
    the most-frequent-answer baseline (named `baseline_name`)."""
    max_tokens = 8
    baseline_name = "majority"

    def targets(self, examples, mods):
        return [mods.text_ids(ex.target) for ex in examples]

    def grammar(self, mods, image_size: int) -> Grammar:
        return Grammar((Segment(mods.prompt_name, 1, self.max_tokens),))   # the prompt tokenizer's text

    def decode(self, ids, mods, example=None) -> str:
        return mods.text_from_ids(ids).strip()

    def training_texts(self, example) -> list:
        return [example.prompt, example.target]

    def training_images(self, example) -> list:
        return []

    def baselines(self):
        return {self.baseline_name: MostFrequentAnswer}


class MostFrequentAnswer:
    """A baseline for tasks answering in words: the most frequent training target, every time."""

    def __init__(self, train_examples, mods=None):
        from collections import Counter
        self.answer = Counter(ex.target for ex in train_examples).most_common(1)[0][0]

    def __call__(self, example):
        return self.answer

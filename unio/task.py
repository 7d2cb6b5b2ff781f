"""What a task plugin is: examples, and the protocol a task file implements.

A task is any object with the attributes of `Task` below (no base class to inherit; unio/kit/answers.py
has answer kinds to build on), plus any of the optional hooks of `OPTIONAL_HOOKS`, each with the default
the core assumes when a task lacks it. These two are every hook the core reads (tests/test_protocol.py
checks it); everything else in a task file is its own business.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np

from unio.grammar import Grammar, Repeat, Segment  # noqa: F401  (part of a task's vocabulary)

if TYPE_CHECKING:
    from unio.kit.images import Frame


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
                                   # (or a list of boxes, for a task whose `region_count` is more than 1)


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


def to_original(task, prediction, frame: Frame | None):
    """A task's prediction in the original image's pixels (unchanged for tasks without geometry)."""
    convert = getattr(task, "to_original", None)
    return prediction if convert is None or frame is None else convert(prediction, frame)


class Task(Protocol):
    """The required part: what every trainable task has."""
    name: str                       # its registry name (`@register_task` reads it), used by --tasks
    prompts: list                   # paraphrases; '{}' is filled with the example's text slot
    output: str                     # the Result field its prediction fills: 'text', 'boxes', 'depth', ...
    requires: tuple                 # the record keys it reads (checked against each source before training)
    headline: str                   # its headline metric

    def example(self, record, rng: np.random.Generator) -> Example:
        """One example from a record already in the model's frame (an Example's `region`, a box, reaches the
        encoder as location tokens); raises NothingToAsk for a record without what it asks about."""

    def targets(self, examples: Sequence[Example], mods) -> list:
        """Gold target ids (global, no EOS), batched; a `Target` leaves some positions out of the loss."""

    def grammar(self, mods, image_size: int) -> Grammar:
        """The shape of a well-formed answer: generation is constrained to it."""

    def decode(self, ids: Sequence[int], mods, example: Example) -> Any:
        """Generated ids (global, no EOS) -> the answer, in the model's frame (with `uses_token_logprobs`:
        also `logprobs=`, one per id, or None; with `uses_step_distributions`: also `distributions=`)."""

    def evaluate(self, predictions: Sequence[Any], examples: Sequence[Example]) -> dict:
        """Metrics over a split, the predictions in original pixels."""

    def training_texts(self, example: Example) -> list:
        """Text for the sentencepiece model."""

    def training_images(self, example: Example) -> list:
        """Image-like targets (tensors) for the VQ-VAE; may be empty."""

    def baselines(self) -> dict:
        """{name: class}: predictors fitted on train examples (`cls(train_examples, mods)(example)`)."""


# hook -> (the default the core assumes without it, what it is). Methods default to None: not called.
OPTIONAL_HOOKS = {
    # -- answers -------------------------------------------------------------------------------------
    "to_original": (None, "(prediction, frame) -> the prediction in the original image's pixels"),
    "to_result": (None, "(prediction) -> Result fields; without it {output: prediction}"),
    "draw": (None, "(result) -> PIL image: how a result is shown (default: unio/kit/drawing.py)"),
    "lower_is_better": (False, "the headline metric is an error (depth RMSE)"),
    "also_report": ((), "metrics printed beside the headline"),
    # -- generation ------------------------------------------------------------------------------------
    "uses_token_logprobs": (False, "decode() is given each generated token's log-probability"),
    "uses_step_distributions": (False, "decode() is given `distributions=`: each generation step's (V,) "
                                       "log-probabilities, (L, V), or None (under beams)"),
    "pooled_samples": (0, "how many answers sampled at temperature 1 are pooled with the greedy one by "
                          "`pool(predictions)` (candidates for recall@K beyond one list)"),
    "pool": (None, "([greedy prediction, sampled ...]) -> one prediction (with `pooled_samples`)"),
    "stop_by_mass": (False, "end a list only when EOS outweighs every continuation together"),
    "answer_prefix": (None, "(example, mods) -> global ids the answer must start with (a box the prompt gives)"),
    "ask_first": (None, "(examples, tasks, ask) -> None: asks other tasks of the same model first (`ask(name, "
                        "examples)` -> their predictions) and notes what answer_prefix reads (vqa.ground=refexp)"),
    "answer_options": (None, "(example) -> candidate answers ranked by likelihood instead of generated (None: generate)"),
    "unconditional": (None, "(example) -> its null-prompt twin: classifier-free guidance applies"),
    "guidance": (None, "the guidance scale its answers are decoded at where the caller names none (None: plain; a "
                       "tuple: candidates, chosen on validation by unio.infer.choices)"),
    "via": (None, "the name of a task whose answers this one is made from, by `from_answer` (None: its own)"),
    "from_answer": (None, "(answer of `via`, example, ask) -> this task's prediction; ask(task, examples) "
                          "answers other examples with the same model"),
    # -- inference ---------------------------------------------------------------------------------
    "aliases": ((), "phrasings people use for it that it was not trained on, asked with its first prompt"),
    "region_prompts": ((), "its prompts that ask about a box given as region= (required there, refused "
                           "elsewhere: unio/infer/calls.py)"),
    "region_count": (1, "how many boxes its region= holds (2: a subject's box, then an object's)"),
    "reads_image": (True, "False: the encoder reads the prompt alone (unio.run takes an image only for its size)"),
    "prepare": (None, "(example) -> the inference example finished (e.g. its query read from the prompt)"),
    "helper": (None, "another name for its `unio.<helper>` function (unio.detect)"),
    "helper_call": (None, "(run, *args, **options): its own `unio.<task>` function (unio.generate)"),
    "hub_task": (None, "its task type on the Hugging Face hub, for the model card (default: its name)"),
    # -- training ----------------------------------------------------------------------------------
    "weight": (1.0, "its weight in a mixture that names it without one (--tasks caption = caption:2 where it "
                    "declares 2); relative to the other tasks' declared weights"),
    "for_training": (None, "(example, rng) -> a training example changed (e.g. guidance's null prompts)"),
    "photometric": (None, "the photometric kinds its answers tolerate (default: all of them)"),
    "options_from_sources": (None, "(splits) -> constructor options read from the training splits of the sources "
                                   "it trains on (a panoptic source's class names), saved with the model's "
                                   "task options; options given win"),
    "tokenizer_signature": (None, "what its options change in the tokenizers' corpus (a cache key; None: nothing)"),
    "codes": (None, "an ImageCodes (unio/kit/answers.py) when it answers with images: its `kind` (rgb, depth, "
                    "mask ...) picks the codebook, which learns from its training_images"),
    "report_samples": (1, "how many answers the run's report draws"),
    "report_options": ({}, "the generation options of those answers"),
    "report_image": (None, "(example) -> the image a user would give to ask it (default: the record's image; "
                           "a map, for an image generated from a map)"),
}


def several_boxes(region) -> bool:
    """Whether a region is a list of boxes rather than one box [x1, y1, x2, y2]."""
    return region is not None and len(region) > 0 and isinstance(region[0], (list, tuple, np.ndarray))


def region_boxes(region) -> list:
    """A region as a list of boxes: one box [x1, y1, x2, y2] -> [box]; a list of boxes as it is."""
    return [list(box) for box in region] if several_boxes(region) else [region]


def choose_prompt(prompts: Sequence[str], rng: np.random.Generator, *slot: str) -> str:
    return prompts[int(rng.integers(len(prompts)))].format(*slot)


def share_option(option: str, weights: dict | None, names: Sequence[str], example: str):
    """A training option that draws among `names` at given weights ({name: weight}; a name left out is never
    drawn) as probabilities in `names`' order, or None where it is not set (e.g. itm's `negatives`)."""
    if weights is None:
        return None
    if not isinstance(weights, dict) or not weights or set(weights) - set(names):
        raise ValueError(f"{option} maps {', '.join(names)} to weights, e.g. {example}; got {weights!r}")
    values = [weights.get(name, 0) for name in names]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in values) or sum(values) <= 0:
        raise ValueError(f"{option}'s weights are numbers >= 0, at least one above 0; got {weights!r}")
    return np.asarray(values, float) / sum(values)


def template_pattern(template: str) -> str:
    """A prompt template as a regular expression: its text literally, each '{}' a slot of one or more characters."""
    return "^" + re.escape(template).replace(r"\{\}", "(.+)") + "$"


def slot_of(prompt: str, templates) -> str | None:
    """The text a prompt fills into the first template it matches ('Segment every "cube".' -> 'cube')."""
    for template in templates:
        found = re.match(template_pattern(template), prompt.strip(), flags=re.I | re.S)
        if found:
            return found.group(1) if found.groups() else None
    return None


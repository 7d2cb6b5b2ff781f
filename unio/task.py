"""What a task plugin is: examples, output grammars, and the protocol a task file implements.

A task is any object with these attributes (no base class to inherit):

    name: str                       registry name
    prompts: list[str]              paraphrases; '{}' is filled with the example's text slot
    output: str                     'text' | 'box' | 'image' | ...  (what `decode` returns)
    example(scene, rng) -> Example  one example from a world scene
    targets(examples, mods) -> list[list[int]]   gold target ids (global, no EOS), batched
    grammar(mods, image_size) -> Grammar         the shape of a well-formed answer
    decode(ids, mods, example) -> prediction     generated ids (global, no EOS) -> answer
    evaluate(predictions, examples) -> dict      metrics over a split
    training_texts(example) -> list[str]         text for the sentencepiece model
    training_images(example) -> list[tensor]     image-like targets for the VQ-VAE (may be empty)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np
import torch

from unio.vocab import EOS, Vocabulary


@dataclass
class Example:
    task: str
    image: np.ndarray       # (H, W, 3) uint8, the model-resolution image
    prompt: str
    target: Any             # the gold answer in the task's own terms
    meta: dict = field(default_factory=dict)


class Task(Protocol):
    name: str
    prompts: list
    output: str

    def example(self, scene, rng: np.random.Generator) -> Example: ...
    def targets(self, examples: Sequence[Example], mods) -> list: ...
    def grammar(self, mods, image_size: int) -> "Grammar": ...
    def decode(self, ids: Sequence[int], mods, example: Example) -> Any: ...
    def evaluate(self, predictions: Sequence[Any], examples: Sequence[Example]) -> dict: ...


@dataclass(frozen=True)
class Segment:
    """`min_len`..`max_len` tokens of vocabulary range `range` (optionally only local ids [lo, hi))."""
    range: str
    min_len: int
    max_len: int
    local: tuple | None = None


@dataclass(frozen=True)
class Grammar:
    """Segments in order, then EOS. Only the last segment may vary in length."""
    segments: tuple

    def __post_init__(self):
        for seg in self.segments[:-1]:
            if seg.min_len != seg.max_len:
                raise ValueError("only the last segment of a grammar may vary in length")

    @property
    def max_length(self) -> int:
        return sum(s.max_len for s in self.segments) + 1

    def allowed(self, vocab: Vocabulary, limit: int | None = None) -> torch.Tensor:
        """(max_length, V) bool: which ids may appear at each generated position.

        With `limit` (the model's longest target + EOS), a longer grammar is cut there and ends in EOS.
        """
        table = self._table(vocab)
        if limit is None or limit >= self.max_length:
            return table
        if limit - 1 < self.max_length - 1 - self.segments[-1].max_len + self.segments[-1].min_len:
            raise ValueError(f"answers of this grammar need {self.max_length - 1} tokens, "
                             f"more than the model's {limit - 1}; raise max_target_length")
        table = table[:limit].clone()
        table[limit - 1] = False
        table[limit - 1, EOS] = True
        return table

    def _table(self, vocab: Vocabulary) -> torch.Tensor:
        table = torch.zeros(self.max_length, vocab.size, dtype=torch.bool)
        pos = 0
        for seg in self.segments:
            r = vocab.range(seg.range)
            lo, hi = seg.local or (0, r.size)
            table[pos:pos + seg.max_len, r.start + lo:r.start + hi] = True
            pos += seg.max_len
        last = self.segments[-1]
        table[pos - last.max_len + last.min_len:, EOS] = True
        return table

    def accepts(self, ids: Sequence[int], vocab: Vocabulary) -> bool:
        """Whether `ids` (ending with EOS) is a well-formed answer."""
        table = self.allowed(vocab)
        if not ids or ids[-1] != EOS or len(ids) > self.max_length:
            return False
        return all(bool(table[i, t]) for i, t in enumerate(ids))


def choose_prompt(prompts: Sequence[str], rng: np.random.Generator, *slot: str) -> str:
    return prompts[int(rng.integers(len(prompts)))].format(*slot)


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0

"""The unified vocabulary: one id space for every modality.

Layout, computed here and never by a plugin:
    [specials][text pieces][location bins + visibility][image codes][further plugin ranges]
Ranges are ordered by each tokenizer's `order` then name. The layout is saved as JSON beside
every model and checked on load, so ids never shift under a trained model.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

SPECIALS = ["<pad>", "</s>", "<s>", "<unk>", "<image>", "<text>", "<box>", "<point>",
            "<depth>", "<mask>", "<sep>"] + [f"<extra_id_{i}>" for i in range(16)]
PAD, EOS, BOS, UNK = 0, 1, 2, 3
IGNORE = -100   # a label position left out of the loss


class VocabularyMismatch(ValueError):
    pass


@dataclass(frozen=True)
class Range:
    name: str
    start: int
    size: int
    signature: str

    @property
    def stop(self) -> int:
        return self.start + self.size


class Vocabulary:
    def __init__(self, ranges: Sequence[Range]):
        self.ranges = {r.name: r for r in ranges}
        self.size = max([len(SPECIALS)] + [r.stop for r in ranges])

    @classmethod
    def build(cls, tokenizers: Mapping[str, object]) -> "Vocabulary":
        """Lay out ranges for `tokenizers` (name -> object with .size, .signature(), .order)."""
        ordered = sorted(tokenizers.items(), key=lambda kv: (getattr(kv[1], "order", 100), kv[0]))
        ranges, start = [], len(SPECIALS)
        for name, tok in ordered:
            ranges.append(Range(name, start, int(tok.size), str(tok.signature())))
            start += int(tok.size)
        return cls(ranges)

    def special(self, token: str) -> int:
        return SPECIALS.index(token)

    def range(self, name: str) -> Range:
        if name not in self.ranges:
            raise KeyError(f"no vocabulary range {name!r}; ranges: {', '.join(self.ranges)}")
        return self.ranges[name]

    def to_global(self, name: str, local_ids) -> list[int]:
        r = self.range(name)
        out = [int(i) + r.start for i in local_ids]
        bad = [i - r.start for i in out if not r.start <= i < r.stop]
        if bad:
            raise ValueError(f"ids {bad[:5]} are outside the {name!r} range of size {r.size}")
        return out

    def to_local(self, name: str, global_ids) -> list[int]:
        """Local ids of the tokens of `name`'s range; other tokens (specials, other ranges) are skipped."""
        r = self.range(name)
        return [int(i) - r.start for i in global_ids if r.start <= int(i) < r.stop]

    def owner(self, token_id: int) -> str:
        if 0 <= token_id < len(SPECIALS):
            return "special"
        for r in self.ranges.values():
            if r.start <= token_id < r.stop:
                return r.name
        raise ValueError(f"token id {token_id} is outside the vocabulary of size {self.size}")

    def to_json(self) -> dict:
        return {"size": self.size, "specials": SPECIALS, "ranges": [asdict(r) for r in self.ranges.values()]}

    @classmethod
    def from_json(cls, data: dict) -> "Vocabulary":
        if data.get("specials") != SPECIALS:
            raise VocabularyMismatch("the saved special tokens differ from this unio's; the model was made by another version")
        return cls([Range(**r) for r in data["ranges"]])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        return cls.from_json(json.loads(Path(path).read_text()))

    def check_same(self, saved: "Vocabulary", what: str = "the model") -> None:
        """Raise VocabularyMismatch naming the first range where `saved` differs from self (installed)."""
        for name in sorted(set(self.ranges) | set(saved.ranges)):
            mine, theirs = self.ranges.get(name), saved.ranges.get(name)
            if mine != theirs:
                raise VocabularyMismatch(
                    f"vocabulary range {name!r} of {what} is {theirs} but the installed tokenizers give {mine}; "
                    f"load the tokenizers saved with {what} or retrain it")

"""Output grammars: the shape of a well-formed answer, enforced token by token while decoding.

A grammar is a sequence of elements, then EOS:
    Segment(range, min_len, max_len, local)   min..max tokens of one vocabulary range
    Repeat(group, min_count, max_count)       a group of segments, repeated min..max times
e.g. detection: Repeat((Segment("coordinates", 4, 4), Segment("text", 1, 4)), 0, 20).

Grammars without a Repeat whose only variable segment is the last one ("static") are enforced
with a (position, vocabulary) table; any other grammar by running it as an automaton over each
row's prefix. Both only allow tokens after which the answer can still end within the length limit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import LogitsProcessor

from unio.vocab import EOS, Vocabulary


@dataclass(frozen=True)
class Segment:
    """`min_len`..`max_len` tokens of vocabulary range `range` (optionally only local ids [lo, hi)).
    `box`: 4 ordered bins y1, x1, y2, x2 that always make a box: y2 > y1 and x2 > x1."""
    range: str
    min_len: int
    max_len: int
    local: tuple | None = None
    box: bool = False

    def __post_init__(self):
        if self.box and not self.min_len == self.max_len == 4:
            raise ValueError("a box segment is exactly 4 tokens (y1, x1, y2, x2)")


@dataclass(frozen=True)
class Repeat:
    """The segments of `group` in order, repeated `min_count`..`max_count` times."""
    group: tuple
    min_count: int
    max_count: int

    def __post_init__(self):
        if not self.group or any(not isinstance(s, Segment) for s in self.group):
            raise ValueError("a Repeat's group is a non-empty tuple of Segments")
        if not 0 <= self.min_count <= self.max_count:
            raise ValueError(f"need 0 <= min_count <= max_count, got {self.min_count}, {self.max_count}")

    @property
    def min_len(self) -> int:
        return self.min_count * sum(s.min_len for s in self.group)

    @property
    def max_len(self) -> int:
        return self.max_count * sum(s.max_len for s in self.group)


@dataclass(frozen=True)
class Grammar:
    """Elements (Segments and Repeats) in order, then EOS."""
    segments: tuple

    @property
    def first_range(self) -> str:
        """The vocabulary range an answer's first token is from."""
        first = self.segments[0]
        return (first.group[0] if isinstance(first, Repeat) else first).range

    def __post_init__(self):
        for seg in self.segments:
            if not isinstance(seg, (Segment, Repeat)):
                raise TypeError(f"grammar elements are Segment or Repeat, got {type(seg).__name__}")

    @property
    def static(self) -> bool:
        return all(isinstance(s, Segment) and not s.box for s in self.segments) and all(
            s.min_len == s.max_len for s in self.segments[:-1])

    @property
    def max_length(self) -> int:
        return sum(s.max_len for s in self.segments) + 1

    @property
    def min_length(self) -> int:
        return sum(s.min_len for s in self.segments) + 1

    def check_limit(self, limit: int | None) -> None:
        if limit is not None and limit < self.min_length:
            raise ValueError(f"answers of this grammar need {self.min_length - 1} tokens, "
                             f"more than the model's {limit - 1}; raise max_target_length")

    def allowed(self, vocab: Vocabulary, limit: int | None = None) -> torch.Tensor:
        """(max_length, V) bool, static grammars only: which ids may appear at each generated position.
        With `limit` (the model's longest target + EOS), a longer grammar is cut there and ends in EOS."""
        if not self.static:
            raise ValueError("a grammar with repeats or inner variable segments has no position table; "
                             "use grammar.processor()")
        self.check_limit(limit)
        table = self._table(vocab)
        if limit is None or limit >= self.max_length:
            return table
        table = table[:limit].clone()
        table[limit - 1] = False
        table[limit - 1, EOS] = True
        return table

    def _table(self, vocab: Vocabulary) -> torch.Tensor:
        table = torch.zeros(self.max_length, vocab.size, dtype=torch.bool)
        pos = 0
        for seg in self.segments:
            table[pos:pos + seg.max_len] |= segment_mask(seg, vocab)
            pos += seg.max_len
        last = self.segments[-1]
        table[pos - last.max_len + last.min_len:, EOS] = True
        return table

    def processor(self, vocab: Vocabulary, limit: int | None = None, prefix_length: int = 1) -> LogitsProcessor:
        """The logits processor that keeps generate() inside this grammar."""
        if self.static:
            return GrammarLogitsProcessor(self.allowed(vocab, limit), prefix_length)
        self.check_limit(limit)
        return AutomatonLogitsProcessor(Automaton(self, vocab), limit or self.max_length, prefix_length)

    def accepts(self, ids: Sequence[int], vocab: Vocabulary) -> bool:
        """Whether `ids` (ending with EOS) is a well-formed answer."""
        if not ids or ids[-1] != EOS or len(ids) > self.max_length:
            return False
        automaton = Automaton(self, vocab)
        states, ids = automaton.start(), [int(t) for t in ids]
        for i, token in enumerate(ids[:-1]):
            states = automaton.advance(states, token, ids[i - 2] if i >= 2 else None)
            if not states:
                return False
        return automaton.can_end(states)


def segment_mask(seg: Segment, vocab: Vocabulary) -> torch.Tensor:
    r = vocab.range(seg.range)
    lo, hi = seg.local or (0, r.size)
    mask = torch.zeros(vocab.size, dtype=torch.bool)
    mask[r.start + lo:r.start + hi] = True
    return mask


class Automaton:
    """A grammar as a nondeterministic automaton. A state (element, repeat count, segment of the
    group, tokens in the segment) says where in the grammar a prefix has got to."""

    def __init__(self, grammar: Grammar, vocab: Vocabulary):
        self.elements = grammar.segments
        self.groups = [e.group if isinstance(e, Repeat) else (e,) for e in self.elements]
        self.masks = [[segment_mask(s, vocab) for s in group] for group in self.groups]
        self.tops = [[vocab.range(s.range).start + (s.local or (0, vocab.range(s.range).size))[1] for s in group]
                     for group in self.groups]   # one past each segment's highest id
        self.end = len(self.elements)

    def start(self) -> frozenset:
        return self._closure({(0, 0, 0, 0)})

    def _closure(self, states) -> frozenset:
        todo, seen = list(states), set(states)
        while todo:
            for nxt in self._moves_without_token(todo.pop()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return frozenset(seen)

    def _moves_without_token(self, state):
        e, r, s, n = state
        if e == self.end:
            return
        element, seg = self.elements[e], self.groups[e][s]
        repeat = isinstance(element, Repeat)
        if repeat and s == 0 and n == 0 and r >= element.min_count:
            yield (e + 1, 0, 0, 0)                       # no more repetitions
        if n < seg.min_len:
            return
        if s + 1 < len(self.groups[e]):
            yield (e, r, s + 1, 0)
        elif not repeat:
            yield (e + 1, 0, 0, 0)
        else:
            if r + 1 < element.max_count:
                yield (e, r + 1, 0, 0)
            if r + 1 >= element.min_count:
                yield (e + 1, 0, 0, 0)

    def order(self, e: int, s: int, n: int, previous: int | None) -> tuple:
        """(lowest, highest + 1) ids the next token of a box segment may take: y1 and x1 leave a larger
        bin free; y2 and x2 lie above y1 and x1 (the token two back). (None, None) elsewhere."""
        if not self.groups[e][s].box:
            return None, None
        if n < 2:
            return None, self.tops[e][s] - 1
        return previous + 1, None

    def advance(self, states: frozenset, token: int, previous: int | None = None) -> frozenset:
        """The states after `token`; `previous`: the token two before it (box segments compare with it)."""
        moved = set()
        for e, r, s, n in states:
            if e < self.end and n < self.groups[e][s].max_len and self.masks[e][s][token]:
                lo, hi = self.order(e, s, n, previous)
                if (lo is None or token >= lo) and (hi is None or token < hi):
                    moved.add((e, r, s, n + 1))
        return self._closure(moved)

    def can_end(self, states) -> bool:
        return any(e == self.end for e, _, _, _ in states)

    def to_finish(self, state) -> int:
        """The fewest tokens that take `state` to the end of the grammar."""
        e, r, s, n = state
        if e == self.end:
            return 0
        rest = sum(x.min_len for x in self.elements[e + 1:])
        group = self.groups[e]
        here = max(0, group[s].min_len - n) + sum(x.min_len for x in group[s + 1:])
        element = self.elements[e]
        if isinstance(element, Repeat):
            here += max(0, element.min_count - r - 1) * sum(x.min_len for x in group)
        return here + rest

    def allowed(self, states: frozenset, budget: int, previous: int | None = None) -> tuple:
        """(segment keys (element, segment, lowest, highest + 1), may end) allowed next, with `budget`
        tokens left before EOS must come."""
        keys = set()
        for e, r, s, n in states:
            if e < self.end and n < self.groups[e][s].max_len and self.to_finish((e, r, s, n + 1)) <= budget - 1:
                keys.add((e, s, *self.order(e, s, n, previous)))
        return frozenset(keys), self.can_end(states)


class GrammarLogitsProcessor(LogitsProcessor):
    """Allows only the grammar's next tokens: position i of the answer may hold `table[i]` ids."""

    def __init__(self, table: torch.Tensor, prefix_length: int = 1):
        self.table, self.prefix_length = table, prefix_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        position = input_ids.shape[1] - self.prefix_length
        if position >= self.table.shape[0]:
            allowed = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
            allowed[EOS] = True
        else:
            allowed = self.table[position, : scores.shape[-1]].to(scores.device)
        return scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)


class AutomatonLogitsProcessor(LogitsProcessor):
    """Runs the grammar's automaton over each row's answer so far and allows only the tokens that keep the
    answer well formed. Answers are nodes of a trie (each prefix's states and allowed mask computed once):
    where every row only grew by one token since the last call (greedy, sampling), each row steps from its
    node by that token; otherwise (beams reorder rows) each row is looked up from the root."""

    def __init__(self, automaton: Automaton, limit: int, prefix_length: int = 1):
        self.automaton, self.limit, self.prefix_length = automaton, limit, prefix_length
        self._root = _Prefix(automaton.start())
        self._masks: dict = {}
        self._last = None          # (the answers of the last call, their nodes)

    def _child(self, node: "_Prefix", token: int) -> "_Prefix":
        if token not in node.children:
            states = self.automaton.advance(node.states, token, node.before) if node.states else frozenset()
            node.children[token] = _Prefix(states, node.length + 1, node.last, token)
        return node.children[token]

    def _nodes(self, answers: torch.Tensor) -> list:
        last = self._last
        if last is not None and answers.shape[1] == last[0].shape[1] + 1 and torch.equal(answers[:, :-1], last[0]):
            return [self._child(node, token) for node, token in zip(last[1], answers[:, -1].tolist())]
        nodes = []
        for row in answers.tolist():
            node = self._root
            for token in row:
                node = self._child(node, token)
            nodes.append(node)
        return nodes

    def _node_mask(self, node: "_Prefix") -> torch.Tensor:
        if node.mask is None:
            key = self.automaton.allowed(node.states, self.limit - 1 - node.length, node.before)
            node.mask = self._mask(key)
        return node.mask

    def _mask(self, key) -> torch.Tensor:
        if key not in self._masks:
            (segments, may_end), masks = key, self.automaton.masks
            mask = torch.zeros_like(masks[0][0])
            for e, s, lo, hi in segments:
                allowed = masks[e][s].clone()
                allowed[:lo or 0] = False
                if hi is not None:
                    allowed[hi:] = False
                mask |= allowed
            mask[EOS] = may_end or not segments       # a dead row ends rather than wander
            self._masks[key] = mask
        return self._masks[key]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        answers = input_ids[:, self.prefix_length:].cpu().clone()   # kept for the next call: not the caller's tensor
        nodes = self._nodes(answers)
        self._last = (answers, nodes)
        allowed = torch.stack([self._node_mask(node) for node in nodes])[:, : scores.shape[-1]].to(scores.device)
        return scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)


class _Prefix:
    """A node of the answers' trie: the automaton's states after a prefix of `length` tokens; `last` and
    `before`, its last token and the one before it (box segments compare a bin with the one two back)."""
    __slots__ = ("states", "length", "last", "before", "children", "mask")

    def __init__(self, states: frozenset, length: int = 0, before: int | None = None, last: int | None = None):
        self.states, self.length, self.before, self.last = states, length, before, last
        self.children: dict = {}
        self.mask = None


def answer_start_id(grammar: Grammar, vocab: Vocabulary) -> int:
    """The decoder's first input token under a model's `decoder_start="answer"`: a start token per vocabulary
    range an answer begins in (the i-th range: <extra_id_i>), as Unified-IO 2's decoder starts from a token
    naming the target's modality; "bos" models start every answer from <s>."""
    index = list(vocab.ranges).index(grammar.first_range)
    if index >= 16:
        raise ValueError(f"answer start tokens cover the first 16 vocabulary ranges; {grammar.first_range!r} is the {index + 1}th")
    return vocab.special(f"<extra_id_{index}>")

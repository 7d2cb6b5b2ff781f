"""Relations between a scene's objects, from its 3D layout, and entailment pairs drawn from its caption.

Relations hold between an ordered pair (subject, object) of a scene's objects; each predicate is true or
false, decided from the layout alone (no draw from the scene's random stream):

    left of / right of          the subject's centre column is left / right of the object's
    in front of / behind        the subject stands nearer / farther from the camera by more than DEPTH_GAP
                                metres (a pair closer in depth stands side by side: neither)
    larger than / smaller than  the subject's metric size is larger / smaller (small 0.7 m, large 1.5 m)
    same color as / same shape as   the attribute is equal

Entailment pairs (premise, hypothesis, label): the premise names some of the scene's objects as its caption
does ("a large red cube and a small blue sphere."), either open (more may be there) or closed ("only a large
red cube and ...": nothing else is). The hypothesis takes one of four forms, "There is a {phrase}.", "There is
no {phrase}.", "There are at least {m} objects." and "There are fewer than {m} objects." (a phrase of 1 to 3 of
an object's attributes). A named object fitting the phrase, or m <= the number named, decides it; otherwise an
open premise leaves it open (neutral) and a closed one decides it the other way. Every form is asked under
every label, so the hypothesis alone tells little of the label (`hypothesis_only` baseline of `entailment`)
and the premise alone little more: a closed premise is never neutral, an open one is neutral half the time.
Drawn by an rng of their own, seeded by the scene.
"""
from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import numpy as np

from unio.data.records import LazyList
from unio.data.world.constants import COLORS, SHAPES, SIZES, SPLITS
from unio.data.world.language import caption

PREDICATES = ("left of", "right of", "in front of", "behind", "larger than", "smaller than",
              "same color as", "same shape as")
DEPTH_GAP = 1.0          # metres: nearer than this in depth, neither stands in front of the other
LABELS = ("entailment", "neutral", "contradiction")
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def holds(a, b) -> dict:
    """{predicate: bool} for subject `a` and object `b` (WorldObjects)."""
    return {"left of": a.x < b.x, "right of": a.x > b.x,
            "in front of": a.depth < b.depth - DEPTH_GAP, "behind": a.depth > b.depth + DEPTH_GAP,
            "larger than": SIZES[a.size] > SIZES[b.size], "smaller than": SIZES[a.size] < SIZES[b.size],
            "same color as": a.color == b.color, "same shape as": a.shape == b.shape}


def relations(objects) -> list:
    """[(subject index, predicate, object index)] for every ordered pair and every predicate that holds,
    pairs in index order, predicates in PREDICATES order."""
    return [(i, p, j) for i, a in enumerate(objects) for j, b in enumerate(objects) if i != j
            for p, true in holds(a, b).items() if true]


def entailment_rng(split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([SPLITS[split], int(index), 4243])


def _phrase(obj, rng) -> str:
    """The object by 1 to 3 of its attributes, the shape or 'object' last: 'red cube', 'large object'."""
    keep = [a for a in ("size", "color") if rng.random() < 0.5]
    return " ".join([getattr(obj, a) for a in keep] + [obj.shape if rng.random() < 0.7 or not keep else "object"])


def _matches(obj, phrase: str) -> bool:
    words = set(phrase.split())
    return all(w in (obj.size, obj.color, obj.shape, "object") for w in words)


def _unmatched(named, rng) -> str:
    """A phrase, drawn as _phrase draws one, that no named object fits."""
    for _ in range(100):
        drawn = SimpleNamespace(size=list(SIZES)[rng.integers(len(SIZES))], color=list(COLORS)[rng.integers(len(COLORS))],
                                shape=SHAPES[rng.integers(len(SHAPES))])
        phrase = _phrase(drawn, rng)
        if not any(_matches(o, phrase) for o in named):
            return phrase
    raise RuntimeError(f"no phrase fits none of {len(named)} objects")   # cannot happen with the world's attributes


def _forms(label: str, closed: bool, k: int) -> list:
    """The hypothesis forms that can carry `label` after a premise naming k objects, `closed` (all of them)
    or open. A count m runs from 2 ("at least one" would always hold), so with one object named neither
    "at least m" can be entailed nor "fewer than m" contradicted."""
    forms = ["exists", "none", "at_least", "fewer"] if label == "neutral" or closed else \
        ["exists", "at_least"] if label == "entailment" else ["none", "fewer"]
    needs_two = {"entailment": "at_least", "contradiction": "fewer"}.get(label)
    return [f for f in forms if k >= 2 or f != needs_two]


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _hypothesis(form: str, label: str, named, rng) -> str:
    """A statement of `form` that the premise naming `named` entails, contradicts or leaves open."""
    k = len(named)
    true_side = {"exists": "entailment", "none": "contradiction", "at_least": "entailment", "fewer": "contradiction"}
    if form in ("exists", "none"):     # the phrase fits a named object: decided; fits none: open, or decided if closed
        phrase = _phrase(named[rng.integers(k)], rng) if label == true_side[form] else _unmatched(named, rng)
        return f"There is {_a(phrase)}." if form == "exists" else f"There is no {phrase}."
    # m <= k: decided by the named ones; m > k: open, or decided if closed
    m = int(rng.integers(2, k + 1)) if label == true_side[form] else int(rng.integers(max(2, k + 1), k + 4))
    return f"There are {'at least' if form == 'at_least' else 'fewer than'} {NUMBER_WORDS[m]} objects."


def entailment_pairs(scene) -> list:
    """[(premise, hypothesis, label)]: one of each label, in LABELS order (module docstring)."""
    rng, objects = entailment_rng(scene.split, scene.index), scene.objects
    pairs = []
    for label in LABELS:
        closed = label != "neutral" and rng.random() < 0.5
        k = len(objects) if closed else int(rng.integers(1, len(objects) + 1))
        named = [objects[i] for i in sorted(rng.choice(len(objects), k, replace=False))]
        forms = _forms(label, closed, k)
        premise = ("only " if closed else "") + caption(named)
        pairs.append((premise, _hypothesis(forms[rng.integers(len(forms))], label, named, rng), label))
    return pairs


def describe_relations(scene) -> None:
    """The scene's relations, and its entailment pairs as a LazyList: drawn when first read (a tenth of a scene's
    making, for the few tasks that read them), by their own rng, so the same pairs either way."""
    scene.relations = relations(scene.objects)
    scene.entailment = LazyList(partial(entailment_pairs, scene))

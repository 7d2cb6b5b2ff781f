"""Relations between a scene's objects, from its 3D layout, and entailment pairs drawn from its caption.

Relations hold between an ordered pair (subject, object) of a scene's objects; each predicate is true or
false, decided from the layout alone (no draw from the scene's random stream):

    left of / right of          the subject's centre column is left / right of the object's
    in front of / behind        the subject stands nearer / farther from the camera by more than DEPTH_GAP
                                metres (a pair closer in depth stands side by side: neither)
    larger than / smaller than  the subject's metric size is larger / smaller (small 0.7 m, large 1.5 m)
    same color as / same shape as   the attribute is equal

Entailment pairs (premise, hypothesis, label): the premise is the scene's caption, which lists every
object with its size, colour and shape; a hypothesis it entails states what the list says (an object of
some of its attributes, the number of objects), one it contradicts denies it (no such object, another
number), and a neutral one speaks of depth, which the caption never mentions ("The red cube is in front
of the blue sphere.", whether or not it is). Drawn by an rng of their own, seeded by the scene.
"""
from __future__ import annotations

from collections import Counter
import numpy as np

from unio.data.world.constants import COLORS, SHAPES, SIZES, SPLITS

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


def _absent(objects, rng) -> str:
    """A phrase no object of the scene fits."""
    for _ in range(100):
        phrase = f"{list(COLORS)[rng.integers(len(COLORS))]} {SHAPES[rng.integers(len(SHAPES))]}"
        if not any(_matches(o, phrase) for o in objects):
            return phrase
    return "purple object" if not any(o.color == "purple" for o in objects) else "orange object"


def entailment_pairs(scene) -> list:
    """[(premise, hypothesis, label)]: one of each label, in LABELS order."""
    rng, objects = entailment_rng(scene.split, scene.index), scene.objects
    n = len(objects)
    if rng.random() < 0.5:
        entailed = f"There is a {_phrase(objects[rng.integers(n)], rng)}."
    else:
        entailed = f"There {'is' if n == 1 else 'are'} {NUMBER_WORDS[n]} object{'' if n == 1 else 's'}."
    if rng.random() < 0.5:
        contradicted = f"There is no {_phrase(objects[rng.integers(n)], rng)}."
    elif rng.random() < 0.5:
        contradicted = f"There is a {_absent(objects, rng)}."
    else:
        wrong = [m for m in range(1, 6) if m != n][rng.integers(4)]
        contradicted = f"There {'is' if wrong == 1 else 'are'} {NUMBER_WORDS[wrong]} object{'' if wrong == 1 else 's'}."
    return [(scene.caption, entailed, "entailment"), (scene.caption, _neutral(objects, rng), "neutral"),
            (scene.caption, contradicted, "contradiction")]


def _neutral(objects, rng) -> str:
    """A statement about depth (never in the caption): the pair by names the caption gives once each."""
    counts = Counter(o.name for o in objects)
    named = [o for o in objects if counts[o.name] == 1]
    if len(named) >= 2:
        a, b = [named[k] for k in rng.choice(len(named), 2, replace=False)]
        return f"The {a.name} is {'in front of' if rng.random() < 0.5 else 'behind'} the {b.name}."
    obj = objects[rng.integers(len(objects))]
    return f"The {obj.shape} is {'less' if rng.random() < 0.5 else 'more'} than {NUMBER_WORDS[rng.integers(3, 8)]} metres away."


def describe_relations(scene) -> None:
    scene.relations = relations(scene.objects)
    scene.entailment = entailment_pairs(scene)

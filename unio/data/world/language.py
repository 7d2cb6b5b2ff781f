"""Captions, question-answer pairs and unique referring expressions for world scenes."""
from __future__ import annotations

from itertools import combinations

import numpy as np

from unio.data.world.constants import COLORS, SHAPES

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
ATTRIBUTES = ("size", "color", "shape")


def plural(shape: str) -> str:
    return shape + "s"


def phrase(obj, attributes) -> str:
    words = [getattr(obj, a) for a in ("size", "color") if a in attributes]
    return " ".join(words + [obj.shape if "shape" in attributes else "object"])


def caption(objects) -> str:
    """Objects left to right: 'a large red cube, a small blue sphere and a small green cone.'"""
    names = [f"a {o.name}" for o in sorted(objects, key=lambda o: o.x)]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return listed + "."


def unique_description(objects, i: int):
    """The shortest attribute phrase that picks out object i alone, or None."""
    for k in (1, 2, 3):
        for attrs in combinations(ATTRIBUTES, k):
            if "shape" not in attrs and k < 3 and len(objects) > 1 and attrs != ("color",):
                continue
            mine = [getattr(objects[i], a) for a in attrs]
            if sum([getattr(o, a) for a in attrs] == mine for o in objects) == 1:
                return phrase(objects[i], attrs)
    return None


def referring_expressions(objects):
    """[(expression, index)]: every expression matches exactly one object of the scene."""
    out = []
    for i, obj in enumerate(objects):
        text = unique_description(objects, i)
        if text is None:  # identical twins: the leftmost and the rightmost can still be named
            twins = [objects[j].x for j, o in enumerate(objects) if o.name == obj.name]
            if obj.x not in (min(twins), max(twins)):
                continue
            text = f"{'leftmost' if obj.x == min(twins) else 'rightmost'} {obj.name}"
        out.append((f"the {text}", i))
    return out


def _count_question(objects, rng):
    kind = rng.integers(3)
    if kind == 0:
        return "How many objects are there?", len(objects)
    if kind == 1:
        color = objects[rng.integers(len(objects))].color
        return f"How many {color} objects are there?", sum(o.color == color for o in objects)
    shape = objects[rng.integers(len(objects))].shape
    return f"How many {plural(shape)} are there?", sum(o.shape == shape for o in objects)


def questions(objects, refexps, rng) -> list:
    """[(question, answer, type)] covering colour, shape, size, count, existence and spatial relations."""
    out = []
    for text, i in refexps:
        obj = objects[i]
        if obj.color not in text:
            out.append((f"What color is {text}?", obj.color, "color"))
        if obj.shape not in text:
            out.append((f"What shape is {text}?", obj.shape, "shape"))
        if obj.size not in text:
            out.append((f"What size is {text}?", obj.size, "size"))
    question, count = _count_question(objects, rng)
    out.append((question, NUMBER_WORDS[count], "count"))
    color, shape = list(COLORS)[rng.integers(len(COLORS))], SHAPES[rng.integers(len(SHAPES))]
    exists = any(o.color == color and o.shape == shape for o in objects)
    out.append((f"Is there a {color} {shape}?", "yes" if exists else "no", "exist"))
    if len(refexps) >= 2:
        (ta, a), (tb, b) = [refexps[j] for j in rng.choice(len(refexps), 2, replace=False)]
        answer = "yes" if objects[a].x < objects[b].x else "no"
        out.append((f"Is {ta} left of {tb}?", answer, "spatial"))
    return out


def describe_scene(scene, rng: np.random.Generator) -> None:
    scene.caption = caption(scene.objects)
    scene.refexps = referring_expressions(scene.objects)
    scene.questions = questions(scene.objects, scene.refexps, rng)

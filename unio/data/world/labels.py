"""The world's labels as words ("large red cube"): each attribute's value, and a label with one changed (the
misnamed lists of itm's and find_all's `list_noise`)."""
from __future__ import annotations

from unio.data.world.constants import COLORS, SHAPES, SIZES


WORLD_VALUES = {"size": list(SIZES), "color": list(COLORS), "shape": list(SHAPES)}   # a world label's words, in order


def attributes_of(words: str) -> dict:
    """{attribute: value} of the world's words in a label or query ("large red cube", "red object")."""
    return {a: w for w in words.lower().split() for a, values in WORLD_VALUES.items() if w in values}


def is_world_label(label: str) -> bool:
    """Whether a label names a size, a colour and a shape ("large red cube"), as the world's objects' do."""
    return len(attributes_of(label)) == len(WORLD_VALUES)


def relabelled(label: str, rng, changes: dict | None = None) -> str:
    """A world label with `changes` ({attribute: value}), or (None) one attribute drawn and changed to another value."""
    attributes = attributes_of(label)
    if changes is None:
        attribute = list(WORLD_VALUES)[int(rng.integers(len(WORLD_VALUES)))]
        others = [v for v in WORLD_VALUES[attribute] if v != attributes[attribute]]
        changes = {attribute: others[int(rng.integers(len(others)))]}
    attributes.update(changes)
    return " ".join(str(attributes[a]) for a in WORLD_VALUES)

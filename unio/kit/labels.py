"""Objects' labels: what detection calls an object, its list order, and whether a detected label answers a
query (the words of 'Find every "red cube".' against "large red cube")."""
from __future__ import annotations

from unio.data.world.constants import COLORS, SHAPES, SIZES

ANYTHING = {"object", "objects", "thing", "things", "everything"}


def query_matches(label: str, query: str | None) -> bool:
    """Whether a detected label ("large red cube") has every word of the query ("red cubes"): a plural
    counts as its singular, "object" matches anything, no query matches every label."""
    words = set(label.lower().split())
    wanted = [w for w in (query or "").lower().split() if w not in ANYTHING]
    return all(w in words or (w.endswith("s") and w[:-1] in words) for w in wanted)


def label_of(obj, attribute=None) -> str:
    """A record object's label: its `category` ("large red cube"), or one of its attributes."""
    attributes = obj.get("attributes") or {}
    return str(attributes[attribute]) if attribute and attribute in attributes else str(obj.get("category", "object"))


def left_to_right(objects) -> list:
    """[(box (x1, y1, x2, y2), label)] sorted as detection's default `order="x"` lists them."""
    return sorted(objects, key=lambda o: (o[0][0], o[0][1]))


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

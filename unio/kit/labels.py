"""Objects' labels: what detection calls an object, its list order, and whether a detected label answers a
query (the words of 'Find every "red cube".' against "large red cube")."""
from __future__ import annotations

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

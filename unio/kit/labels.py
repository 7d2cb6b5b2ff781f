"""Whether a detected label answers a query: the words of 'Find every "red cube".' against "large red cube"."""
from __future__ import annotations

ANYTHING = {"object", "objects", "thing", "things", "everything"}


def query_matches(label: str, query: str | None) -> bool:
    """Whether a detected label ("large red cube") has every word of the query ("red cubes"): a plural
    counts as its singular, "object" matches anything, no query matches every label."""
    words = set(label.lower().split())
    wanted = [w for w in (query or "").lower().split() if w not in ANYTHING]
    return all(w in words or (w.endswith("s") and w[:-1] in words) for w in wanted)

"""A big JSON annotation file read item by item: its top-level lists are indexed as byte spans while
each item is parsed once (to say what the index needs of it) and let go; an item is parsed again from
its span when a record asks for it. Memory then holds the spans, not the parsed file: COCO's instances
file of 100,000 images and 700,000 objects is a few hundred MB of text and several GB of Python objects."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable, Iterator

_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_OPEN: dict = {}   # path -> (process id, file descriptor): one per file and process (data workers fork)


class JsonItems:
    """The file's top-level object: `values` (keys whose value is not a list, parsed) and `lists` (key ->
    its items' (start, end) byte spans)."""

    def __init__(self, path: Path, keep: Callable[[str, object], None] | None = None):
        """`keep(key, item)` sees every list item once while the file is indexed, parsed from the bytes read
        as Latin-1: numbers and ASCII text are right, other text is not (parse `item(span)` for that)."""
        self.path, self.lists, others = Path(path), {}, {}
        text = self.path.read_bytes().decode("latin-1")   # one character per byte: a position is a byte offset
        for key, item, start, end in scan(text, others, self.path):
            self.lists.setdefault(key, []).append((start, end))
            if keep is not None:
                keep(key, item)
        del text
        self.values = {key: read_item(self.path, span) for key, span in others.items()}

    def item(self, span: tuple):
        return read_item(self.path, span)


def list_spans(path: Path, keep: Callable[[object], None] | None = None) -> list:
    """The (start, end) byte spans of the items of a file whose top level is a list (Visual Genome's files);
    `keep(item)` sees each item once, as JsonItems' `keep` does."""
    path = Path(path)
    text = path.read_bytes().decode("latin-1")
    spans = []
    for _, item, start, end in list_items(text, None, expect(text, skip(text, 0), "[", path) - 1, path):
        spans.append((start, end))
        if keep is not None:
            keep(item)
    return spans


def read_item(path: Path, span: tuple):
    """The item at `span` (start, end) of the file, parsed."""
    start, end = span
    key = str(path)
    pid, fd = _OPEN.get(key, (None, None))
    if pid != os.getpid():
        fd = os.open(key, os.O_RDONLY)
        _OPEN[key] = (os.getpid(), fd)
    return json.loads(os.pread(fd, end - start, start).decode("utf-8"))


def scan(text: str, values: dict, path: Path) -> Iterator[tuple]:
    """(key, item, start, end) for each item of each top-level list; other top-level values' spans go in `values`."""
    pos = expect(text, skip(text, 0), "{", path)
    while True:
        pos = skip(text, pos)
        if text.startswith("}", pos):
            return
        key, pos = decode(text, pos, path)
        pos = skip(text, expect(text, skip(text, pos), ":", path))
        if text.startswith("[", pos):
            pos = yield from list_items(text, key, pos, path)
        else:
            start, (_, pos) = pos, decode(text, pos, path)
            values[key] = (start, pos)
        pos = skip(text, pos)
        if text.startswith(",", pos):
            pos += 1
        elif not text.startswith("}", pos):
            raise ValueError(f"{path}: not valid JSON (expected ',' or '}}' at byte {pos})")


def list_items(text: str, key: str, pos: int, path: Path):
    """Yields the list's items from its '[' at `pos`; returns the position after its ']'."""
    pos = skip(text, pos + 1)
    if text.startswith("]", pos):
        return pos + 1
    while True:
        item, end = decode(text, pos, path)
        yield key, item, pos, end
        pos = skip(text, end)
        if text.startswith(",", pos):
            pos = skip(text, pos + 1)
        elif text.startswith("]", pos):
            return pos + 1
        else:
            raise ValueError(f"{path}: not valid JSON (expected ',' or ']' at byte {pos} in the list {key!r})")


def skip(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()


def expect(text: str, pos: int, char: str, path: Path) -> int:
    if not text.startswith(char, pos):
        raise ValueError(f"{path}: not valid JSON (expected {char!r} at byte {pos})")
    return pos + 1


def decode(text: str, pos: int, path: Path):
    try:
        return _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None

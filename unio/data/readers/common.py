"""What the readers of official dataset files share: splits of lazily built records, split roles,
JSON parsed once per file, COCO boxes and masks, and errors that name the file and the record."""
from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from unio.data.bad_records import BadRecord  # the readers' one error for bad data

ROLES = ("train", "validation", "test")   # the split names training and evaluation ask for
_JSON: dict = {}


def load_json(path: Path) -> dict:
    """A JSON file parsed once per process (several sources may read one instances file)."""
    key = str(Path(path).resolve())
    if key not in _JSON:
        try:
            with open(key, encoding="utf-8") as f:
                _JSON[key] = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
    return _JSON[key]


class LazySplit:
    """`len` items, record i built from item i on demand (nothing is read before it is asked for).
    `problems`: BadRecords found while indexing, left out of the items; reading raises the first
    until they are accepted (unio/data/bad_records.py)."""

    def __init__(self, items: Sequence, make: Callable, problems: Sequence = ()):
        self.items, self.make, self.problems, self._accepted = items, make, list(problems), False

    def accept_problems(self) -> None:
        self._accepted = True

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        if self.problems and not self._accepted:
            raise self.problems[0]
        if not -len(self.items) <= int(index) < len(self.items):
            raise IndexError(f"record {index} is outside 0..{len(self.items) - 1}")
        return self.make(self.items[int(index)])


class MergedSplit:
    """Several splits read as one (RefCOCO's testA + testB as its 'test'), interleaved in proportion,
    so that the first n records (what an evaluation of n examples reads) sample every part."""

    def __init__(self, parts: Sequence):
        self.parts = list(parts)
        part = np.concatenate([np.full(len(p), k) for k, p in enumerate(self.parts)]).astype(int)
        within = np.concatenate([np.arange(len(p)) for p in self.parts]).astype(int)
        place = np.concatenate([(np.arange(len(p)) + 0.5) / len(p) for p in self.parts])
        order = np.lexsort((part, place))
        self.part, self.within = part[order], within[order]
        self.problems = [p for part in self.parts for p in getattr(part, "problems", ())]

    def accept_problems(self) -> None:
        for part in self.parts:
            getattr(part, "accept_problems", lambda: None)()

    def __len__(self) -> int:
        return len(self.part)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= int(index) < len(self):
            raise IndexError(f"record {index} is outside 0..{len(self) - 1}")
        return self.parts[self.part[int(index)]][int(self.within[int(index)])]


def split_roles(official: Sequence[str], defaults: Mapping, chosen: Mapping) -> dict:
    """{role: [official split names]}: the user's choice (`train=val2017`), else the first default present.
    A default is a name or a list of names read as one ('testA+testB')."""
    roles = {}
    for role in ROLES:
        names = [chosen[role]] if chosen.get(role) else defaults.get(role, [])
        for name in names:
            parts = str(name).split("+")
            if all(p in official for p in parts):
                roles[role] = parts
                break
        else:
            if chosen.get(role):
                raise KeyError(f"{role}={chosen[role]!r}: no such split; splits: {', '.join(official)}")
    return roles


def xywh_box(bbox, file, record) -> list:
    """COCO [x, y, w, h] -> [x1, y1, x2, y2]; a box without area is bad data."""
    if bbox is None or len(bbox) != 4:
        raise BadRecord(file, record, f"bbox {bbox!r} is not [x, y, width, height]")
    x, y, w, h = (float(v) for v in bbox)
    if not (w > 0 and h > 0) or not np.isfinite([x, y, w, h]).all():
        raise BadRecord(file, record, f"bbox {bbox!r} has no area (width and height must be positive)")
    return [x, y, x + w, y + h]


class LazyMask:
    """A COCO segmentation (polygons, or RLE with list or string counts) decoded to an (H, W) bool
    mask by pycocotools only when an array is asked for."""

    def __init__(self, segmentation, height: int, width: int):
        self.segmentation, self.shape = segmentation, (int(height), int(width))

    def __array__(self, dtype=None, copy=None):
        mask = decode_segmentation(self.segmentation, *self.shape)
        return mask if dtype is None else mask.astype(dtype)


def decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    from pycocotools import mask as mask_utils
    if isinstance(segmentation, list):                        # polygons: [[x1, y1, x2, y2, ...], ...]
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):        # uncompressed RLE (iscrowd)
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:                                                     # compressed RLE
        rle = dict(segmentation, counts=segmentation["counts"].encode()
                   if isinstance(segmentation["counts"], str) else segmentation["counts"])
    return mask_utils.decode(rle).astype(bool)


def image_file(path: Path, source: str, record) -> Path:
    """The image's path; a missing file is named with its record before anything tries to read it."""
    if not path.is_file():
        raise BadRecord(path, f"{source}/{record}", "image file not found")
    return path


def first_dir(*candidates) -> Path:
    """The first candidate folder that exists (the first one when none does: errors then name it)."""
    for c in candidates:
        if c is not None and Path(c).is_dir():
            return Path(c)
    return Path(next(c for c in candidates if c is not None))


class ReaderSource:
    """Base of the readers: official split names plus the roles training and evaluation ask for
    ('train', 'validation', 'test'), each split indexed once, on first use."""
    name: str
    keys: tuple
    role_defaults: dict = {}

    def _init_splits(self, official: Sequence[str], chosen: Mapping) -> None:
        self.official, self._built = list(official), {}
        if not self.official:
            raise FileNotFoundError(f"source {self.name!r}: no annotation files found (see docs/data.md, "
                                    f"'Train on your data', for the layout)")
        self.roles = split_roles(self.official, self.role_defaults, chosen)

    def splits(self) -> list:
        return self.official + [r for r in self.roles if r not in self.official]

    def split(self, name: str):
        parts = [name] if name in self.official else self.roles.get(name)
        if parts is None:
            raise KeyError(f"source {self.name!r} has no split {name!r}; splits: {', '.join(self.splits())}")
        for part in parts:
            if part not in self._built:
                self._built[part] = self.build_split(part)
        return self._built[parts[0]] if len(parts) == 1 else MergedSplit([self._built[p] for p in parts])

    def build_split(self, name: str):
        raise NotImplementedError


def as_image(value):
    """A parquet cell as an image: a PIL image as it is, Arrow's {bytes, path} struct decoded."""
    if isinstance(value, dict) and value.get("bytes") is not None:
        import io

        from PIL import Image
        return Image.open(io.BytesIO(value["bytes"]))
    if isinstance(value, dict) and value.get("path"):
        return Path(value["path"])
    return value


def parquet_split(path: Path) -> str:
    """The split a parquet shard belongs to, from its name: `train-00000-of-00004.parquet` -> 'train'."""
    return re.split(r"[-_.]", path.stem)[0] if path.stem[0].isalpha() else path.stem


def parquet_files(path: Path) -> dict:
    """{split: [shard paths]} of a .parquet file or a folder of them (any depth), in name order."""
    path = Path(path)
    files = [path] if path.suffix == ".parquet" else sorted(path.rglob("*.parquet"))
    found: dict = {}
    for f in files:
        found.setdefault(parquet_split(f), []).append(f)
    return found


class ParquetRows:
    """The rows of parquet shards read by index without loading them: the files' metadata read at start, a
    row group read when one of its rows is asked for (the last `keep` kept), so memory holds a few row groups
    and nothing is converted or cached on disk. Rows are dicts of Python values (an image column stays
    Arrow's {bytes, path} struct: `as_image` decodes it)."""

    def __init__(self, files, keep: int = 4):
        import pyarrow.parquet as pq
        self.files, self.keep, self._open, self._groups = [str(f) for f in files], keep, {}, OrderedDict()
        metadata = [pq.ParquetFile(f).metadata for f in self.files]
        self.parts = [(k, g) for k, m in enumerate(metadata) for g in range(m.num_row_groups)]
        rows = [metadata[k].row_group(g).num_rows for k, g in self.parts]
        self.starts = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
        self.column_names = list(pq.ParquetFile(self.files[0]).schema_arrow.names) if self.files else []

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= int(index) < len(self):
            raise IndexError(f"row {index} is outside 0..{len(self) - 1}")
        part = int(np.searchsorted(self.starts, int(index), side="right")) - 1
        table = self._group(part)
        return {name: table.column(name)[int(index) - int(self.starts[part])].as_py() for name in table.column_names}

    def _group(self, part: int):
        if part not in self._groups:
            file, group = self.parts[part]
            self._groups[part] = self._file(file).read_row_group(group)
            while len(self._groups) > self.keep:
                self._groups.popitem(last=False)
        self._groups.move_to_end(part)
        return self._groups[part]

    def _file(self, k: int):
        """The k-th file, opened once per process (data workers fork)."""
        import pyarrow.parquet as pq
        if self._open.get("pid") != os.getpid():
            self._open = {"pid": os.getpid()}
            self._groups.clear()
        if k not in self._open:
            self._open[k] = pq.ParquetFile(self.files[k])
        return self._open[k]

"""RefCOCO, RefCOCO+ and RefCOCOg from their official files: `--source refcoco=refcoco:PATH`.

    PATH/refs(unc).p  (or refs(umd).p, refs(google).p; `split_by=umd` picks one)  the referring expressions
    PATH/instances.json                                    the COCO annotations they point into
    images: `images=FOLDER`, else PATH/../images/mscoco/images/train2014 (refer's layout), PATH/train2014
    or PATH/images

The pickle is read by an unpickler that refuses every global, so it can hold only plain data and can
never run code. One record per sentence (the official evaluation scores every sentence): all the
image's objects, and `refexps` [[sentence, index of the referred object]]. Splits as the refs name
them (train, val, testA, testB, test); 'validation' is val, 'test' is test, else testA + testB.

A parquet conversion (PATH a .parquet file or a folder of them, split from the file name
`{split}-00000-of-00001.parquet`) needs columns image, bbox ([x, y, w, h]; `bbox_format=xyxy` for
corners) and sentences (strings, or {sent | raw} mappings); `image=`, `bbox=`, `sentences=` rename them.
"""
from __future__ import annotations

import pickle
from collections import defaultdict
from pathlib import Path

from unio.data.readers.coco import CocoIndex, coco_object
from unio.data.readers.common import (
    BadRecord,
    LazySplit,
    ReaderSource,
    as_image,
    first_dir,
    image_file,
    parquet_split,
    xywh_box,
)
from unio.registries import register_source

ROLE_DEFAULTS = {"train": ["train"], "validation": ["val"], "test": ["test", "testA+testB", "testA", "val"]}


class _PlainData(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refused to load the global {module}.{name}: a refs file holds plain data only")


def read_refs(path: Path) -> list:
    """refer's refs(*).p (Python 2 or 3 pickle) as a list of plain dicts; globals are refused."""
    try:
        with open(path, "rb") as f:
            refs = _PlainData(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise ValueError(f"{path}: not a refs pickle of plain data ({error})") from None
    return _text(refs)


def _text(obj):
    """Python 2 byte strings -> str, all the way down."""
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    if isinstance(obj, dict):
        return {_text(k): _text(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_text(v) for v in obj]
    return obj


@register_source("refcoco")
def refcoco_source(path, name: str = "refcoco", **options):
    """The refer files (refs(*).p + instances.json), or a parquet conversion."""
    path = Path(path)
    if path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet")) and not any(path.glob("refs(*).p"))):
        return RefParquetSource(path, name, **options)
    return RefCocoSource(path, name, **options)


class RefCocoSource(ReaderSource):
    keys = ("image", "id", "source", "objects", "refexps")
    role_defaults = ROLE_DEFAULTS

    def __init__(self, path, name: str = "refcoco", images=None, split_by=None, masks: bool = True,
                 train=None, validation=None, test=None):
        self.root, self.name, self.masks, self._index = Path(path), name, bool(masks), None
        self.refs_file = self._refs_file(split_by)
        self.refs = read_refs(self.refs_file)
        self.images = first_dir(images, self.root.parent / "images" / "mscoco" / "images" / "train2014",
                                self.root / "train2014", self.root / "images")
        self._init_splits(sorted({r["split"] for r in self.refs}), {"train": train, "validation": validation,
                                                                   "test": test})

    def _refs_file(self, split_by) -> Path:
        files = sorted(self.root.glob(f"refs({split_by or '*'}).p"))
        if not files:
            raise FileNotFoundError(f"source {self.name!r}: no refs({split_by or '*'}).p in {self.root}")
        return files[0]

    def build_split(self, name: str) -> LazySplit:
        if self._index is None:
            self._index = CocoIndex.of({"instances": self.root / "instances.json"})
        index = self._index
        items = [(ref, sent) for ref in self.refs if ref["split"] == name for sent in ref["sentences"]]
        return LazySplit(items, lambda item: self.record(index, name, *item), index.problems)

    def record(self, index: CocoIndex, split: str, ref: dict, sentence: dict) -> dict:
        where = f"ref {ref['ref_id']} sentence {sentence.get('sent_id')}"
        image = index.image(ref["image_id"])
        if image is None:
            raise BadRecord(self.refs_file, where, f"image {ref['image_id']} is not in instances.json")
        anns = index.objects(ref["image_id"])
        target = next((i for i, (_, ann) in enumerate(anns) if ann["id"] == ref["ann_id"]), None)
        if target is None:
            raise BadRecord(self.refs_file, where, f"annotation {ref['ann_id']} is not in instances.json")
        return {"image": image_file(self.images / image["file_name"], self.name, f"{split}/{where}"),
                "id": f"{self.name}/{split}/{sentence.get('sent_id')}", "source": self.name, "split": split,
                "image_id": ref["image_id"], "ref_id": ref["ref_id"],
                "objects": [coco_object(index, image, p, ann, self.masks) for p, ann in anns],
                "refexps": [[sentence.get("sent") or sentence.get("raw"), target]]}


class RefParquetSource(ReaderSource):
    keys = ("image", "id", "source", "objects", "refexps")
    role_defaults = ROLE_DEFAULTS

    def __init__(self, path, name: str = "refcoco", image: str = "image", bbox: str = "bbox",
                 sentences: str = "sentences", bbox_format: str = "xywh", train=None, validation=None, test=None):
        self.name, self.columns, self.bbox_format = name, (image, bbox, sentences), bbox_format
        files = [Path(path)] if Path(path).suffix == ".parquet" else sorted(Path(path).rglob("*.parquet"))
        self.files = defaultdict(list)
        for f in files:
            self.files[parquet_split(f)].append(str(f))
        self._init_splits(sorted(self.files), {"train": train, "validation": validation, "test": test})

    def build_split(self, name: str) -> LazySplit:
        import datasets
        data = datasets.load_dataset("parquet", data_files={name: self.files[name]}, split=name)
        missing = [c for c in self.columns if c not in data.column_names]
        if missing:
            raise KeyError(f"source {self.name!r}: {self.files[name][0]} has no column {missing[0]!r}; columns: "
                           f"{', '.join(data.column_names)} (rename with image=, bbox=, sentences=)")
        return LazySplit(range(len(data)), lambda i: self.record(data, name, i))

    def record(self, data, split: str, i: int) -> dict:
        row, (image, bbox, sentences) = data[i], self.columns
        where = f"row {i}"
        box = xywh_box(row[bbox], self.files[split][0], where) if self.bbox_format == "xywh" else \
            xywh_box([row[bbox][0], row[bbox][1], row[bbox][2] - row[bbox][0], row[bbox][3] - row[bbox][1]],
                     self.files[split][0], where)
        texts = [row[sentences]] if isinstance(row[sentences], str) else row[sentences]
        texts = [t if isinstance(t, str) else (t.get("sent") or t.get("raw")) for t in texts]
        if row[image] is None or not texts:
            raise BadRecord(self.files[split][0], where, "no image" if row[image] is None else "no sentences")
        return {"image": as_image(row[image]), "id": f"{self.name}/{split}/{i}", "source": self.name, "split": split,
                "objects": [{"box": box}], "refexps": [[t, 0] for t in texts]}

"""Data sources: named collections of records per split (see unio/data/records.py for the schema).

A source is configured by name:
    world                                   a registered source, with its defaults
    mine=hf:PATH,image=img,captions=text    any Hugging Face `datasets` dataset (load_from_disk folder,
                                            parquet / image folder, or a hub name), columns mapped
    mine=folder:PATH                        a folder of images with one JSON list of records per split
    mine=PATH                               a YAML file ({kind: ..., path: ..., ...}), or a folder (either kind)
    mine                                    configs/data/mine.yaml
and a `datasets.Dataset` / `DatasetDict` object is a source as it is (`as_source`).
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Mapping

import yaml

from unio.data.readers.common import as_image
from unio.data.records import missing_keys
from unio.plugins import builtin_dir
from unio.registries import SOURCES, register_source


class HFSplit:
    def __init__(self, dataset, columns: Mapping, name: str, split: str, extra: Mapping):
        self.dataset, self.columns, self.name, self.split, self.extra = dataset, dict(columns), name, split, dict(extra)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        row = self.dataset[int(index)]
        record = {key: row[column] for key, column in self.columns.items() if column in row}
        if isinstance(record.get("image"), dict):   # a streamed parquet row: Arrow's {bytes, path} image struct
            record["image"] = as_image(record["image"])
        record.setdefault("id", f"{self.name}/{self.split}/{index}")
        return {**self.extra, **record, "source": self.name}


@register_source("hf")
class HFSource:
    """A `datasets` Dataset (one split, 'train'), a DatasetDict, or a path `datasets` can load.
    `columns` maps record keys to column names; columns named like schema keys map themselves.
    `stream=True` (PATH: parquet shards, `{split}-*.parquet`) reads rows from the shards as they are asked
    for, a row group at a time, without loading or converting the dataset (ParquetRows). `label_names`
    name an integer `label` column's classes (default: its ClassLabel names); `train=`, `validation=`,
    `test=` name the splits those roles read (GLUE: `test=validation_matched`, its test labels are hidden)."""

    def __init__(self, path=None, dataset=None, name: str = "hf", columns: Mapping | None = None,
                 max_depth: float = 10.0, stream: bool = False, label_names: list | None = None, train=None,
                 validation=None, test=None, **column_map):
        import datasets
        data = dataset if dataset is not None else streamed(path, name) if stream else load_hf(path)
        self.data = data if isinstance(data, (dict, datasets.DatasetDict)) else {"train": data}
        self.name, self.max_depth = name, float(max_depth)
        names = set().union(*(d.column_names for d in self.data.values()))
        mapping = {**(columns or {}), **column_map}
        bad = [c for c in mapping.values() if c not in names]
        if bad:
            raise KeyError(f"source {name!r}: no column {bad[0]!r}; columns: {', '.join(sorted(names))}")
        from unio.data.records import SCHEMA
        self.columns = {**{k: k for k in SCHEMA if k in names}, **mapping}
        self.keys = tuple(self.columns) + ("source", "id", "max_depth")
        self.label_names = list(label_names) if label_names is not None else class_names(self.data, self.columns)
        self.roles = {role: split for role, split in (("train", train), ("validation", validation), ("test", test)) if split}
        for role, split in self.roles.items():
            if split not in self.data:
                raise KeyError(f"source {name!r}: {role}={split!r}: no such split; splits: {', '.join(self.data)}")

    def splits(self) -> list:
        return list(self.data) + [role for role in self.roles if role not in self.data]

    def split(self, name: str) -> HFSplit:
        name = self.roles.get(name, name)
        if name not in self.data:
            raise KeyError(f"source {self.name!r} has no split {name!r}; splits: {', '.join(self.splits())}")
        extra = {"max_depth": self.max_depth, **({"label_names": self.label_names} if self.label_names else {})}
        return HFSplit(self.data[name], self.columns, self.name, name, extra)


def class_names(data: Mapping, columns: Mapping) -> list | None:
    """The names of the `label` column where the dataset's features say it is a ClassLabel (GLUE's are)."""
    for part in data.values():
        feature = (getattr(part, "features", None) or {}).get(columns.get("label"))
        if getattr(feature, "names", None):
            return list(feature.names)
    return None


def streamed(path, name: str) -> dict:
    """{split: ParquetRows} of the parquet shards under `path`."""
    from unio.data.readers.common import ParquetRows, parquet_files
    files = parquet_files(Path(str(path)))
    if not files:
        raise FileNotFoundError(f"source {name!r}: stream=true reads parquet shards, and {path} holds no .parquet file")
    return {split: ParquetRows(shards) for split, shards in files.items()}


def load_hf(path):
    import datasets
    folder = Path(str(path))
    if (folder / "dataset_dict.json").is_file() or (folder / "dataset_info.json").is_file():
        return datasets.load_from_disk(str(folder))
    return datasets.load_dataset(str(path))


class FolderSplit:
    def __init__(self, folder: Path, records: list, name: str, split: str, max_depth: float):
        self.folder, self.records, self.name, self.split, self.max_depth = folder, records, name, split, max_depth

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = dict(self.records[int(index)])
        if isinstance(record.get("image"), str):
            record["image"] = self.folder / record["image"]
        record.setdefault("id", f"{self.name}/{self.split}/{index}")
        record.setdefault("max_depth", self.max_depth)
        return {**record, "source": self.name}


@register_source("folder")
class FolderSource:
    """A folder holding `{split}.json` files, each a JSON list of records whose `image` is a file
    name relative to the folder (the rest of the schema as JSON: boxes, captions, questions ...)."""

    def __init__(self, path, name: str = "folder", max_depth: float = 10.0):
        self.folder, self.name, self.max_depth = Path(path), name, float(max_depth)
        files = sorted(self.folder.glob("*.json"))
        if not files:
            raise FileNotFoundError(f"source {name!r}: no {{split}}.json in {self.folder}")
        self.data = {f.stem: json.loads(f.read_text()) for f in files}
        self.keys = tuple(sorted({k for records in self.data.values() for r in records[:1] for k in r}
                                 | {"id", "source", "max_depth"}))

    def splits(self) -> list:
        return list(self.data)

    def split(self, name: str) -> FolderSplit:
        if name not in self.data:
            raise KeyError(f"source {self.name!r} has no split {name!r}; splits: {', '.join(self.data)}")
        return FolderSplit(self.folder, self.data[name], self.name, name, self.max_depth)


def as_source(obj, name: str = "data"):
    """A source object as it is; a `datasets` Dataset or DatasetDict wrapped as one."""
    if hasattr(obj, "split") and hasattr(obj, "splits") and hasattr(obj, "keys"):
        return obj
    import datasets
    if isinstance(obj, (datasets.Dataset, datasets.DatasetDict)):
        return HFSource(dataset=obj, name=name)
    raise TypeError(f"source {name!r}: expected a source, a datasets.Dataset or a DatasetDict, got {type(obj).__name__}")


def parse_spec(spec: str) -> dict:
    """'hf:PATH,image=img,max_depth=10' -> {'kind': 'hf', 'path': PATH, 'image': 'img', 'max_depth': 10}."""
    head, *options = spec.split(",")
    kind, sep, path = head.partition(":")
    config = {"kind": kind, "path": path} if sep and kind.isidentifier() and len(kind) > 1 else {"path": head}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise ValueError(f"source option {option!r} is not KEY=VALUE (in {spec!r})")
        config[key.strip()] = yaml.safe_load(value)
    return config


def spec_config(name: str, spec: str | None) -> dict:
    """The configuration {kind, ...} of source `name` from its command-line spec (or its YAML file)."""
    if spec is None:
        path = builtin_dir("configs") / "data" / f"{name}.yaml"
        return yaml.safe_load(path.read_text()) if path.is_file() else {"kind": name}
    config = parse_spec(spec)
    path = Path(config.get("path", ""))
    if "kind" not in config and path.suffix in (".yaml", ".yml"):
        return {**yaml.safe_load(path.read_text()), **{k: v for k, v in config.items() if k != "path"}}
    if "kind" not in config:
        config["kind"] = "folder" if any(path.glob("*.json")) and not (path / "dataset_dict.json").is_file() \
            and not (path / "dataset_info.json").is_file() else "hf"
    return config


def build_source(name: str, config, image_size: int):
    """A source object from a config dict, a spec string, a source object or a Dataset."""
    if config is None or isinstance(config, str):
        config = spec_config(name, config)
    if not isinstance(config, Mapping):
        return as_source(config, name)
    config = dict(config)
    factory = SOURCES.get(config.pop("kind", name))
    accepts = inspect.signature(factory).parameters
    if "image_size" in accepts:
        config.setdefault("image_size", image_size)
    if "name" in accepts:
        config.setdefault("name", name)
    return factory(**config)


def check_pairs(pairs, tasks: Mapping, sources: Mapping) -> None:
    """Fail before training when a task needs a record key its source lacks."""
    for task_name, source_name in pairs:
        task, source = tasks[task_name], sources[source_name]
        missing = missing_keys(getattr(task, "requires", ("image",)), source.keys)
        if missing:
            raise ValueError(f"task {task_name!r} needs the record key {missing[0]!r}, which source "
                             f"{source_name!r} does not have (it has: {', '.join(source.keys)})")

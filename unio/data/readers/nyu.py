"""NYU Depth v2: `--source nyu=nyu:PATH`, PATH one of

    nyu_depth_v2_labeled.mat   the official labelled set (MATLAB v7.3 = HDF5, read with h5py, frame by frame):
                               images (N, 3, W, H) uint8 and depths (N, W, H) metres, in MATLAB's axis order;
                               splits.mat beside it (or `splits=FILE`) gives the official train (795) / test
                               (654) frames; without it every frame is in one split, 'all'
    a folder of parquet files, or a `datasets` save_to_disk folder: columns image and depth (`depth=COLUMN`),
                               depth a 2-D array in metres, a float image, or a 16-bit image in millimetres
    a folder of image pairs:   {split}/.../NAME.jpg (or rgb_N.jpg) and NAME_depth.png (or sync_depth_N.png),
                               the depth a 16-bit PNG in millimetres (`depth_scale=` metres per unit)

Valid pixels are those with a finite depth within 0.001-10 m (`min_depth=`, `max_depth=`): the range
the papers' metrics use, and the range depth is normalised by.
"""
from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from unio.data.readers.common import BadRecord, LazySplit, ReaderSource, as_image
from unio.registries import register_source

ROLE_DEFAULTS = {"train": ["train", "all"], "validation": ["test", "all"], "test": ["test", "all"]}
KEYS = ("image", "id", "source", "depth", "depth_valid", "max_depth")


def depth_record(image, depth, name: str, record_id: str, where, min_depth: float, max_depth: float) -> dict:
    """A record from an image and a (H, W) depth in metres; pixels out of range or not finite are not valid."""
    depth = np.asarray(depth, np.float32)
    if depth.ndim != 2:
        raise BadRecord(where, record_id, f"depth has shape {depth.shape}, not (H, W)")
    valid = np.isfinite(depth) & (depth >= min_depth) & (depth <= max_depth)
    if not valid.any():
        nan = int(np.isnan(depth).sum())
        raise BadRecord(where, record_id, f"no pixel has a depth within {min_depth}-{max_depth} m"
                        + (f" ({nan} of {depth.size} are NaN)" if nan else ""))
    return {"image": image, "id": f"{name}/{record_id}", "source": name, "depth": np.where(valid, depth, 0),
            "depth_valid": valid, "max_depth": max_depth}


@register_source("nyu")
def nyu_source(path, name: str = "nyu", **options):
    """The official .mat file, a parquet / save_to_disk conversion, or a folder of image + depth PNG pairs."""
    path = Path(path)
    if path.suffix == ".mat":
        return NyuMatSource(path, name, **options)
    if path.suffix == ".parquet" or any(path.glob("*.parquet")) or any(path.glob("*/*.parquet")) \
            or (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file():
        return NyuTableSource(path, name, **options)
    return NyuFolderSource(path, name, **options)


class _Base(ReaderSource):
    keys = KEYS
    role_defaults = ROLE_DEFAULTS

    def _options(self, name, min_depth, max_depth) -> None:
        self.name, self.min_depth, self.max_depth = name, float(min_depth), float(max_depth)


class NyuMatSource(_Base):
    def __init__(self, path, name: str = "nyu", splits=None, min_depth: float = 1e-3, max_depth: float = 10.0,
                 train=None, validation=None, test=None):
        self._options(name, min_depth, max_depth)
        self.path, self._file, self._pid = Path(path), None, None
        with self._h5() as f:
            for key in ("images", "depths"):
                if key not in f:
                    raise KeyError(f"{self.path}: no dataset {key!r}; is this nyu_depth_v2_labeled.mat?")
            n = f["depths"].shape[0]
        self.frames = self._splits(Path(splits) if splits else self.path.parent / "splits.mat", n)
        self._init_splits(list(self.frames), {"train": train, "validation": validation, "test": test})

    def _h5(self):
        import h5py
        return h5py.File(self.path, "r")

    def _splits(self, file: Path, n: int) -> dict:
        if not file.is_file():
            return {"all": list(range(n))}
        from scipy.io import loadmat
        data = loadmat(str(file))
        return {"train": [int(i) - 1 for i in np.ravel(data["trainNdxs"])],
                "test": [int(i) - 1 for i in np.ravel(data["testNdxs"])]}

    def build_split(self, name: str) -> LazySplit:
        return LazySplit(self.frames[name], lambda i: self.record(name, i))

    def frame(self, i: int) -> tuple:
        """(image (H, W, 3) uint8, depth (H, W) metres) of frame i; the file is opened once per process."""
        if self._file is None or self._pid != os.getpid():
            self._file, self._pid = self._h5(), os.getpid()
        image = np.ascontiguousarray(self._file["images"][i].transpose(2, 1, 0))    # (3, W, H) -> (H, W, 3)
        return image, np.ascontiguousarray(self._file["depths"][i].T)               # (W, H) -> (H, W)

    def record(self, split: str, i: int) -> dict:
        image, depth = self.frame(i)
        return depth_record(image, depth, self.name, f"{split}/{i}", self.path, self.min_depth, self.max_depth)

    def __getstate__(self):
        return {**self.__dict__, "_file": None, "_pid": None}


def depth_metres(value, scale: float | None, where, record_id) -> np.ndarray:
    """A depth cell (array, float image, 16-bit image) in metres; integer images are millimetres by default."""
    value = as_image(value)
    if isinstance(value, (str, Path)):
        value = Image.open(value)
    array = np.asarray(value)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype.kind in "iu":
        return array.astype(np.float32) * (1e-3 if scale is None else scale)
    if array.dtype.kind != "f":
        raise BadRecord(where, record_id, f"depth of dtype {array.dtype} is not a number")
    return array.astype(np.float32) * (1.0 if scale is None else scale)


class NyuTableSource(_Base):
    def __init__(self, path, name: str = "nyu", image: str = "image", depth: str = "depth", depth_scale=None,
                 min_depth: float = 1e-3, max_depth: float = 10.0, train=None, validation=None, test=None):
        from unio.data.sources import load_hf
        self._options(name, min_depth, max_depth)
        self.path, self.columns, self.scale = Path(path), (image, depth), depth_scale
        self.data = self._load(load_hf) if self.path.suffix != ".parquet" else self._parquet([self.path])
        missing = [c for c in self.columns for d in self.data.values() if c not in d.column_names]
        if missing:
            raise KeyError(f"source {name!r}: no column {missing[0]!r} in {self.path} (rename with image=, depth=)")
        self._init_splits(list(self.data), {"train": train, "validation": validation, "test": test})

    def _load(self, load_hf) -> dict:
        if any(self.path.glob("*.parquet")) or any(self.path.glob("*/*.parquet")):
            files = defaultdict(list)
            for f in sorted(self.path.rglob("*.parquet")):
                files[re.split(r"[-_.]", f.stem)[0]].append(str(f))
            return self._parquet(files)
        data = load_hf(self.path)
        return dict(data) if hasattr(data, "keys") else {"train": data}

    @staticmethod
    def _parquet(files) -> dict:
        import datasets
        files = files if isinstance(files, dict) else {"train": [str(f) for f in files]}
        return {s: datasets.load_dataset("parquet", data_files={s: f}, split=s) for s, f in files.items()}

    def build_split(self, name: str) -> LazySplit:
        data = self.data[name]
        return LazySplit(range(len(data)), lambda i: self.record(data, name, i))

    def record(self, data, split: str, i: int) -> dict:
        row, (image, depth) = data[i], self.columns
        metres = depth_metres(row[depth], self.scale, self.path, f"{split}/{i}")
        return depth_record(as_image(row[image]), metres, self.name, f"{split}/{i}", self.path,
                            self.min_depth, self.max_depth)


_PAIRS = ((re.compile(r"^sync_depth_(.+)\.png$"), "rgb_{}"), (re.compile(r"^(.+)_depth\.png$"), "{}"))


class NyuFolderSource(_Base):
    def __init__(self, path, name: str = "nyu", depth_scale=None, min_depth: float = 1e-3, max_depth: float = 10.0,
                 train=None, validation=None, test=None):
        self._options(name, min_depth, max_depth)
        self.root, self.scale, self.pairs = Path(path), depth_scale, defaultdict(list)
        for depth in sorted(self.root.rglob("*.png")):
            rgb = self._rgb(depth)
            if rgb is not None:
                split = depth.relative_to(self.root).parts[0] if depth.parent != self.root else "all"
                self.pairs[split].append((rgb, depth))
        self._init_splits(sorted(self.pairs), {"train": train, "validation": validation, "test": test})

    @staticmethod
    def _rgb(depth: Path):
        for pattern, stem in _PAIRS:
            match = pattern.match(depth.name)
            if match:
                for suffix in (".jpg", ".png", ".jpeg"):
                    rgb = depth.with_name(stem.format(match.group(1)) + suffix)
                    if rgb.is_file():
                        return rgb
                raise BadRecord(depth, depth.stem, "no image beside this depth map")
        return None

    def build_split(self, name: str) -> LazySplit:
        return LazySplit(self.pairs[name], lambda pair: self.record(name, *pair))

    def record(self, split: str, rgb: Path, depth: Path) -> dict:
        record_id = f"{split}/{depth.relative_to(self.root).with_suffix('')}"
        return depth_record(rgb, depth_metres(depth, self.scale, depth, record_id), self.name, record_id, depth,
                            self.min_depth, self.max_depth)

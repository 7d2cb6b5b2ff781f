"""Checkpoints written atomically (a temporary folder, then a rename) and restored exactly."""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

STATE = "trainer_state.pt"


def save_checkpoint(directory: Path, model, modalities, optimizer, scheduler, step: int, extra: dict) -> None:
    tmp = staging(directory)
    shutil.rmtree(tmp, ignore_errors=True)
    write_contents(tmp, model, modalities, step, extra, optimizer, scheduler)
    commit(tmp, directory)


def staging(directory: Path) -> Path:
    """Where a checkpoint is written before commit() puts it in place."""
    directory = Path(directory)
    return directory.with_name(directory.name + ".tmp")


def write_contents(tmp: Path, model, modalities, step: int, extra: dict, optimizer=None, scheduler=None) -> None:
    """The weights (save_pretrained), the tokenizers and the trainer's state; the optimizer and scheduler
    unless an engine (DeepSpeed) keeps them in its own files beside these."""
    model.save_pretrained(tmp / "model")
    modalities.save(tmp / "tokenizers")
    state = {"step": step, "rng": rng_state(), "extra": extra}
    if optimizer is not None:
        state.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict())
    torch.save(state, tmp / STATE)


def commit(tmp: Path, directory: Path) -> None:
    """Renames a finished checkpoint into place; the previous one stays whole until then. Its files
    reach the disk before the rename and the rename after it, so a power loss leaves one whole."""
    directory = Path(directory)
    old = directory.with_name(directory.name + ".old")
    sync_tree(tmp)
    if directory.exists():
        directory.replace(old)
    tmp.replace(directory)
    sync_path(directory.parent)
    shutil.rmtree(old, ignore_errors=True)


def sync_path(path: Path) -> None:
    """fsync a file or a folder (a folder's entries: what renames and new files changed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_tree(folder: Path) -> None:
    for path in sorted(Path(folder).rglob("*"), key=lambda p: -len(p.parts)):   # files before their folders
        sync_path(path)
    sync_path(folder)


def find_checkpoint(run_dir: Path) -> Path | None:
    """The run's checkpoint; a crash between the two renames leaves `.old`, which is still whole."""
    for name in ("checkpoint", "checkpoint.old"):
        path = Path(run_dir) / name
        if (path / STATE).is_file():
            return path
    return None


def rng_state() -> dict:
    """The RNG states as tensors and plain values only, so they load with weights_only=True."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    numpy = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
             "has_gauss": int(has_gauss), "cached": float(cached)}
    return {"python": random.getstate(), "numpy": numpy, "torch": torch.get_rng_state()}


def restore_rng(state: dict) -> None:
    random.setstate(tuple(state["python"][:1]) + (tuple(state["python"][1]),) + tuple(state["python"][2:]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])


def load_state(directory: Path) -> dict:
    return safe_load(Path(directory) / STATE)


def safe_load(path: Path):
    """torch.load that runs no code: tensors and plain values only (weights_only=True). A file holding
    anything else (a pickle can execute code on load) is refused, naming the file."""
    import pickle
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"refusing to load {path}: it holds objects other than tensors and plain values, and "
                         f"loading them could run code; use checkpoints written by unio ({error})") from None

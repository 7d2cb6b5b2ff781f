"""Checkpoints written atomically (a temporary folder, then a rename), each file's checksum beside them,
the one before kept as `checkpoint.previous`, and restored exactly. A write that fails (no space left ...)
leaves the checkpoints there were; a damaged checkpoint is refused on resume, naming the file, and the
previous one used."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

STATE = "trainer_state.pt"
MANIFEST = "checksums.json"   # {file: {"bytes": n, "sha256": hex}} of everything else in the checkpoint
KEPT = (".previous", ".old")  # the checkpoint before the newest; .old: the same, left by older versions


class CheckpointError(RuntimeError):
    """A checkpoint could not be written, or none that was written is whole."""


def save_checkpoint(directory: Path, model, modalities, optimizer, scheduler, step: int, extra: dict) -> None:
    tmp = staging(directory)
    shutil.rmtree(tmp, ignore_errors=True)
    with failed_writes_reported(tmp, directory, step):
        write_contents(tmp, model, modalities, step, extra, optimizer, scheduler)
        commit(tmp, directory)


@contextmanager
def failed_writes_reported(tmp: Path, directory: Path, step: int):
    """An error while a checkpoint is written (ENOSPC, EIO ...; torch.save reports a full disk as a
    RuntimeError): the half-written folder removed and a CheckpointError saying so and what is left; the
    checkpoints already there are untouched."""
    try:
        yield
    except Exception as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(error, tmp, directory, step) from error


def write_error(error: Exception, tmp: Path, directory: Path, step: int) -> CheckpointError:
    """The CheckpointError for a failed write of the checkpoint of `step` into `tmp`: why, and what is kept."""
    kept = [str(p) for p in (Path(directory), *(Path(str(directory) + k) for k in KEPT)) if (p / STATE).is_file()]
    hint = "free some space, then " if getattr(error, "errno", None) == errno.ENOSPC else ""
    reason = (f"{error.strerror or error}: {error.filename or tmp}" if isinstance(error, OSError)
              else f"{type(error).__name__}: {error}")
    return CheckpointError(
        f"could not write the checkpoint of step {step} ({reason}); the checkpoints already written are untouched "
        f"({', '.join(kept) or 'none yet'}); {hint}rerun the same command with --resume to continue from the last one")


def staging(directory: Path) -> Path:
    """Where a checkpoint is written before commit() puts it in place."""
    directory = Path(directory)
    return directory.with_name(directory.name + ".tmp")


def save_weights(model, folder: Path) -> None:
    """model.save_pretrained(folder) without transformers' "Writing model shards" bar, which would put a
    line in the log at every checkpoint (--no-progress or not)."""
    from transformers.utils import logging
    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        model.save_pretrained(folder)
    finally:
        if shown:
            logging.enable_progress_bar()


def write_contents(tmp: Path, model, modalities, step: int, extra: dict, optimizer=None, scheduler=None) -> None:
    """The weights (save_pretrained), the tokenizers and the trainer's state; the optimizer and scheduler
    unless an engine (DeepSpeed) keeps them in its own files beside these."""
    save_weights(model, tmp / "model")
    modalities.save(tmp / "tokenizers")
    state = {"step": step, "rng": rng_state(), "extra": extra}
    if optimizer is not None:
        state.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict())
    torch.save(state, tmp / STATE)


def commit(tmp: Path, directory: Path) -> None:
    """Writes the checksums, then renames a finished checkpoint into place, the one it replaces becoming
    `.previous` (the one before that is dropped). Its files reach the disk before the rename and the
    rename after it, so a power loss leaves one whole."""
    directory = Path(directory)
    previous = directory.with_name(directory.name + ".previous")
    write_manifest(tmp)
    sync_tree(tmp)
    if directory.exists():
        shutil.rmtree(previous, ignore_errors=True)
        directory.replace(previous)
    tmp.replace(directory)
    sync_path(directory.parent)
    shutil.rmtree(directory.with_name(directory.name + ".old"), ignore_errors=True)   # left by older versions


def write_manifest(folder: Path) -> None:
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": sha256(p)} for p in files}
    (Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=1))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def damage(directory: Path) -> str | None:
    """What is wrong with a checkpoint (a file missing, truncated or changed since it was written), or None.
    A checkpoint from before checksums were written is checked by loading its state."""
    directory = Path(directory)
    manifest = directory / MANIFEST
    if not manifest.is_file():
        try:
            load_state(directory)
        except Exception as error:   # a truncated zip, a refused pickle ...
            return f"{directory / STATE} does not load ({error})"
        return None
    for name, want in json.loads(manifest.read_text()).items():
        path = directory / name
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != want["bytes"]:
            return f"{path} holds {path.stat().st_size} bytes, {want['bytes']} were written (truncated?)"
        if sha256(path) != want["sha256"]:
            return f"{path} differs from what was written (its checksum does not match {MANIFEST})"
    return None


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
    """The run's newest whole checkpoint: `checkpoint`, else the one before it (a damaged one is skipped
    with a warning naming what is wrong). None when there is none; a CheckpointError when every one is damaged."""
    found, problems = [p for p in checkpoints(run_dir) if (p / STATE).is_file() or (p / MANIFEST).is_file()], []
    for path in found:
        problem = damage(path)
        if problem is None:
            if problems:
                warnings.warn(f"checkpoint {problems[-1]}; resuming from {path} instead", stacklevel=2)
            return path
        problems.append(problem)
    if problems:
        raise CheckpointError("no whole checkpoint to resume from: " + "; ".join(problems))
    return None


def checkpoints(run_dir: Path) -> list:
    """The run's checkpoint folders, newest first."""
    return [Path(run_dir) / ("checkpoint" + suffix) for suffix in ("", *KEPT)]


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

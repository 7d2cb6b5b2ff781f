"""Checkpoints written atomically (a temporary folder, then a rename) and restored exactly."""
from __future__ import annotations

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
    """Renames a finished checkpoint into place; the previous one stays whole until then."""
    directory = Path(directory)
    old = directory.with_name(directory.name + ".old")
    if directory.exists():
        directory.replace(old)
    tmp.replace(directory)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(run_dir: Path) -> Path | None:
    """The run's checkpoint; a crash between the two renames leaves `.old`, which is still whole."""
    for name in ("checkpoint", "checkpoint.old"):
        path = Path(run_dir) / name
        if (path / STATE).is_file():
            return path
    return None


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def load_state(directory: Path) -> dict:
    return torch.load(Path(directory) / STATE, weights_only=False)

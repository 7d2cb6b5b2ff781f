"""Checkpoints written atomically (a temporary folder, then a rename) and restored exactly."""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import torch

STATE = "trainer_state.pt"


def save_checkpoint(directory: Path, model, modalities, optimizer, scheduler, step: int, extra: dict) -> None:
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp / "model")
    modalities.save(tmp / "tokenizers")
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": rng_state(), "extra": extra}, tmp / STATE)
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

"""The trainer's backend for one process: the model on the GPU when there is one, its blocks
compiled, bf16 autocast, gradients accumulated over `grad_accum` batches, then a clipped AdamW step."""
from __future__ import annotations

from pathlib import Path

import torch

from unio.train import checkpoint as ckpt


class SingleDevice:
    rank = 0
    world = 1   # processes training together
    fused = True            # fused AdamW

    def __init__(self, grad_accum: int, clip: float, bf16: bool, compile: bool):
        self.accum, self.clip, self.bf16, self.compile = grad_accum, clip, bf16, compile
        self.device_type = "cuda" if torch.cuda.is_available() else "cpu"

    def place(self, model) -> None:
        if torch.cuda.is_available():
            model.cuda()
        if self.compile:
            model.compile_blocks()

    def wrap(self, model, optimizer, scheduler) -> None:
        """Nothing to wrap: the trainer's model, optimizer and scheduler are used as they are."""

    def forward(self, model, batch: dict):
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16):
            return model(**batch)

    def backward(self, loss) -> None:
        loss.backward()

    def update(self, model, optimizer, scheduler) -> None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), self.clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()

    def save_checkpoint(self, directory: Path, model, mods, optimizer, scheduler, step: int, extra: dict) -> None:
        ckpt.save_checkpoint(directory, model, mods, optimizer, scheduler, step, extra)

    def restore(self, existing: Path, state: dict, optimizer, scheduler) -> None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ckpt.restore_rng(state["rng"])

    def plain_model(self, model):
        """The model to evaluate and export: the trained one itself."""
        return model

    def finish(self, model, log, step: int):
        return model

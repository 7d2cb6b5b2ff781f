"""The trainer's backend for data parallelism under DeepSpeed (ZeRO): the engine steps, checkpoints
per rank, and gathers ZeRO-3's partitioned weights for evaluation and export. Imported only when
--deepspeed is given."""
from __future__ import annotations

import os
import shutil
from functools import partial
from pathlib import Path

import deepspeed
import torch
import torch.distributed as dist

from unio.train import checkpoint as ckpt


class DeepSpeedBackend:
    fused = False           # the engine wraps the optimizer in its own
    accum = 1               # batches per loop step: the engine accumulates micro-batches itself

    def __init__(self, config: dict):
        self.config, self.engine = config, None
        self.rank, self.world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))

    def place(self, model) -> None:
        if torch.cuda.is_available():
            model.cuda()

    def wrap(self, model, optimizer, scheduler) -> None:
        self.engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                               config=self.config)

    def forward(self, model, batch: dict):
        """The engine's forward of `model` (which it wraps); bf16, if any, is the engine's."""
        return self.engine(**batch)

    def backward(self, loss) -> None:
        self.engine.backward(loss)

    def update(self, model, optimizer, scheduler) -> None:
        """The engine's step: clipping, optimizer and schedule, at each accumulation boundary."""
        self.engine.step()

    def save_checkpoint(self, directory: Path, model, mods, optimizer, scheduler, step: int, extra: dict) -> None:
        """Every rank writes its part (DeepSpeed's engine checkpoint, its RNG); rank 0 the weights in
        save_pretrained form, the tokenizers and the step, then renames the whole into place. A write that
        fails on one rank fails on all (each raises CheckpointError), so no rank is left waiting for the others
        (an error inside DeepSpeed's own save, between its collectives, can still leave them waiting)."""
        tmp = ckpt.staging(directory)
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        dist.barrier()
        wrote = partial(every_rank_wrote, tmp=tmp, directory=directory, step=step,
                        device=next(self.engine.module.parameters()).device)
        wrote(lambda: self.engine.save_checkpoint(str(tmp / "deepspeed"), tag="state"))
        weights = self.plain_model(model)   # every rank takes part (ZeRO-3 gathers); rank 0 gets them
        wrote(lambda: self.write_part(tmp, weights, mods, step, extra))
        wrote(lambda: ckpt.commit(tmp, directory) if self.rank == 0 else None)

    def write_part(self, tmp: Path, weights, mods, step: int, extra: dict) -> None:
        """This rank's files of a checkpoint beside the engine's: its RNG; on rank 0 the rest."""
        torch.save(ckpt.rng_state(), tmp / "deepspeed" / f"rng_rank{self.rank}.pt")
        if self.rank == 0:
            ckpt.write_contents(tmp, weights, mods, step, extra)

    def restore(self, existing: Path, state: dict, optimizer, scheduler) -> None:
        """Each rank's optimizer partition, schedule and RNG, from DeepSpeed's own files."""
        self.engine.load_checkpoint(str(existing / "deepspeed"), tag="state")
        ckpt.restore_rng(ckpt.safe_load(existing / "deepspeed" / f"rng_rank{self.rank}.pt"))

    def plain_model(self, model):
        """On rank 0, the trained weights in a model of their own, outside DeepSpeed (ZeRO-3 partitions
        the parameters and hooks the module into collectives, so one rank cannot run it alone); None
        on the other ranks. Every rank must call it."""
        module = self.engine.module
        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
            state = {k: v.detach().clone() for k, v in module.state_dict().items()} if self.rank == 0 else None
        if state is None:
            return None
        plain = type(module)(module.config)
        plain.load_state_dict(state)
        return plain.to(next(iter(state.values())).device)

    def finish(self, model, log, step: int):
        """After the last step: the ranks compare their weights, rank 0 logs the outcome, and all raise
        if they differ; then rank 0 gets the gathered model (None elsewhere) to export and evaluate."""
        checksum = self.weights_checksum()
        agree = ranks_agree(checksum, next(self.engine.module.parameters()).device)
        log.write({"step": step, "ranks_agree": agree, "weights_checksum": checksum})
        if not agree:
            raise RuntimeError(f"rank {self.rank}: the ranks ended training with different weights "
                               f"(this rank's checksum {checksum!r})")
        return self.plain_model(model)

    def weights_checksum(self) -> float:
        """The sum of all weights, in float64. Under ZeRO-1/2 each rank keeps a full copy, which must
        not drift; under ZeRO-3 each holds a partition, and the gathered whole is summed."""
        module = self.engine.module
        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
            return sum(float(p.detach().double().sum()) for p in module.parameters())


def every_rank_wrote(write, tmp: Path, directory: Path, step: int, device="cpu") -> None:
    """Runs this rank's `write` of a checkpoint; returns once every rank's has succeeded. When any failed,
    rank 0 removes the half-written folder (all have stopped writing by then) and every rank raises
    CheckpointError: the failing ranks their own error, the others one naming the first that failed."""
    error = None
    try:
        write()
    except Exception as failed:   # OSError; torch.save's RuntimeError on a full disk; safetensors' own
        error = failed
    rank, world = dist.get_rank(), dist.get_world_size()
    first_failed = torch.tensor([world if error is None else rank], device=device)
    dist.all_reduce(first_failed, op=dist.ReduceOp.MIN)
    if first_failed.item() == world:
        return
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    if error is not None:
        raise ckpt.write_error(error, tmp, directory, step) from error
    raise ckpt.CheckpointError(
        f"rank {rank}: rank {first_failed.item()} could not write its part of the checkpoint of step {step} (its "
        f"error says why); the checkpoints already written are untouched; rerun the same command with --resume to "
        f"continue from the last one")


def ranks_agree(value: float, device) -> bool:
    """Whether every rank holds the same `value` (one all-reduce of (value, -value) with MIN)."""
    extremes = torch.tensor([value, -value], dtype=torch.float64, device=device)
    dist.all_reduce(extremes, op=dist.ReduceOp.MIN)
    return bool(extremes[0] == -extremes[1])

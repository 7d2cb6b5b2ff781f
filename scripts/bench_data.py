"""What the data worker costs the training step (`scripts/bench.py --only data`).

train_mixture.py builds each batch in a worker process (rendering the world's scenes, encoding depth targets,
augmenting) while the step runs on the machine's threads; on a CPU both share the cores. The stream of the
default command (its mixture, stages and augmentation) is built as the trainer builds it; then, in rounds that
alternate which goes first, a stretch of Trainer.train_step on batches built beforehand is timed against as many
steps on batches from a data worker (a fresh one each turn, timed once it runs as in training, closed before the
other turn); the median of the rounds' ratios is what the worker costs a step. Also the worker's CPU time a
batch (built here on one thread) and GOMP_SPINCOUNT as this process got it: train_mixture.py sets 1,000 before
torch loads (docs/training.md), so run `GOMP_SPINCOUNT=1000 python scripts/bench.py --only data` to measure
what the default command runs.
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import torch

from unio.data.batching import prefetcher
from unio.train.cli import options_from
from unio.train.cli import parser as train_parser
from unio.train.trainer import Trainer


def default_run_trainer(preset: str, batch_size: int, out: str, vq_steps: int | None = None,
                        compile: bool = True, extra: tuple = ()) -> Trainer:
    """A Trainer of the default command at `preset` and `batch_size` (and `extra` train_mixture.py arguments),
    set up (tokenizers, model, stream) but not run."""
    argv = ["--no-progress", "--out", out, "--preset", preset, "--batch-size", str(batch_size), *extra]
    argv += (["--vq-steps", str(vq_steps)] if vq_steps else []) + ([] if compile else ["--no-compile"])
    trainer = Trainer(options_from(train_parser().parse_args(argv)))
    trainer.setup()
    return trainer


def worker_cpu_ms_per_batch(stream, start: int, batches: int) -> float:
    """Milliseconds of one thread to build a batch, as the worker builds them (torch on one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        began = time.process_time()
        for step in range(start, start + batches):
            stream.batch(step)
        return (time.process_time() - began) / batches * 1e3
    finally:
        torch.set_num_threads(threads)


def data_worker_cost(preset: str = "tiny", batch_size: int = 48, steps: int = 20, start: int = 1200,
                     rounds: int = 5, vq_steps: int | None = None, compile: bool = True) -> dict:
    """The step on batches from a data worker against the step on batches built beforehand, timed in turns; the
    worker as the trainer runs it (on the cores the step leaves idle) and at the normal priority it had before."""
    arms = {"prebuilt": None, "worker": True, "worker_normal_priority": False}   # arm: the worker's `idle`
    with tempfile.TemporaryDirectory() as out:
        trainer = default_run_trainer(preset, batch_size, out, vq_steps, compile)
        stream = trainer.stream
        prebuilt = [stream.batch(step) for step in range(start, start + steps)]
        for _ in range(2):                       # where the model compiles, for both arms' shapes
            steps_on(trainer, prebuilt)
            worker_turn(trainer, stream, start + 50_000, steps)
        took = {arm: [] for arm in arms}
        for r in range(rounds):
            for arm in (list(arms) if r % 2 == 0 else list(arms)[::-1]):
                took[arm].append(steps_on(trainer, prebuilt) if arms[arm] is None else
                                 worker_turn(trainer, stream, start + 100_000 * (r + 1), steps, idle=arms[arm]))
        report = {f"step_with_{arm}_over_prebuilt": ratio_summary(took[arm], took["prebuilt"])
                  for arm in arms if arms[arm] is not None}
        return {**report, "step_with_idle_worker_over_normal": ratio_summary(took["worker"], took["worker_normal_priority"]),
                **{f"{arm}_seconds_per_step": float(np.median(took[arm])) / steps for arm in arms},
                "worker_cpu_ms_per_batch": worker_cpu_ms_per_batch(stream, start + 100_000 * (rounds + 2), steps),
                "steps_a_turn": steps, "from_step": start, "threads": torch.get_num_threads(),
                "gomp_spincount": os.environ.get("GOMP_SPINCOUNT")}


def ratio_summary(numerators: list, denominators: list) -> dict:
    """The median of the rounds' ratios, the ratios and their spread."""
    ratios = [a / b for a, b in zip(numerators, denominators)]
    median = float(np.median(ratios))
    return {"ratio": median, "ratios": ratios, "rounds": len(ratios), "spread": (max(ratios) - min(ratios)) / median}


def steps_on(trainer, batches) -> float:
    began = time.perf_counter()
    for batch in batches:
        trainer.train_step([batch])
    return time.perf_counter() - began


def worker_turn(trainer, stream, start: int, steps: int, depth: int = 4, idle: bool = True) -> float:
    """Seconds of `steps` steps fed by a fresh data worker, timed once it runs as it does in training (its queue
    of `depth` batches drained by as many untimed steps, so it builds while the step runs), then closed: no
    worker is alive while the other arm is timed."""
    worker = prefetcher(stream, start, 1, idle=idle)
    try:
        for _ in range(depth):
            trainer.train_step([worker.next()])
        began = time.perf_counter()
        for _ in range(steps):
            trainer.train_step([worker.next()])
        return time.perf_counter() - began
    finally:
        worker.close()

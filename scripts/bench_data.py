"""What the data worker costs the training step (`scripts/bench.py --only data`).

train_mixture.py builds each batch in a worker process (rendering the world's scenes, encoding depth targets,
augmenting) while the step runs on the machine's threads; on a CPU both share the cores. The stream of the
default command (its mixture, stages and augmentation) is built as the trainer builds it, and then, in turns
(benchlib.interleaved_ratio), a stretch of Trainer.train_step on batches built beforehand is timed against the
same number of steps on batches from a data worker: the ratio is what the worker costs each step. Also the
worker's CPU time a batch (built here on one thread) and GOMP_SPINCOUNT as this process got it (train_mixture.py
sets 1,000 before torch loads; docs/training.md).
"""
from __future__ import annotations

import os
import tempfile
import time

import benchlib as bench
import torch

from unio.data.batching import prefetcher
from unio.train.cli import options_from
from unio.train.cli import parser as train_parser
from unio.train.trainer import Trainer


def default_run_trainer(preset: str, batch_size: int, out: str, vq_steps: int | None = None,
                        compile: bool = True) -> Trainer:
    """A Trainer of the default command at `preset` and `batch_size`, set up (tokenizers, model, stream) but not run."""
    argv = ["--no-progress", "--out", out, "--preset", preset, "--batch-size", str(batch_size)]
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
    """The step on batches from a data worker against the step on batches built beforehand, timed in turns."""
    with tempfile.TemporaryDirectory() as out:
        trainer = default_run_trainer(preset, batch_size, out, vq_steps, compile)
        stream = trainer.stream
        prebuilt = [stream.batch(step) for step in range(start, start + steps)]
        worker = prefetcher(stream, start + 100_000, 1)   # other batches of the same stage, as many as the rounds ask
        try:
            from_worker = lambda: [trainer.train_step([worker.next()]) for _ in range(steps)]   # noqa: E731
            built = lambda: [trainer.train_step([batch]) for batch in prebuilt]                  # noqa: E731
            turns = bench.interleaved_ratio(built, from_worker, rounds=rounds)
            began = time.perf_counter()
            built()
            prebuilt_s = (time.perf_counter() - began) / steps
        finally:
            worker.close()
        # batches this process has not built: depth codes are cached per record
        return {"step_with_worker_over_prebuilt": turns, "prebuilt_seconds_per_step": prebuilt_s,
                "worker_cpu_ms_per_batch": worker_cpu_ms_per_batch(stream, start + 200_000, steps),
                "steps_a_turn": steps, "from_step": start, "threads": torch.get_num_threads(),
                "gomp_spincount": os.environ.get("GOMP_SPINCOUNT")}

"""What compiling an MoE block's attention saves a training step (`scripts/bench.py --only moe`).

`compile_blocks` compiles a dense block whole and an MoE block's attention alone (its expert layer has
data-dependent shapes and stays eager); before session 40 an MoE block ran wholly eager. A Trainer of
`--tasks TASKS --moe ROUTING` (every second layer 4 experts of width `expert_d_ff`, top-2) is set up as
train_mixture.py sets it up; then, on batches of its second stage built beforehand, stretches of
Trainer.train_step with the MoE blocks' attention compiled and with those blocks wholly eager are timed in
turns. Per routing: each arm's median seconds a step and their ratio.
"""
from __future__ import annotations

import statistics
import tempfile
import time

from bench_data import default_run_trainer
from unio.model.transformer import GatedMLP
from unio.train.trainer import Trainer

ARMS = ("attention compiled", "wholly eager")


def arm_times(trainer: Trainer, batches: list, blocks: list, compiled: list, arm: str) -> list:
    """Seconds of each step on `batches`, the MoE blocks' attention compiled or the blocks wholly eager."""
    for block, graph in zip(blocks, compiled):
        block.compiled = graph if arm == ARMS[0] else None
    times = []
    for batch in batches:
        began = time.perf_counter()
        trainer.train_step([dict(batch)])
        times.append(time.perf_counter() - began)
    return times


def moe_compile_cost(routing: str, tasks: str = "all", preset: str = "tiny", batch_size: int = 48, steps: int = 10,
                     rounds: int = 3, start: int = 1500, expert_d_ff: int = 256, vq_steps: int | None = None) -> dict:
    with tempfile.TemporaryDirectory() as out:
        trainer = default_run_trainer(preset, batch_size, out, vq_steps, extra=(
            "--tasks", tasks, "--moe", routing, "--model", f"expert_d_ff={expert_d_ff}"))
        batches = [trainer.stream.batch(step) for step in range(start, start + steps)]
        blocks = [b for b in (*trainer.model.encoder.layers, *trainer.model.decoder.layers) if not isinstance(b.ff, GatedMLP)]
        compiled = [block.compiled for block in blocks]
        for arm in ARMS:                                  # compiles, and the allocator's first steps
            arm_times(trainer, batches[:3], blocks, compiled, arm)
        took = {arm: [] for arm in ARMS}
        for r in range(rounds):
            for arm in (ARMS if r % 2 == 0 else ARMS[::-1]):
                took[arm] += arm_times(trainer, batches, blocks, compiled, arm)
        medians = {arm: statistics.median(times) for arm, times in took.items()}
        return {"seconds_per_step": medians, "ratio_compiled_to_eager": medians[ARMS[0]] / medians[ARMS[1]],
                "steps_timed_per_arm": steps * rounds, "from_step": start, "tasks": tasks, "moe_layers": len(blocks)}

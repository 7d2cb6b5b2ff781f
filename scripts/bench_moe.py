"""What an MoE step costs against a dense one (`scripts/bench.py --only moe`).

Trainers of `--tasks TASKS` are set up as train_mixture.py sets them up, one per arm: dense; `--moe` (token
choice: its buffers have a spare slot for what overflows capacity, so the whole block compiles; before
session 45 its expert layer ran eagerly);
`--moe attribute` with its experts dispatched densely (every expert on every token, weighted 0 but on the
token's k: the whole block compiles, at E/k times the experts' work), and the same routing with each expert
run on its own tokens (`--model moe_dispatch=each`: k experts' work, eager, as before session 44). The MoE arms make every second layer's
feed-forward 4 experts of width `expert_d_ff`, top-2. On batches of their second stage built beforehand
(the same examples for every arm), stretches of Trainer.train_step are timed in turns; each arm's median
seconds a step and its ratio to dense's.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench_data import default_run_trainer
from unio.model.moe import AttributeMoEFeedForward
from unio.train.trainer import Trainer

ARMS = {"dense": (), "token": ("--moe", "token"), "attribute": ("--moe", "attribute"),
        "attribute_each_expert": ("--moe", "attribute", "--model", "moe_dispatch=each")}


def arm_trainer(arm: str, tasks: str, preset: str, batch_size: int, out: str, expert_d_ff: int,
                vq_steps: int | None, compile: bool = True) -> Trainer:
    moe = ARMS[arm] + (("--model", f"expert_d_ff={expert_d_ff}") if ARMS[arm] else ())
    return default_run_trainer(preset, batch_size, str(Path(out) / arm), vq_steps, compile,
                               extra=("--tasks", tasks, *moe))


def step_times(trainer: Trainer, batches: list) -> list:
    times = []
    for batch in batches:
        began = time.perf_counter()
        trainer.train_step([dict(batch)])
        times.append(time.perf_counter() - began)
    return times


def moe_step_cost(tasks: str = "all", preset: str = "tiny", batch_size: int = 48, steps: int = 10, rounds: int = 3,
                  start: int = 1500, expert_d_ff: int = 256, vq_steps: int | None = None, compile: bool = True) -> dict:
    """`compile`: blocks compiled as train_mixture.py compiles them (without it each arm steps eagerly)."""
    with tempfile.TemporaryDirectory() as out:
        trainers = {arm: arm_trainer(arm, tasks, preset, batch_size, out, expert_d_ff, vq_steps, compile)
                    for arm in ARMS}
        batches = [trainers["dense"].stream.batch(step) for step in range(start, start + steps)]
        for trainer in trainers.values():                 # compiles, and the allocator's first steps
            step_times(trainer, batches[:3])
        took: dict = {arm: [] for arm in ARMS}
        for r in range(rounds):
            for arm in (list(ARMS) if r % 2 == 0 else list(ARMS)[::-1]):
                took[arm] += step_times(trainers[arm], batches)
        medians = {arm: statistics.median(times) for arm, times in took.items()}
        spread = {arm: [min(times), max(times)] for arm, times in took.items()}
        moe_layers = sum(isinstance(m, AttributeMoEFeedForward) for m in trainers["attribute"].model.modules())
        return {"seconds_per_step": medians, "seconds_per_step_range": spread,
                "ratio_to_dense": {arm: medians[arm] / medians["dense"] for arm in ARMS if arm != "dense"},
                "steps_timed_per_arm": steps * rounds, "from_step": start, "tasks": tasks, "moe_layers": moe_layers,
                "expert_d_ff": expert_d_ff, "compiled": compile}

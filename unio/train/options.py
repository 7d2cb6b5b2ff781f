"""A training run's options (`TrainOptions`, what `train_mixture.py`'s flags fill), its learning-rate
schedule, seeding, and where its folder and checkpoint are."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from unio.data.mixture import pair_name
from unio.model.presets import DEFAULT_PRESET
from unio.train import checkpoint as ckpt


@dataclass
class TrainOptions:
    tasks: str | dict | None = None    # (task, source) pairs with weights; None: configs/data/default.yaml
    sources: dict = field(default_factory=dict)   # name -> spec string, config dict, source or Dataset
    preset: str = DEFAULT_PRESET
    steps: int = 2400
    minutes: float | None = None       # stop early when this much training time has passed
    batch_size: int = 48
    lr: float = 1e-3                   # peak; 2e-3 before v0.2 (docs/experiments.md, v0.2 "The default run")
    warmup: int = 100
    weight_decay: float = 0.05
    grad_accum: int = 1
    clip: float = 1.0
    out: str | None = None
    resume: bool = False
    seed: int = 0
    deepspeed: str | None = None
    moe: bool | str = False            # True or "token": token-choice MoE every 2nd layer; "attribute": routed by kind
    precision: str = "auto"            # auto: bf16 autocast where this machine's bf16 matmuls win (train/precision.py)
    loss_mean: str | None = None       # token: one mean over a batch's target tokens; task: per task, then over tasks;
                                       # sqrt: each task's mean weighs as the root of its tokens (None: with_layout_defaults)
    task_weighting: str = "none"       # loss: each task's tokens weigh as its recent loss (unio/train/balance.py)
    decoder_only: tuple = ()           # pairs (by name) whose gradients stop at the encoder's output
    packing: str | None = None         # None: batches bucketed by target length; auto or "ENC,DEC": packed rows
    buckets: int = 1                   # batches per megabatch, whose examples bucketing sorts by target length
                                       # (1: each batch as drawn, its tasks mixed; 4 before v0.3)
    sub_batches: int | None = None     # at most this many sub-batches of like target lengths a batch runs in
    range_loss: bool = False           # each target's softmax over its own vocabulary range only
    spatial_first: float = 0.4         # fraction of the steps that sample only the non-text tasks
    first_tasks: str | None = None     # the pairs of that first stage instead ("detection"); None: the non-text ones
    photometric: float = 1.0           # photometric augmentation strength (unio/data/photometric.py); 0: off
    compile: bool = True               # regional torch.compile of the blocks (single process only)
    num_bins: int | None = None        # location bins (None: the tokenizer config's)
    location_sigma: float = 1.0        # Gaussian smoothing of location-bin targets, in bins
    vq_steps: int | None = None        # training steps of tokenizers that train by steps (None: the config's)
    tokenizer_config: str = "default"  # configs/tokenizers/<name>.yaml or a YAML path
    tokenizers: str | None = None
    eval_n: int = 200
    eval_every: int = 0
    checkpoint_every: int = 250
    log_every: int = 10
    probe_gradients: int = 0           # every N steps: each pair's gradient norms and cosines (unio/train/gradients.py)
    pool: int = 50_000
    data_workers: int = 1              # 0: build batches in a thread of the training process
    idle_data_worker: bool = True      # the worker on the cores the step leaves idle (SCHED_IDLE); False: normal
    skip_bad_records: bool = False     # skip (report once, count per source) records a reader finds bad
    progress: bool = True
    plugins: list = field(default_factory=list)
    model_overrides: dict = field(default_factory=dict)
    task_options: dict = field(default_factory=dict)   # {task: {constructor option: value}}, e.g. detection order


def named_options(name: str, **given) -> TrainOptions:
    """The options `--tasks NAME` gives on the command line, for the Python API: configs/data/NAME.yaml's
    pairs and recipe (task options, steps, minutes, eval_n), with `given` over them (task options merged per
    task, the given ones winning): `Trainer(named_options("all", seed=1))` trains what `--tasks all --seed 1`
    does, where `TrainOptions(tasks="all")` is the plain expansion at the declared weights."""
    from unio.train.builders import RECIPE_KEYS, named_mixture, named_mixtures
    recipe = named_mixture(name)
    if not recipe:
        raise ValueError(f"{name!r} names no mixture file in configs/data/; named mixtures: {', '.join(named_mixtures())}")
    task_options = dict(recipe.get("task_options") or {})
    for task, options in (given.pop("task_options", None) or {}).items():
        task_options[task] = {**task_options.get(task, {}), **options}
    recipe_options = {key: recipe[key] for key in RECIPE_KEYS if key in recipe}
    return TrainOptions(**{"tasks": recipe["mixture"], **recipe_options, **given, "task_options": task_options})


def with_layout_defaults(opts: TrainOptions) -> TrainOptions:
    """The options with --loss-mean and --sub-batches the batch layout's defaults where not given: the
    square-root mean and two groups for mixed batches (docs/experiments.md, session 37); the token mean
    and one group for packed rows (--packing), which take no other."""
    packed = bool(opts.packing)
    return replace(opts, loss_mean=opts.loss_mean or ("token" if packed else "sqrt"),
                   sub_batches=(1 if packed else 2) if opts.sub_batches is None else opts.sub_batches)


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup, then cosine decay to 10%."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_dir(opts: TrainOptions, weights: dict) -> Path:
    if opts.out:
        return Path(opts.out)
    from unio.train.builders import ALL, named_mixture
    every = opts.tasks in (ALL, named_mixture(ALL).get("mixture"))    # `all`, or its recipe's pairs
    pairs = ALL if every else "-".join(pair_name(*pair) for pair in weights)
    name = pairs + f"-{opts.preset}-s{opts.seed}"
    return Path("runs") / name


def resume_from(opts: TrainOptions, out: Path) -> Path | None:
    """The checkpoint to continue from: the run folder's under --resume, else None."""
    if not opts.resume:
        return None
    existing = ckpt.find_checkpoint(out)
    if existing is None:
        raise FileNotFoundError(f"--resume given but {out} holds no checkpoint")
    return existing



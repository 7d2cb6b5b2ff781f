"""What a training run is made of: its options, and builders that turn them into plain objects (the
(task, source) mixture, its sources, tokenizers, model, batch stream, optimizer and schedule). The trainer calls them in
order; nothing here knows whether the run is one process or many."""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from unio import checkpoint as ckpt
from unio import presets
from unio.bootstrap import ensure_modalities, load_tokenizer_config
from unio.data import BUCKETS, BatchStream, Collator, Mixture, pair_name, parse_mixture
from unio.grammar import Repeat
from unio.modalities import Modalities
from unio.plugins import builtin_dir
from unio.registries import TASKS
from unio.sources import build_source, check_pairs, missing_keys
from unio.vocab import IGNORE


@dataclass
class TrainOptions:
    tasks: str | dict | None = None    # (task, source) pairs with weights; None: configs/data/default.yaml
    sources: dict = field(default_factory=dict)   # name -> spec string, config dict, source or Dataset
    preset: str = "tiny"
    steps: int = 2100
    minutes: float | None = None       # stop early when this much training time has passed
    batch_size: int = 48
    lr: float = 1e-3                   # peak; 2e-3 before v0.2 (README, "The default run")
    warmup: int = 100
    weight_decay: float = 0.05
    grad_accum: int = 1
    clip: float = 1.0
    out: str | None = None
    resume: bool = False
    seed: int = 0
    deepspeed: str | None = None
    moe: bool = False
    bf16: bool = True
    range_loss: bool = False           # each target's softmax over its own vocabulary range only
    spatial_first: float = 0.4         # fraction of the steps that sample only the non-text tasks
    first_tasks: str | None = None     # the pairs of that first stage instead ("detection"); None: the non-text ones
    warm_up: bool = True               # the warm-ups the tasks declare join the first stage (`add_warm_ups`)
    photometric: float = 1.0           # photometric augmentation strength (unio/photometric.py); 0: off
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
    pool: int = 50_000
    data_workers: int = 1              # 0: build batches in a thread of the training process
    skip_bad_records: bool = False     # skip (report once, count per source) records a reader finds bad
    progress: bool = True
    plugins: list = field(default_factory=list)
    model_overrides: dict = field(default_factory=dict)
    task_options: dict = field(default_factory=dict)   # {task: {constructor option: value}}, e.g. detection order


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
    name = "-".join(pair_name(*pair) for pair in weights) + f"-{opts.preset}-s{opts.seed}"
    return Path("runs") / name


def resume_from(opts: TrainOptions, out: Path) -> Path | None:
    """The checkpoint to continue from: the run folder's under --resume, else None."""
    if not opts.resume:
        return None
    existing = ckpt.find_checkpoint(out)
    if existing is None:
        raise FileNotFoundError(f"--resume given but {out} holds no checkpoint")
    return existing


class TaskLosses:
    """Each task's mean token cross-entropy over the steps since the last `pop()`: the mixture's
    batches alternate between tasks, so the total loss alone cannot show which task is learning."""

    def __init__(self, names: list):
        self.names = names
        self.sums, self.counts = torch.zeros(len(names), dtype=torch.float64), torch.zeros(len(names))

    @torch.no_grad()
    def add(self, logits, labels, task_index) -> None:
        picked = logits.gather(-1, labels.clamp(min=0)[..., None])[..., 0].float()
        token_loss = torch.logsumexp(logits.float(), -1) - picked      # cross-entropy, without a (B, L, V) output
        valid = (labels != IGNORE).float()
        per_example = (token_loss * valid).sum(1) / valid.sum(1).clamp(min=1)
        self.sums.index_add_(0, task_index.cpu(), per_example.double().cpu())
        self.counts.index_add_(0, task_index.cpu(), torch.ones(len(task_index)))

    def pop(self) -> dict:
        means = {n: round(float(s / c), 4) for n, s, c in zip(self.names, self.sums, self.counts) if c > 0}
        self.sums.zero_()
        self.counts.zero_()
        return means


class MetricsLog:
    """metrics.jsonl, one JSON row a line; only rank 0 writes."""

    def __init__(self, path: Path, rank: int):
        self.file = open(path, "a") if rank == 0 else None

    def write(self, row: dict) -> None:
        if self.file:
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file:
            self.file.close()


# -- builders ---------------------------------------------------------------------------------
def default_mixture() -> str:
    """The mixture of configs/data/default.yaml: what `train_mixture.py` trains without --tasks."""
    import yaml
    return yaml.safe_load((builtin_dir("configs") / "data" / "default.yaml").read_text())["mixture"]


def build_mixture(opts: TrainOptions) -> tuple:
    """({(task, source): weight}, {name: task}) from --tasks; a task given without a weight takes its
    own `weight` attribute. Pairs that only --first-tasks names join for the first stage alone (a
    warm-up: `first_only`). Raises on unknown tasks and bad weights, before any work."""
    weights = parse_tasks(opts.tasks or default_mixture())
    if opts.first_tasks:
        weights = {**weights, **{p: w for p, w in parse_tasks(opts.first_tasks).items() if p not in weights}}
    return weights, {name: TASKS.get(name) for name, _ in weights}


def parse_tasks(spec) -> dict:
    return parse_mixture(spec, TASKS.names(), default_weight=lambda name: getattr(TASKS.get(name), "weight", 1.0))


def first_only(opts: TrainOptions) -> tuple:
    """The names of the pairs --first-tasks adds to --tasks: trained in the first stage only."""
    if not opts.first_tasks:
        return ()
    later = parse_tasks(opts.tasks or default_mixture())
    return tuple(pair_name(*p) for p in parse_tasks(opts.first_tasks) if p not in later)


def add_warm_ups(opts: TrainOptions, weights: dict, tasks: dict, sources: dict) -> tuple:
    """(weights, tasks, warm): the mixture with the warm-ups its tasks declare (a task's `warm_up =
    {task: weight}`: those tasks trained on its source in the first stage alone, e.g. caption's
    detection, whose every-object labels teach the encoder the shapes captions name), and `warm`, the
    added {pair: weight}. None with --no-warm-up, --first-tasks (the first stage named by hand) or
    --spatial-first 0; a pair the run trains already is not added, nor one whose source lacks a record
    key the warm-up task needs (said on stdout). The tokenizers learn from the pairs asked for alone,
    so a run and its --no-warm-up twin share them: a warm-up task must answer in what they encode
    (detection's labels are words its captions spell)."""
    if not opts.warm_up or opts.first_tasks or not opts.spatial_first:
        return weights, tasks, {}
    warm = {}
    for name, source in weights:
        for other, weight in getattr(tasks[name], "warm_up", {}).items():
            missing = missing_keys(getattr(TASKS.get(other), "requires", ("image",)), sources[source].keys)
            if missing:
                print(f"{name}'s warm-up {other} is skipped on source {source!r}: it has no {missing[0]!r}")
            elif (other, source) not in weights:
                warm[(other, source)] = max(float(weight), warm.get((other, source), 0.0))
    return {**weights, **warm}, {**tasks, **{t: TASKS.get(t) for t, _ in warm}}, warm


def image_size(opts: TrainOptions) -> int:
    return opts.model_overrides.get("image_size", presets.load_preset(opts.preset)["image_size"])


def build_sources(opts: TrainOptions, weights: dict, tasks: dict) -> dict:
    """{name: source} for the mixture's pairs, configured by --source (or configs/data/NAME.yaml);
    refuses, before any work, a task paired with a source that lacks a record key it needs."""
    names = dict.fromkeys(source for _, source in weights)
    sources = {name: build_source(name, opts.sources.get(name), image_size(opts)) for name in names}
    check_pairs(list(weights), tasks, sources)
    return sources


def answers_in_text(task, mods: Modalities, size: int) -> bool:
    """Whether every token a task answers with is a word of the prompt tokenizer."""
    elements = task.grammar(mods, size).segments
    segments = [s for e in elements for s in (e.group if isinstance(e, Repeat) else (e,))]
    return all(s.range == mods.prompt_name for s in segments)


@dataclass(frozen=True)
class Stages:
    """The run's two stages: the pairs `first` (names) alone in the megabatches before `first_until`,
    then every pair but `first_only`."""
    first: tuple = ()
    first_until: int = 0
    first_only: tuple = ()


def spatial_stage(opts: TrainOptions, weights: dict, tasks: dict, mods: Modalities, size: int,
                  warm: dict | None = None) -> Stages:
    """The first stage: the pairs whose answers are not text (boxes, depth maps) alone for the first
    `spatial_first` of the run. Measured on the tiny preset: text answers (VQA, captions) in the mix
    from step 0 keep referring expressions from ever grounding their phrases, while depth helps them.
    `first_tasks` names the first stage's pairs instead. Warm-ups (`warm`, from add_warm_ups) join
    it at their weights (without a first stage of the run's own, they form it)."""
    warm = {pair_name(*p): w for p, w in (warm or {}).items()}
    own = [pair_name(t, s) for t, s in weights if not answers_in_text(tasks[t], mods, size) and pair_name(t, s) not in warm]
    if opts.first_tasks:
        own = [pair_name(*p) for p in parse_tasks(opts.first_tasks)]   # build_mixture added any new ones
    if first_only(opts) and not opts.spatial_first:
        raise ValueError(f"--first-tasks adds {', '.join(first_only(opts))} to the first stage only, but "
                         f"--spatial-first is 0 (no first stage); give it a fraction of the steps, or list them in --tasks")
    if not 0 < len(own) < len(weights) - len(warm):
        own = []
    if not opts.spatial_first or not (own or warm):
        return Stages()
    batches = opts.spatial_first * opts.steps * opts.grad_accum
    return Stages((*own, *warm), math.ceil(batches / BUCKETS), (*first_only(opts), *warm))


def build_data(opts: TrainOptions, tasks: dict, sources: dict, weights: dict, mods: Modalities, config,
               rank: int, stages: Stages, bad=None) -> BatchStream:
    """This rank's batches: the weighted mixture in its `stages` (spatial_stage's), bucketed by target
    length and collated to the model's lengths (`config`: the model's config); `bad`
    (unio.bad_records.BadRecords): whether bad records are skipped."""
    collate = Collator(tasks, mods, config.max_text_length, config.max_target_length)
    mixture = Mixture(tasks, sources, weights, config.image_size, opts.pool, opts.seed, rank, stages.first,
                      stages.first_until, opts.photometric, bad=bad, first_only=stages.first_only)
    return BatchStream(mixture, collate, opts.batch_size)


def build_modalities(opts: TrainOptions, weights: dict, sources: dict, existing: Path | None,
                     progress: bool, bad=None) -> Modalities:
    """The tokenizers: the checkpoint's, else --tokenizers, else built now (cached for next time)."""
    if existing is not None:
        return Modalities.load(existing / "tokenizers")
    config = load_tokenizer_config(opts.tokenizer_config, steps=opts.vq_steps, num_bins=opts.num_bins)
    return ensure_modalities(list(weights), sources, image_size(opts), config,
                             Path(opts.tokenizers) if opts.tokenizers else None, progress=progress,
                             source_specs=opts.sources, bad=bad)


def build_model(opts: TrainOptions, mods: Modalities, existing: Path | None):
    """The checkpoint's model, else the preset's with the run's overrides, initialised from the seed
    (the same weights whether the tokenizers were trained just now or cached)."""
    if existing is not None:
        from unio.model import UnioModel
        return UnioModel.from_pretrained(existing / "model")
    seed_everything(opts.seed)
    return presets.build_model(opts.preset, mods.vocab.size, **model_overrides(opts, mods))


def model_overrides(opts: TrainOptions, mods: Modalities) -> dict:
    """--model's fields, plus what the options imply: location smoothing, per-range loss, MoE."""
    overrides = dict(opts.model_overrides)
    if opts.task_options:
        overrides.setdefault("task_options", opts.task_options)
    ordinal = [(name, tok.ordinal_ids()) for name, tok in mods.tokenizers.items() if hasattr(tok, "ordinal_ids")]
    if ordinal and opts.location_sigma > 0:   # the first tokenizer with ordered bins (location bins)
        name, (lo, hi) = ordinal[0]
        start = mods.vocab.range(name).start
        overrides.setdefault("ordinal_range", (start + lo, start + hi))
        overrides.setdefault("ordinal_sigma", opts.location_sigma)
    if opts.range_loss:
        overrides.setdefault("loss_range_starts", sorted({0, *(r.start for r in mods.vocab.ranges.values())}))
    if opts.moe:
        overrides.setdefault("moe_every", 2)
    return overrides


def build_optimizer(opts: TrainOptions, model, fused: bool) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=opts.lr, betas=(0.9, 0.98),
                             weight_decay=opts.weight_decay, fused=fused)


def build_scheduler(opts: TrainOptions, optimizer):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, opts.warmup, opts.steps))


def deepspeed_config(opts: TrainOptions) -> dict:
    """--deepspeed's JSON with the run's batch size, accumulation and clipping (bf16 only on GPUs)."""
    config = json.loads(Path(opts.deepspeed).read_text())
    config["train_micro_batch_size_per_gpu"] = opts.batch_size
    config.setdefault("gradient_accumulation_steps", opts.grad_accum)
    config.setdefault("gradient_clipping", opts.clip)
    if not torch.cuda.is_available():
        config.pop("bf16", None)
    return config

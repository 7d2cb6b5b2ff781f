"""Builders that turn a run's options into plain objects: the (task, source) mixture, its sources,
tokenizers, model, batch stream, optimizer and schedule. The trainer calls them in order; nothing here
knows whether the run is one process or many."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from unio.data.bad_records import BadRecord
from unio.data.batching import BatchStream, Collator
from unio.data.mixture import DEFAULT_SOURCE, Mixture, parse_mixture
from unio.data.packing import Packing
from unio.data.records import make_example
from unio.data.sources import build_source, check_pairs, missing_keys
from unio.modalities import Modalities
from unio.model import presets
from unio.plugins import builtin_dir
from unio.registries import TASKS
from unio.task import NothingToAsk
from unio.task_set import TaskSet
from unio.train.options import TrainOptions, lr_factor, seed_everything
from unio.train.tokenizer_setup import cache_folder, ensure_modalities, load_tokenizer_config

if TYPE_CHECKING:
    from unio.train.curriculum import Stages


ALL = "all"   # in --tasks: every task the source can feed (expand_all)


# -- builders ---------------------------------------------------------------------------------
RECIPE_KEYS = ("steps", "minutes", "eval_n")   # what a named mixture may set besides its pairs and task options


def default_mixture() -> str:
    """The mixture of configs/data/default.yaml: what `train_mixture.py` trains without --tasks."""
    return named_mixture("default")["mixture"]


def named_mixture(spec) -> dict:
    """configs/data/NAME.yaml when --tasks is NAME (`default`, `all`) and that file names a mixture: the pairs
    (`mixture`) and the recipe its figures were measured with (`task_options`, and RECIPE_KEYS' options),
    which flags given on the command line override; {} for any other spec."""
    import yaml
    if not isinstance(spec, str) or not spec.strip().isidentifier():
        return {}
    path = builtin_dir("configs") / "data" / f"{spec.strip()}.yaml"
    config = yaml.safe_load(path.read_text()) if path.is_file() else None
    if not isinstance(config, dict) or "mixture" not in config:
        return {}
    unknown = set(config) - {"mixture", "task_options", *RECIPE_KEYS}
    if unknown:
        raise ValueError(f"{path}: unknown keys {', '.join(sorted(unknown))}; a mixture file holds mixture, task_options "
                         f"and {', '.join(RECIPE_KEYS)}")
    return config


def named_mixtures() -> list:
    """The names `--tasks` takes for a file in configs/data/ that holds a mixture (`all`, `default`, ...)."""
    return sorted(path.stem for path in (builtin_dir("configs") / "data").glob("*.yaml") if named_mixture(path.stem))


def build_mixture(opts: TrainOptions, task_set: TaskSet) -> tuple:
    """({(task, source): weight}, {name: task of `task_set`}) from --tasks; a task given without a weight
    has the weight it declares (1 unless it says otherwise: caption 2, depth 1.5). Pairs that only
    --first-tasks names join for the first stage alone (a warm-up: `first_only`). Raises on unknown
    tasks and bad weights, before any work."""
    weights = parse_tasks(opts.tasks or default_mixture())
    if opts.first_tasks:
        weights = {**weights, **{p: w for p, w in parse_tasks(opts.first_tasks).items() if p not in weights}}
    return weights, {name: task_set.get(name) for name, _ in weights}


def parse_tasks(spec) -> dict:
    """A --tasks spec as {(task, source): weight}; a task named without a weight has the weight it declares."""
    return parse_mixture(spec, TASKS.names(), default_weight=lambda name: getattr(TASKS.get(name), "weight", 1.0))


def expand_all(opts: TrainOptions, task_set: TaskSet) -> TrainOptions:
    """The options with `all` in --tasks and --first-tasks (`all`, `all@coco`, `all:2`) written out as the
    pairs it stands for: every registered task its source can feed (`feedable`), at that weight; a pair
    named after it keeps its own weight (`all,vqa:2`)."""
    def expand(spec):
        if not isinstance(spec, str):
            return spec
        parts = []
        for part in filter(None, (p.strip() for p in spec.split(","))):
            pair, colon, weight = part.partition(":")
            name, _, source = (x.strip() for x in pair.partition("@"))
            if name != ALL:
                parts.append(part)
                continue
            source = source or DEFAULT_SOURCE
            built = build_source(source, opts.sources.get(source), image_size(opts))
            parts += [f"{t}@{source}" + (f":{weight}" if colon else "") for t in feedable(task_set, built, image_size(opts))]
        return ",".join(parts)
    return replace(opts, tasks=expand(opts.tasks or default_mixture()), first_tasks=expand(opts.first_tasks))


def feedable(task_set: TaskSet, source, size: int, probes: int = 8) -> list:
    """The tasks that can be trained on `source`: tasks with targets (not those answered through others
    alone), whose record keys the source has, with something to ask in one of its first `probes` records."""
    records = source.split("train")
    found = []
    for name in task_set.names():
        task = task_set.get(name)
        if hasattr(task, "targets") and not missing_keys(getattr(task, "requires", ("image",)), source.keys):
            if any(asks(task, records[i], size) for i in range(min(probes, len(records)))):
                found.append(name)
    return found


def asks(task, record, size: int) -> bool:
    try:
        make_example(task, record, size, np.random.default_rng(0), keep_record=False)
    except (NothingToAsk, BadRecord):
        return False
    return True


def image_size(opts: TrainOptions) -> int:
    return opts.model_overrides.get("image_size", presets.load_preset(opts.preset)["image_size"])


def build_sources(opts: TrainOptions, weights: dict, tasks: dict) -> dict:
    """{name: source} for the mixture's pairs, configured by --source (or configs/data/NAME.yaml);
    refuses, before any work, a task paired with a source that lacks a record key it needs."""
    names = dict.fromkeys(source for _, source in weights)
    sources = {name: build_source(name, opts.sources.get(name), image_size(opts)) for name in names}
    check_pairs(list(weights), tasks, sources)
    return sources


def build_data(opts: TrainOptions, tasks: dict, sources: dict, weights: dict, mods: Modalities, config,
               rank: int, stages: Stages, bad=None, world: int = 1) -> BatchStream:
    """This rank's batches: the weighted mixture in its `stages` (spatial_stage's), bucketed by target
    length and collated to the model's lengths (`config`: the model's config); `bad`
    (unio.data.bad_records.BadRecords): whether bad records are skipped."""
    collate = Collator(tasks, mods, config.max_text_length, config.max_target_length,
                       answer_starts=config.image_size if config.decoder_start == "answer" else None)
    mixture = Mixture(tasks, sources, weights, config.image_size, opts.pool, opts.seed, rank, stages.first,
                      stages.first_until, opts.photometric, bad=bad, first_only=stages.first_only, world=world)
    packing = Packing.parse(opts.packing, config) if opts.packing else None
    return BatchStream(mixture, collate, opts.batch_size, packing, opts.buckets)


def build_modalities(opts: TrainOptions, weights: dict, sources: dict, existing: Path | None,
                     progress: bool, bad=None, task_set: TaskSet | None = None) -> Modalities:
    """The tokenizers: the checkpoint's, else --tokenizers, else built now (cached for next time)."""
    if existing is not None:
        return Modalities.load(existing / "tokenizers")
    return ensure_modalities(list(weights), sources, image_size(opts), tokenizer_config(opts),
                             tokenizer_folder(opts, weights, task_set), progress=progress,
                             source_specs=opts.sources, bad=bad, tasks=task_set)


def tokenizer_config(opts: TrainOptions) -> dict:
    return load_tokenizer_config(opts.tokenizer_config, steps=opts.vq_steps, num_bins=opts.num_bins)


def tokenizer_folder(opts: TrainOptions, weights: dict, task_set: TaskSet | None = None) -> Path:
    """--tokenizers, else the cache folder of the run's tokenizers (whether they are built yet or not)."""
    if opts.tokenizers:
        return Path(opts.tokenizers)
    return cache_folder(list(weights), tokenizer_config(opts), image_size(opts), opts.sources, task_set)


def build_model(opts: TrainOptions, mods: Modalities, existing: Path | None):
    """The checkpoint's model, else the preset's with the run's overrides, initialised from the seed
    (the same weights whether the tokenizers were trained just now or cached)."""
    if existing is not None:
        from unio.model import UnioModel
        return UnioModel.from_pretrained(existing / "model")
    seed_everything(opts.seed)
    return presets.model_from_preset(opts.preset, mods.vocab.size, **model_overrides(opts, mods))


def check_region_marks(config, tasks: dict) -> None:
    """A model with region marks holds a mark for each box of the largest region a trained task reads
    (checked before training, not at the first batch that holds such a region)."""
    marks = getattr(config, "region_marks", 0)
    if not marks:          # no marks: a region is read from its location tokens alone
        return
    short = {name: count for name, task in tasks.items() if (count := getattr(task, "region_count", 1)) > marks}
    if short:
        raise ValueError(f"region_marks={marks}, but {', '.join(f'{k} reads {v} boxes' for k, v in short.items())}: "
                         f"give --model region_marks={max(short.values())} or more")


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
        overrides.setdefault("loss_range_starts", range_starts(mods))
    if opts.moe:
        overrides.setdefault("moe_every", 2)
    if opts.moe == "attribute":
        overrides.setdefault("moe_routing", "attribute")
        overrides.setdefault("vocab_range_starts", range_starts(mods))
    return overrides


def range_starts(mods: Modalities) -> list:
    """The first id of each vocabulary range, ascending (0: the text range's)."""
    return sorted({0, *(r.start for r in mods.vocab.ranges.values())})


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

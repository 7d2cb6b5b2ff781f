"""Training a generalist on a weighted mixture of (task, source) pairs: setup() -> train() -> export().

The builders in unio.train.builders turn the options into the pieces; the loop below is the same for one
process and for data parallelism. What differs (the step, checkpoints, where the weights live) is a
backend's: SingleDevice (unio.train.single_device), or DeepSpeedBackend (unio.train.deepspeed_backend) under
--deepspeed, the only case that imports deepspeed.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

import torch
import torch.distributed as dist
from tqdm import tqdm

from unio.allocator import keep_freed_memory
from unio.data.bad_records import BadRecords
from unio.data.batching import BUCKETS, prefetcher
from unio.data.mixture import pair_name
from unio.data.packing import parse_rooms
from unio.task_set import TaskSet, with_source_options
from unio.train import checkpoint as ckpt
from unio.train.balance import LossWeighting, example_losses, token_weights
from unio.train.builders import (
    build_data,
    build_mixture,
    build_modalities,
    build_model,
    build_optimizer,
    build_scheduler,
    build_sources,
    check_region_marks,
    deepspeed_config,
    expand_all,
)
from unio.train.curriculum import spatial_stage
from unio.train.gradients import GradientProbe
from unio.train.logs import MetricsLog, TaskLosses
from unio.train.options import TrainOptions, resume_from, run_dir, seed_everything, with_layout_defaults
from unio.train.precision import resolve as resolve_precision
from unio.train.single_device import SingleDevice
from unio.train.sub_batches import check_sub_batches, grouped_example_losses, target_groups
from unio.vocab import IGNORE


class Backend(Protocol):
    """What the loop asks of a way to run: SingleDevice and DeepSpeedBackend."""
    rank: int
    fused: bool             # whether AdamW may use its fused kernel
    accum: int              # batches per loop step

    def place(self, model) -> None: ...                            # before the optimizer is built
    def wrap(self, model, optimizer, scheduler) -> None: ...       # after it is
    def forward(self, model, batch: dict): ...
    def backward(self, loss) -> None: ...
    def update(self, model, optimizer, scheduler) -> None: ...
    def save_checkpoint(self, directory: Path, model, mods, optimizer, scheduler, step: int, extra: dict) -> None: ...
    def restore(self, existing: Path, state: dict, optimizer, scheduler) -> None: ...
    def plain_model(self, model): ...                              # to evaluate (None: not on this rank)
    def finish(self, model, log: MetricsLog, step: int): ...       # the model to export


def build_backend(opts: TrainOptions) -> Backend:
    if opts.deepspeed is None:
        bf16, why = resolve_precision(opts.precision, "cuda" if torch.cuda.is_available() else "cpu")
        print(f"precision: {'bf16 autocast' if bf16 else 'fp32'} ({why})")
        return SingleDevice(opts.grad_accum, opts.clip, bf16, opts.compile)
    from unio.train.deepspeed_backend import DeepSpeedBackend
    return DeepSpeedBackend(deepspeed_config(opts))


def several_ranks() -> bool:
    """Whether this process is one of several (a process group is up): then collectives keep the
    ranks in step."""
    return dist.is_available() and dist.is_initialized()


def load_plugins(paths: list) -> None:
    from unio import plugins
    for path in paths:
        plugins.load(path)


class Trainer:
    """One training run: `train()` builds the pieces and runs the loop, `export()` saves the model."""

    def __init__(self, opts: TrainOptions):
        keep_freed_memory()                              # no page faults for each step's activations
        load_plugins(opts.plugins)
        self.task_set = TaskSet(opts.task_options)       # the tasks with this run's options
        named = opts
        self.opts = opts = with_layout_defaults(expand_all(opts, self.task_set))   # `all` written out as its pairs
        self.weights, self.tasks = build_mixture(opts, self.task_set)     # clear errors before any work
        self.sources = build_sources(opts, self.weights, self.tasks)
        self.out = run_dir(named, self.weights)
        self.bad = BadRecords(opts.skip_bad_records)     # the bad records met (skipped) in this run
        if opts.packing:
            parse_rooms(opts.packing)                    # a bad value fails before any work
        if opts.packing and (opts.loss_mean != "token" or opts.task_weighting != "none" or opts.decoder_only):
            raise ValueError("--packing weighs every target token alike; leave out --loss-mean task, "
                             "--task-weighting and --decoder-only, which weigh or detach examples")
        if not isinstance(opts.buckets, int) or opts.buckets < 1:
            raise ValueError(f"--buckets {opts.buckets!r}: the batches a megabatch is cut into, a whole number, 1 or more "
                             f"(1: the default, each batch as drawn, its tasks mixed; {BUCKETS}: v0.2's bucketing)")
        check_sub_batches(opts)
        if opts.probe_gradients and opts.deepspeed:
            raise ValueError("--probe-gradients measures the gradients of one process; run it without --deepspeed")
        self.backend = build_backend(opts)
        self.rank = self.backend.rank

    # -- set-up ---------------------------------------------------------------------------
    def setup(self) -> None:
        opts, backend = self.opts, self.backend
        seed_everything(opts.seed)
        existing = resume_from(opts, self.out)
        self.mods = self._on_rank0_first(
            lambda: build_modalities(opts, self.weights, self.sources, existing, opts.progress and self.rank == 0,
                                     self.bad, self.task_set))
        self.model = build_model(opts, self.mods, existing)
        check_region_marks(self.model.config, self.tasks)
        backend.place(self.model)
        self.stages = spatial_stage(opts, self.weights, self.tasks, self.mods, self.model.config.image_size)
        self.model.config.trained_tasks = sorted({task for task, _ in self.trained_pairs})
        self.model.config.task_options = with_source_options(self.model.config.task_options, self.trained_pairs,
                                                             self.tasks, self.sources)   # what the sources name
        self.stream = build_data(opts, self.tasks, self.sources, self.weights, self.mods, self.model.config, self.rank,
                                 self.stages, self.bad, backend.world)
        self.optimizer = build_optimizer(opts, self.model, fused=backend.fused)
        self.scheduler = build_scheduler(opts, self.optimizer)
        self.task_losses = TaskLosses(self.stream.mixture.names)
        self.detached = self._pairs_named(opts.decoder_only, "--decoder-only")
        self.weighting = LossWeighting(self.stream.mixture.probs) if opts.task_weighting == "loss" else None
        self.probe = GradientProbe(self.stream.mixture, self.stream.collate, seed=opts.seed) if opts.probe_gradients else None
        backend.wrap(self.model, self.optimizer, self.scheduler)
        self.step, self.elapsed, self.data_wait = 0, 0.0, 0.0
        if existing is not None:
            state = ckpt.load_state(existing)
            backend.restore(existing, state, self.optimizer, self.scheduler)
            self.step, self.elapsed = state["step"], state["extra"].get("elapsed", 0.0)
            self.data_wait = state["extra"].get("data_wait", 0.0)
            self.bad.restore(state["extra"].get("skipped_records"))
            if self.weighting is not None and "task_weighting" in state["extra"]:
                self.weighting.load_state_dict(state["extra"]["task_weighting"])
        self.elapsed_before = self.elapsed   # training time of the runs this one resumes

    def _pairs_named(self, names, flag: str) -> torch.Tensor:
        """The indices (into the mixture's names) of the pairs `names`, with a clear error for any other."""
        known = self.stream.mixture.names
        for name in names:
            if name not in known:
                raise ValueError(f"{flag} names {name!r}, not a pair of this run; its pairs: {', '.join(known)}")
        return torch.tensor([known.index(n) for n in names], dtype=torch.long)

    @property
    def trained_pairs(self) -> list:
        """The pairs trained to the end of the run (evaluated): not those of the first stage alone."""
        return [p for p in self.weights if pair_name(*p) not in self.stages.first_only]

    def _on_rank0_first(self, build):
        """build() on rank 0 (which may train and cache the tokenizers), then, once it is done, on
        the other ranks (which load them)."""
        if not several_ranks():
            return build()
        made = build() if self.rank == 0 else None
        dist.barrier()
        return made if self.rank == 0 else build()

    # -- one step -------------------------------------------------------------------------
    def train_step(self, batches: list) -> float | None:
        """One optimizer step over `batches`, their gradients accumulated; None, and no step, when
        the loss was not finite (on any rank)."""
        device = next(self.model.parameters()).device
        total = 0.0
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            task_index = batch.pop("task_index", None)
            example_of = batch.pop("decoder_example", None)     # packed rows: each token's example
            if task_index is not None:
                batch.update(self._by_task(batch["labels"], task_index))
            if self.opts.sub_batches > 1 and "label_weights" in batch:     # a batch without tasks runs whole
                batch["target_groups"] = target_groups(batch["labels"], self.opts.sub_batches)
            out = self.backend.forward(self.model, batch)
            if not self._finite_everywhere(out.loss):
                self.optimizer.zero_grad(set_to_none=True)
                return None
            if task_index is not None:
                self._log_task_losses(out.logits, batch, example_of, task_index)
            self.backend.backward(out.loss / len(batches))
            total += out.loss.item() / len(batches)
        self.backend.update(self.model, self.optimizer, self.scheduler)
        return total

    @torch.no_grad()                       # for the logs and the weighting: no graph kept
    def _log_task_losses(self, logits, batch: dict, example_of, task_index) -> None:
        if "target_groups" in batch:
            losses = grouped_example_losses(logits, batch["labels"], batch["target_groups"])
        else:
            losses = example_losses(logits, batch["labels"], example_of, len(task_index))
        self.task_losses.add(losses, task_index)
        if self.weighting is not None:
            self.weighting.observe(losses, task_index)

    def _by_task(self, labels, task_index) -> dict:
        """What the options make of each example's task: its tokens' weights in the loss (--loss-mean,
        --task-weighting) and whether its gradients reach the encoder (--decoder-only); {} by default."""
        extra = {}
        if self.opts.loss_mean != "token" or self.weighting is not None or self.opts.sub_batches > 1:
            weights = token_weights(labels, task_index, self.opts.loss_mean)
            extra["label_weights"] = weights if self.weighting is None else self.weighting.scale(weights, task_index)
        if len(self.detached):
            extra["detach_encoder"] = torch.isin(task_index, self.detached).to(labels.device)
        return extra

    @staticmethod
    def _finite_everywhere(loss) -> bool:
        """Whether the loss is finite on every rank: all ranks skip a step together, or none does (a
        rank skipping alone would leave the others waiting in its collectives)."""
        finite = torch.isfinite(loss.detach()).float().reshape(1)
        if several_ranks():
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite.item())

    # -- the loop -------------------------------------------------------------------------
    def train(self) -> dict:
        """Trains from the start or the checkpoint to --steps (or --minutes); the last log row."""
        self.setup()
        self.out.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            (self.out / "options.json").write_text(json.dumps(asdict(self.opts), indent=2, default=str))
        log = MetricsLog(self.out / "metrics.jsonl", self.rank)
        try:
            last = self._loop(log)
            self.model = self.backend.finish(self.model, log, self.step)   # under DeepSpeed: rank 0's gathered copy
        finally:
            log.close()
        return last

    def _loop(self, log: MetricsLog) -> dict:
        opts, accum, start = self.opts, self.backend.accum, self.step
        prefetch = prefetcher(self.stream, start * accum, opts.data_workers, idle=opts.idle_data_worker)
        bar = tqdm(range(start, opts.steps), initial=start, total=opts.steps, desc="train",
                   disable=not opts.progress or self.rank != 0)
        self.model.train()
        bad, useful, t0, last = 0, 0, time.time() - self.elapsed, {}
        try:
            for step in bar:
                if self.probe is not None and step % opts.probe_gradients == 0:
                    log.write({"step": step, "gradients": self.probe.measure(self.model, self.backend.forward)})
                waited = time.time()
                batches = [prefetch.next() for _ in range(accum)]
                self.data_wait += time.time() - waited
                for batch in batches:      # bad records its data worker skipped: each noted once
                    for source, message in batch.pop("skipped_records", ()):
                        self.bad.note(source, message)
                loss = self.train_step(batches)
                self.step = step + 1
                if loss is None:
                    bad = self._skipped(step, bad)
                    continue
                useful += sum(int((b["labels"] != IGNORE).sum() + b["attention_mask"].sum()) for b in batches)
                self.elapsed = time.time() - t0
                if step % opts.log_every == 0 or step == opts.steps - 1:
                    last = self._log_row(log, bar, step, loss, useful)
                done = step + 1 == opts.steps or self._out_of_time()
                if (step + 1) % opts.checkpoint_every == 0 or done:
                    self.save_checkpoint(step + 1)
                if opts.eval_every and (step + 1) % opts.eval_every == 0:
                    self.log_eval(log, step + 1, split="validation")
                if done:
                    break
        finally:
            prefetch.close()
        return last

    def _skipped(self, step: int, bad: int) -> int:
        bad += 1
        tqdm.write(f"step {step}: loss is NaN or infinite; the step was skipped ({bad} so far)")
        if bad >= 10:
            raise FloatingPointError("10 non-finite losses: training diverged; lower --lr")
        return bad

    def _log_row(self, log: MetricsLog, bar, step: int, loss: float, useful: int) -> dict:
        tokens_per_s = useful / max(self.elapsed, 1e-9)
        row = {"step": step, "loss": round(loss, 5), "lr": self.scheduler.get_last_lr()[0],
               "time": round(self.elapsed, 2), "tokens_per_s": round(tokens_per_s, 1),
               "data_wait": round(self.data_wait / max(self.elapsed, 1e-9), 4),   # share of the time spent waiting for batches
               "task_loss": self.task_losses.pop()}
        if self.weighting is not None:
            row["task_weight"] = {n: round(float(w), 4) for n, w in zip(self.stream.mixture.names, self.weighting.weights())}
        if self.bad.skip:
            row["skipped_records"] = self.bad.counts()
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens_per_s:.0f}")
        log.write(row)
        return row

    def _out_of_time(self) -> bool:
        """Whether --minutes have passed; with several ranks rank 0's clock decides for all, which
        must stop at the same step."""
        if not self.opts.minutes:
            return False
        over = self.elapsed > self.opts.minutes * 60
        if not several_ranks():
            return over
        flag = torch.tensor([float(over)], device=next(self.model.parameters()).device)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    # -- saving and evaluating ------------------------------------------------------------
    def save_checkpoint(self, step: int) -> None:
        extra = {"elapsed": self.elapsed, "data_wait": self.data_wait, **({"skipped_records": self.bad.state()} if self.bad.skip else {}),
                 **({"task_weighting": self.weighting.state_dict()} if self.weighting is not None else {})}
        self.backend.save_checkpoint(self.out / "checkpoint", self.model, self.mods, self.optimizer, self.scheduler,
                                     step, extra)

    def log_eval(self, log: MetricsLog, step: int, split: str = "validation") -> dict:
        """Evaluates on rank 0; every rank must call it (under ZeRO-3 the weights are gathered first)."""
        from unio.infer.evaluation import evaluate_model
        model = self.backend.plain_model(self.model)
        if model is None:
            return {}
        results = evaluate_model(model, self.mods, self.trained_pairs, self.sources, split, self.opts.eval_n,
                                 bad=self.bad, tasks=self.task_set)
        self.model.train()
        log.write({"step": step, "eval": results, "split": split,
                   **({"skipped_records": self.bad.counts()} if self.bad.skip else {})})
        return results

    def export(self) -> Path:
        """The final model in save_pretrained form, with its processor (tokenizers/, vocab.json,
        processor_config.json) and model card (README.md) beside it."""
        from unio.infer import model_card
        from unio.infer.processor import UnioProcessor
        model = self.model   # under DeepSpeed, after train(): the gathered copy
        final = self.out / "model"
        tmp = self.out / "model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        ckpt.save_weights(model, tmp)
        UnioProcessor.for_model(model.config, self.mods).save_pretrained(tmp)
        model_card.write_for(self, tmp)
        shutil.rmtree(final, ignore_errors=True)
        tmp.replace(final)
        return final

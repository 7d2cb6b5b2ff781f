"""Training a generalist on a weighted task mixture: single process, or data-parallel under DeepSpeed."""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from unio import checkpoint as ckpt
from unio.bootstrap import ensure_modalities
from unio.data import BUCKETS, BatchStream, Collator, Mixture, parse_mixture, prefetcher
from unio.modalities import Modalities
from unio.presets import build_model, load_preset
from unio.registries import TASKS


@dataclass
class TrainOptions:
    tasks: str = "vqa,caption,refexp,depth"
    preset: str = "tiny"
    steps: int = 2100
    minutes: float | None = None       # stop early when this much training time has passed
    batch_size: int = 48
    lr: float = 2e-3
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
    compile: bool = True               # regional torch.compile of the blocks (single process only)
    num_bins: int = 64
    location_sigma: float = 1.0        # Gaussian smoothing of location-bin targets, in bins
    vq_steps: int = 600
    tokenizers: str | None = None
    eval_n: int = 200
    eval_every: int = 0
    checkpoint_every: int = 250
    log_every: int = 10
    pool: int = 50_000
    data_workers: int = 1              # 0: build batches in a thread of the training process
    progress: bool = True
    plugins: list = field(default_factory=list)
    model_overrides: dict = field(default_factory=dict)


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
    name = "-".join(weights) + f"-{opts.preset}-s{opts.seed}"
    return Path("runs") / name


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
        valid = (labels != -100).float()
        per_example = (token_loss * valid).sum(1) / valid.sum(1).clamp(min=1)
        self.sums.index_add_(0, task_index.cpu(), per_example.double().cpu())
        self.counts.index_add_(0, task_index.cpu(), torch.ones(len(task_index)))

    def pop(self) -> dict:
        means = {n: round(float(s / c), 4) for n, s, c in zip(self.names, self.sums, self.counts) if c > 0}
        self.sums.zero_()
        self.counts.zero_()
        return means


class Trainer:
    def __init__(self, opts: TrainOptions):
        from unio import plugins
        for path in opts.plugins:
            plugins.load(path)
        self.opts = opts
        self.weights = parse_mixture(opts.tasks, TASKS.names(),     # clear errors before any work
                                     default_weight=lambda name: getattr(TASKS.get(name), "weight", 1.0))
        self.tasks = {name: TASKS.get(name) for name in self.weights}
        self.out = run_dir(opts, self.weights)
        self.distributed = opts.deepspeed is not None
        self.rank = int(os.environ.get("RANK", 0))

    # -- set-up ---------------------------------------------------------------------------
    def setup(self) -> None:
        opts = self.opts
        seed_everything(opts.seed)
        preset = load_preset(opts.preset)
        resolution = opts.model_overrides.get("image_size", preset["image_size"])
        existing = ckpt.find_checkpoint(self.out) if opts.resume else None
        if opts.resume and existing is None:
            raise FileNotFoundError(f"--resume given but {self.out} holds no checkpoint")
        if self.distributed:
            self._init_distributed()
        if existing is not None:
            self.mods = Modalities.load(existing / "tokenizers")
        else:
            self.mods = self._modalities(resolution)
        overrides = dict(opts.model_overrides)
        if "coordinates" in self.mods and opts.location_sigma > 0:
            bins = self.mods.vocab.range("coordinates")
            overrides.setdefault("ordinal_range", (bins.start, bins.start + self.mods["coordinates"].num_bins))
            overrides.setdefault("ordinal_sigma", opts.location_sigma)
        if opts.range_loss:
            overrides.setdefault("loss_range_starts", sorted({0, *(r.start for r in self.mods.vocab.ranges.values())}))
        if opts.moe:
            overrides.setdefault("moe_every", 2)
        if existing is not None:
            from unio.model import UnioModel
            self.model = UnioModel.from_pretrained(existing / "model")
        else:
            seed_everything(opts.seed)  # the same weights whether the tokenizers were trained now or cached
            self.model = build_model(opts.preset, self.mods.vocab.size, **overrides)
        if torch.cuda.is_available() and not self.distributed:
            self.model.cuda()
        if opts.compile and not self.distributed:
            self.model.compile_blocks()
        cfg = self.model.config
        self.collate = Collator(self.tasks, self.mods, cfg.max_text_length, cfg.max_target_length)
        first_tasks, first_until = self.spatial_stage()
        mixture = Mixture(self.tasks, self.weights, cfg.image_size, opts.pool, opts.seed, self.rank,
                          first_tasks, first_until)
        self.stream = BatchStream(mixture, self.collate, opts.batch_size)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=opts.lr, betas=(0.9, 0.98),
                                           weight_decay=opts.weight_decay, fused=not self.distributed)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, opts.warmup, opts.steps))
        self.start_step, self.elapsed = 0, 0.0
        self.task_losses = TaskLosses(mixture.names)
        self.engine = self._deepspeed() if self.distributed else None
        if existing is not None:
            self._restore(existing)

    def _restore(self, existing: Path) -> None:
        """The optimizer, scheduler, RNG and step of a checkpoint: from DeepSpeed's own files under
        an engine (each rank its optimizer partition and RNG), else from the trainer's state."""
        state = ckpt.load_state(existing)
        if self.engine is not None:
            self.engine.load_checkpoint(str(existing / "deepspeed"), tag="state")
            ckpt.restore_rng(torch.load(existing / "deepspeed" / f"rng_rank{self.rank}.pt", weights_only=False))
        else:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            ckpt.restore_rng(state["rng"])
        self.start_step, self.elapsed = state["step"], state["extra"].get("elapsed", 0.0)

    def spatial_stage(self) -> tuple:
        """(tasks, megabatch index) of the first stage: the tasks whose answers are not text (boxes,
        depth maps) alone for the first `spatial_first` of the run. Measured on the tiny preset: text
        answers (vqa, caption) in the mix from step 0 keep refexp from ever grounding its phrases,
        while depth helps it."""
        spatial = tuple(n for n, t in self.tasks.items() if getattr(t, "output", "text") != "text")
        if not self.opts.spatial_first or not 0 < len(spatial) < len(self.tasks):
            return (), 0
        batches = self.opts.spatial_first * self.opts.steps * self.opts.grad_accum
        return spatial, math.ceil(batches / BUCKETS)

    def _modalities(self, resolution: int) -> Modalities:
        """Rank 0 trains the tokenizers if they are missing; the other ranks wait, then load them."""
        opts = self.opts

        def build():
            return ensure_modalities(list(self.weights), resolution, opts.num_bins,
                                     Path(opts.tokenizers) if opts.tokenizers else None,
                                     vq_steps=opts.vq_steps, progress=opts.progress and self.rank == 0)
        if not self.distributed:
            return build()
        import torch.distributed as dist
        mods = build() if self.rank == 0 else None
        dist.barrier()
        return mods or build()

    def _init_distributed(self) -> None:
        import deepspeed
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))

    def _deepspeed(self):
        import deepspeed
        if torch.cuda.is_available():
            self.model.cuda()
        config = json.loads(Path(self.opts.deepspeed).read_text())
        config["train_micro_batch_size_per_gpu"] = self.opts.batch_size
        config.setdefault("gradient_accumulation_steps", self.opts.grad_accum)
        config.setdefault("gradient_clipping", self.opts.clip)
        if not torch.cuda.is_available():
            config.pop("bf16", None)
        engine, *_ = deepspeed.initialize(model=self.model, optimizer=self.optimizer,
                                          lr_scheduler=self.scheduler, config=config)
        return engine

    # -- one step ---------------------------------------------------------------------------
    def _autocast(self):
        device = "cuda" if torch.cuda.is_available() else "cpu"
        enabled = self.opts.bf16 and not self.distributed
        return torch.autocast(device, dtype=torch.bfloat16, enabled=enabled)

    def train_step(self, batches: list) -> float | None:
        """One optimizer step over `grad_accum` batches; None when the loss was not finite."""
        device = next(self.model.parameters()).device
        total = 0.0
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            task_index = batch.pop("task_index", None)
            with self._autocast():
                out = (self.engine or self.model)(**batch)
            loss = out.loss
            if not self._finite_everywhere(loss):
                self.optimizer.zero_grad(set_to_none=True)
                return None
            if task_index is not None:
                self.task_losses.add(out.logits, batch["labels"], task_index)
            if self.engine is not None:
                self.engine.backward(loss)
                self.engine.step()
            else:
                (loss / len(batches)).backward()
            total += loss.item() / len(batches)
        if self.engine is None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.opts.clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
        return total

    # -- the loop -------------------------------------------------------------------------
    def train(self) -> dict:
        self.setup()
        opts = self.opts
        self.out.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            (self.out / "options.json").write_text(json.dumps(asdict(opts), indent=2, default=str))
        log = open(self.out / "metrics.jsonl", "a") if self.rank == 0 else None
        accum = 1 if self.engine is not None else opts.grad_accum
        prefetch = prefetcher(self.stream, self.start_step * accum, opts.data_workers)
        bar = tqdm(range(self.start_step, opts.steps), initial=self.start_step, total=opts.steps,
                   desc="train", disable=not opts.progress or self.rank != 0)
        self.model.train()
        bad, useful, t0, last = 0, 0, time.time() - self.elapsed, {}
        try:
            for step in bar:
                batches = [prefetch.next() for _ in range(accum)]
                loss = self.train_step(batches)
                if loss is None:
                    bad += 1
                    tqdm.write(f"step {step}: loss is NaN or infinite; the step was skipped ({bad} so far)")
                    if bad >= 10:
                        raise FloatingPointError("10 non-finite losses: training diverged; lower --lr")
                    continue
                useful += sum(int((b["labels"] != -100).sum() + b["attention_mask"].sum()) for b in batches)
                self.elapsed = time.time() - t0
                if step % opts.log_every == 0 or step == opts.steps - 1:
                    last = {"step": step, "loss": round(loss, 5), "lr": self.scheduler.get_last_lr()[0],
                            "time": round(self.elapsed, 2), "tokens_per_s": round(useful / max(self.elapsed, 1e-9), 1),
                            "task_loss": self.task_losses.pop()}
                    bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{useful / max(self.elapsed, 1e-9):.0f}")
                    if log:
                        log.write(json.dumps(last) + "\n")
                        log.flush()
                done = step + 1 == opts.steps or self._out_of_time()
                if (step + 1) % opts.checkpoint_every == 0 or done:
                    self.save_checkpoint(step + 1)
                if opts.eval_every and (step + 1) % opts.eval_every == 0:
                    self.log_eval(log, step + 1, split="validation")
                if done:
                    break
        finally:
            prefetch.close()
        if self.distributed:
            self._write_weights_checksum()
            self.model = self._gathered_model()   # rank 0 exports and evaluates it alone
        return last

    def _gathered_model(self):
        """On rank 0, the trained weights in a model of their own, outside DeepSpeed (ZeRO-3 partitions
        the parameters and hooks the module into collectives, so one rank cannot run it alone); None
        on the other ranks. Every rank must call it."""
        import deepspeed
        module = self.engine.module
        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
            state = {k: v.detach().clone() for k, v in module.state_dict().items()} if self.rank == 0 else None
        if state is None:
            return None
        plain = type(module)(module.config)
        plain.load_state_dict(state)
        return plain.to(next(iter(state.values())).device)

    def _write_weights_checksum(self) -> None:
        """Each rank writes a checksum of its weights, so a test can see the ranks agree."""
        total = sum(float(p.detach().double().sum()) for p in self.model.parameters())
        (self.out / f"weights_rank{self.rank}.txt").write_text(repr(total))

    def _finite_everywhere(self, loss) -> bool:
        """Whether the loss is finite on every rank: under DeepSpeed all ranks skip a step together,
        or none does (a rank skipping alone would leave the others waiting in its collectives)."""
        finite = torch.isfinite(loss.detach()).float().reshape(1)
        if self.distributed:
            import torch.distributed as dist
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite.item())

    def _out_of_time(self) -> bool:
        """Whether --minutes have passed; under DeepSpeed rank 0's clock decides for all ranks, which
        must stop at the same step."""
        if not self.opts.minutes:
            return False
        over = self.elapsed > self.opts.minutes * 60
        if not self.distributed:
            return over
        import torch.distributed as dist
        flag = torch.tensor([float(over)], device=next(self.model.parameters()).device)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def save_checkpoint(self, step: int) -> None:
        if self.engine is not None:
            return self._save_with_engine(step)
        ckpt.save_checkpoint(self.out / "checkpoint", self.model, self.mods, self.optimizer, self.scheduler,
                             step, {"elapsed": self.elapsed})

    def _save_with_engine(self, step: int) -> None:
        """Every rank writes its part (DeepSpeed's engine checkpoint, its RNG); rank 0 the weights in
        save_pretrained form, the tokenizers and the step, then renames the whole into place."""
        import torch.distributed as dist
        directory = self.out / "checkpoint"
        tmp = ckpt.staging(directory)
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        dist.barrier()
        self.engine.save_checkpoint(str(tmp / "deepspeed"), tag="state")
        torch.save(ckpt.rng_state(), tmp / "deepspeed" / f"rng_rank{self.rank}.pt")
        weights = self._gathered_model()
        if self.rank == 0:
            ckpt.write_contents(tmp, weights, self.mods, step, {"elapsed": self.elapsed})
        dist.barrier()
        if self.rank == 0:
            ckpt.commit(tmp, directory)
        dist.barrier()

    def log_eval(self, log, step: int, split: str = "validation") -> dict:
        """Evaluates on rank 0 (under DeepSpeed every rank must call it: the weights are gathered first)."""
        from unio.evaluation import evaluate_model
        model = self._gathered_model() if self.distributed else self.model
        if model is None:
            return {}
        results = evaluate_model(model, self.mods, list(self.weights), split, self.opts.eval_n)
        self.model.train()
        if log:
            log.write(json.dumps({"step": step, "eval": results, "split": split}) + "\n")
            log.flush()
        return results

    def export(self) -> Path:
        """The final model in save_pretrained form, with its tokenizers and vocabulary beside it."""
        model = self.model   # under DeepSpeed, after train(): the gathered copy
        final = self.out / "model"
        tmp = self.out / "model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        self.mods.save(tmp / "tokenizers")
        shutil.copy(tmp / "tokenizers" / "vocab.json", tmp / "vocab.json")
        shutil.rmtree(final, ignore_errors=True)
        tmp.replace(final)
        return final

"""Benchmarks, each measured against a peer in the same run: the tools of scripts/bench.py.

Not part of the installed `unio` package: scripts/bench.py imports it as a sibling module, the tests and
scripts/gpu_check.sh by path.
"""
from __future__ import annotations

import json
import os
import resource
import time
from collections import Counter

import numpy as np
import torch
from torch import nn

from unio.data.batching import BUCKETS, BatchStream, Collator, model_inputs
from unio.data.mixture import Mixture
from unio.data.records import make_example
from unio.data.sources import build_source
from unio.data.world import World
from unio.model.stem import LinearStem
from unio.registries import TASKS

TASKS4 = ["vqa", "caption", "refexp", "depth"]


def timed(fn, repeat: int, warmup: int = 1, device="cpu") -> float:
    """Seconds per call (median of `repeat`, after `warmup` calls), waiting for a GPU to finish each."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_rates(sizes=(1024, 1536, 2048), dtype=torch.bfloat16, device="cpu") -> dict:
    """This machine's measured dense n x n x n matmul rate (FLOP/s) in `dtype`, per size, and the best.
    Several sizes because one can mislead: 1024 runs at about half the rate of 1536 here."""
    rates = {}
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
        rates[str(n)] = 2 * n ** 3 / timed(lambda: a @ b, repeat=5, warmup=2, device=device)
    return {"per_size": rates, "best": max(rates.values())}


def memory_rate(megabytes: int = 256) -> float:
    """This machine's memory bandwidth in bytes/s: one large fp32 copy (bytes read + bytes written),
    the ceiling of the step's elementwise work (norms, activations, casts, the optimizer)."""
    src = torch.ones(megabytes * 2 ** 18)
    dst = torch.empty_like(src)
    return 2 * src.nbytes / timed(lambda: dst.copy_(src), repeat=5, warmup=2)


MATMUL_OPS = ("aten::mm", "aten::bmm")


def matmul_share(step, batches, top: int = 8) -> dict:
    """Where a training step's time goes: the share of CPU time in matmul kernels over `batches`, and
    the `top` matmul shapes by time with the rate each reached."""
    from torch.profiler import profile
    with profile(record_shapes=True) as prof:
        for batch in batches:
            step(batch)
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    shapes = [e for e in prof.key_averages(group_by_input_shape=True) if e.key in MATMUL_OPS]
    matmul = sum(e.self_cpu_time_total for e in shapes)
    shapes.sort(key=lambda e: -e.self_cpu_time_total)
    by_shape = [{"op": e.key, "shapes": e.input_shapes[:2], "calls": e.count, "ms": e.self_cpu_time_total / 1e3,
                 "flop_per_s": matmul_flops(e.key, e.input_shapes) * e.count / (e.self_cpu_time_total / 1e6)}
                for e in shapes[:top]]
    return {"matmul_time_fraction": matmul / total, "step_seconds_profiled": total / 1e6 / len(batches),
            "matmul_by_shape": by_shape}


def matmul_flops(op: str, shapes) -> int:
    """FLOPs of one aten::mm ((m, k) x (k, n)) or aten::bmm ((b, m, k) x (b, k, n)) call."""
    a, b = shapes[0], shapes[1]
    return 2 * a[0] * a[1] * b[1] if op == "aten::mm" else 2 * a[0] * a[1] * a[2] * b[2]


def matmul_ceiling(model, batches, peak: float, bf16: bool = True) -> dict:
    """The fraction of `peak` training steps on `batches` would reach if they did nothing but their
    matmuls, each run standalone (warm caches) with the shapes and memory layouts the step gives it,
    recorded from an eager forward + backward: an upper bound on fraction_of_matmul_rate that no
    change outside the matmul kernels can pass."""
    calls = step_matmuls(model, batches, bf16)
    seconds, flops = 0.0, 0
    for fn, args, count in matmul_operands(calls, model.device):
        seconds += count * timed(lambda: fn(*args), repeat=3, device=model.device)
        flops += count * matmul_flops(f"aten::{fn.__name__}", [a.shape for a in args])
    contiguous = lambda size: torch.empty(size, device="meta").stride()   # noqa: E731
    strided = sum(n for (_, ops), n in calls.items() if any(st != contiguous(s) for s, st, _ in ops))
    return {"matmul_calls": sum(calls.values()), "calls_with_a_non_contiguous_operand": strided,
            "matmul_only_seconds_per_step": seconds / len(batches), "matmul_only_flop_per_s": flops / seconds,
            "ceiling_fraction_of_matmul_rate": flops / seconds / peak}


def step_matmuls(model, batches, bf16: bool = True) -> Counter:
    """recorded_matmuls summed over a training step on each of `batches`."""
    return sum((recorded_matmuls(model, b, bf16) for b in batches), Counter())


def matmul_operands(calls: Counter, device) -> list:
    """(torch.mm or torch.bmm, random operands in the recorded layouts, count) for recorded_matmuls' calls."""
    return [(torch.mm if op == "mm" else torch.bmm,
             [strided_randn(size, stride, dtype, device) for size, stride, dtype in operands], count)
            for (op, operands), count in calls.items()]


def ceiling_in_turns(model, batches, rounds: int = 9, bf16: bool = True) -> dict:
    """The step's share of its matmul-only ceiling timed in turns: each round one training pass over `batches`
    (as train_throughput steps) and one pass of the same matmuls alone (recorded as matmul_ceiling records
    them, run back to back), the fraction the median of the rounds' matmul-only / step times. Timed
    separately, a ceiling and a step minutes apart moved this fraction by 20-40% on a drifting VM."""
    out = interleaved_ratio(training_pass(model, batches, bf16), matmul_pass(model, batches, bf16), rounds)
    return {"fraction": out["ratio"], "fractions": out["ratios"], "spread": out["spread"], "rounds": rounds}


def matmul_pass(model, batches, bf16: bool = True):
    """A call that runs the matmuls of one training step on each of `batches` and nothing else, back to back:
    each recorded mm / bmm its number of times, on random operands in the recorded layouts."""
    prepared = matmul_operands(step_matmuls(model, batches, bf16), model.device)

    def matmuls_alone():
        for fn, args, count in prepared:
            for _ in range(count):
                fn(*args)
        synchronize(model.device)
    return matmuls_alone


def strided_randn(size, stride, dtype, device="cpu") -> torch.Tensor:
    """Random values in exactly the layout `stride` gives (a transposed view, say)."""
    storage = 1 + sum((n - 1) * st for n, st in zip(size, stride))
    return torch.randn(storage, dtype=dtype, device=device).as_strided(size, stride)


def recorded_matmuls(model, batch, bf16: bool) -> dict:
    """(op, ((size, stride, dtype), ...)) -> calls, for each mm / bmm / addmm of one forward + backward."""
    from torch.utils._python_dispatch import TorchDispatchMode
    kinds = {torch.ops.aten.mm.default: "mm", torch.ops.aten.bmm.default: "bmm", torch.ops.aten.addmm.default: "mm"}
    calls = Counter()

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in kinds:
                operands = args[1:3] if func is torch.ops.aten.addmm.default else args[:2]
                calls[kinds[func], tuple((tuple(t.shape), t.stride(), t.dtype) for t in operands)] += 1
            return func(*args, **(kwargs or {}))
    eager_backward(model, batch, Recorder(), bf16)
    return calls


def eager_backward(model, batch, mode, bf16: bool = True) -> None:
    """One forward + backward under `mode` (a FLOP counter, a recorder) on the eager path: compiled
    blocks would hide their aten ops from it. Leaves no gradients behind."""
    model.eval()
    with mode, torch.autocast(next(model.parameters()).device.type, dtype=torch.bfloat16, enabled=bf16):
        model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)
    model.train()


def world_speed(n64: int = 300, n256: int = 30) -> dict:
    out = {}
    for res, n in ((64, n64), (256, n256)):
        world = World("train", resolution=res)
        start = time.perf_counter()
        for i in range(n):
            world[i]
        out[f"scenes_per_s_{res}"] = n / (time.perf_counter() - start)
    return out


def task_speed(mods, n: int = 128, resolution: int = 64) -> dict:
    """Examples (scene -> record -> prompt ids + target ids) per second, per task; depth cold (VQ encode)."""
    records, out = build_source("world", None, resolution).split("validation"), {}
    for name in TASKS4:
        task = TASKS.get(name)
        collate = Collator({name: task}, mods, 64, 512)
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        examples = [make_example(task, records[i], resolution, rng) for i in range(n)]
        collate(examples)
        out[f"{name}_examples_per_s"] = n / (time.perf_counter() - start)
    return out


def mixture_batches(mods, config, batch_size: int, n_batches: int, seed: int = 0):
    """The same examples twice: length-bucketed (unio's way) and shuffled, padded (a T5 user's way)."""
    tasks = {n: TASKS.get(n) for n in TASKS4}
    sources = {"world": build_source("world", None, config.image_size)}
    mixture = Mixture(tasks, sources, {(n, "world"): 1.0 for n in TASKS4}, config.image_size, 50_000, seed)
    collate = Collator(tasks, mods, config.max_text_length, config.max_target_length)
    stream = BatchStream(mixture, collate, batch_size)
    start = time.perf_counter()
    bucketed = [model_inputs(stream.batch(i)) for i in range(n_batches)]
    data_seconds = time.perf_counter() - start
    examples = [example for i in range(n_batches) for example in stream.examples(i)[0]]
    order = np.random.default_rng(seed).permutation(len(examples))   # the bucketed batches sort out the drawn order
    padded = [collate([examples[j] for j in order[i * batch_size:(i + 1) * batch_size]]) for i in range(n_batches)]
    return bucketed, padded, data_seconds


def pass_tokens(batches, patches: int) -> int:
    """The useful tokens of a pass over `batches`: prompt and target tokens that are not padding, and patches."""
    return sum(useful_tokens(b) + b["pixel_values"].shape[0] * patches for b in batches)


def useful_tokens(batch) -> int:
    """Non-pad prompt and target tokens (image patches are added by the caller)."""
    return int((batch["labels"] != -100).sum() + batch["attention_mask"].sum())


class T5WithPatches(nn.Module):
    """Hugging Face T5 of the same dimensions, fed the same patches + prompt through inputs_embeds."""

    def __init__(self, config):
        super().__init__()
        from transformers import T5Config, T5ForConditionalGeneration
        t5 = T5Config(vocab_size=config.vocab_size, d_model=config.d_model, d_kv=config.d_model // config.num_heads,
                      d_ff=config.d_ff, num_layers=config.encoder_layers, num_decoder_layers=config.decoder_layers,
                      num_heads=config.num_heads, feed_forward_proj="gated-silu", dropout_rate=0.0,
                      decoder_start_token_id=config.decoder_start_token_id, pad_token_id=0, eos_token_id=1)
        self.t5 = T5ForConditionalGeneration(t5)
        self.patch = LinearStem(config.patch_size, config.d_model)

    def embeds(self, pixel_values, input_ids, attention_mask):
        patches = self.patch(pixel_values)
        x = torch.cat([patches, self.t5.get_input_embeddings()(input_ids)], 1)
        mask = torch.cat([attention_mask.new_ones(patches.shape[:2]), attention_mask], 1)
        return x, mask

    def forward(self, pixel_values, input_ids, attention_mask, labels):
        x, mask = self.embeds(pixel_values, input_ids, attention_mask)
        return self.t5(inputs_embeds=x, attention_mask=mask, labels=labels)

    def generate(self, pixel_values, input_ids, attention_mask, **options):
        x, mask = self.embeds(pixel_values, input_ids, attention_mask)
        return self.t5.generate(inputs_embeds=x, attention_mask=mask, **options)

    def encode(self, pixel_values, input_ids, attention_mask):
        """The encoder pass generate() runs first."""
        x, mask = self.embeds(pixel_values, input_ids, attention_mask)
        return self.t5.get_encoder()(inputs_embeds=x, attention_mask=mask)


def train_throughput(model, batches, patches: int, bf16: bool = True, profile: bool = False) -> dict:
    """Useful (non-pad) tokens per second over `batches`, one fused AdamW step each, after one untimed pass
    over the same batches (which is where torch.compile, if the model uses it, compiles); `profile`
    adds a third, profiled pass: the share of the step spent in matmuls."""
    one_pass = training_pass(model, batches, bf16)
    timing = stable_timing(one_pass)
    seconds = timing["median_seconds"]
    tokens = pass_tokens(batches, patches)
    out = {"useful_tokens_per_s": tokens / seconds, "seconds_per_step": seconds / len(batches),
           "first_pass_seconds": timing["warmup_seconds"][0], "timing": timing}
    return {**out, **matmul_share(one_pass.step, batches)} if profile else out


def train_ratio_in_turns(model, batches, peer, peer_batches, patches: int, rounds: int = 7,
                         bf16: bool = True) -> dict:
    """How many times the peer's useful tokens/s `model` trains at, timed in turns (interleaved_ratio: one
    training pass of each a round, order swapped each round, the median of the rounds' ratios): the same
    examples laid out each model's way, so the ratio of pass times is the ratio of useful tokens/s."""
    out = interleaved_ratio(training_pass(model, batches, bf16), training_pass(peer, peer_batches, bf16), rounds)
    scale = pass_tokens(batches, patches) / pass_tokens(peer_batches, patches)   # 1 when both hold the same examples
    return {"ratio": out["ratio"] * scale, "ratios": [r * scale for r in out["ratios"]], "spread": out["spread"],
            "rounds": rounds}


def training_pass(model, batches, bf16: bool = True):
    """A call that trains `model` one step on each of `batches` (bf16 autocast or fp32, one fused AdamW step each, as
    the trainer steps); its `step` attribute trains on one batch."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    device = next(model.parameters()).device
    model.train()

    def step(batch):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def one_pass():
        for batch in batches:
            step(batch)
        synchronize(device)
    one_pass.step = step
    return one_pass


def unclean_timings(report, path: str = "") -> dict:
    """{where in the report: why} for every timing that was not measured cleanly."""
    out = {}
    if isinstance(report, dict):
        if report.get("clean") is False and "note" in report:
            out[path] = report["note"]
        for key, value in report.items():
            out.update(unclean_timings(value, f"{path}.{key}" if path else key))
    return out


def compile_events() -> int:
    """Frames torch.compile has compiled so far in this process (recompilations included)."""
    from torch._dynamo.utils import counters
    return int(counters["frames"]["total"])


def stable_timing(fn, repeat: int = 5, max_warmup: int = 6, tolerance: float = 0.1) -> dict:
    """Times `fn` only once it has stopped compiling and its time has settled: warm-up calls run until
    one compiles nothing and lies within `tolerance` of the one before; then `repeat` timed calls,
    each checked to compile nothing. Median and spread; `clean` says whether every check held."""
    warmup, before = [], None
    for _ in range(max_warmup):
        events, start = compile_events(), time.perf_counter()
        fn()
        warmup.append(time.perf_counter() - start)
        if compile_events() == events and before is not None and abs(warmup[-1] - before) <= tolerance * before:
            break
        before = warmup[-1] if compile_events() == events else None
    times, compiled = [], 0
    for _ in range(repeat):
        events, start = compile_events(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        compiled += compile_events() - events
    median = float(np.median(times))
    spread = (max(times) - min(times)) / median
    clean = compiled == 0 and len(warmup) < max_warmup and spread <= 0.25
    return {"median_seconds": median, "min_seconds": min(times), "max_seconds": max(times), "spread": spread,
            "repeats": repeat, "warmup_seconds": warmup, "compiled_while_timed": compiled, "clean": clean,
            **({} if clean else {"note": "not measured cleanly: " + _why(compiled, warmup, max_warmup, spread)})}


def _why(compiled: int, warmup: list, max_warmup: int, spread: float) -> str:
    reasons = [f"{compiled} compilations during the timed calls"] if compiled else []
    reasons += [f"the time had not settled after {max_warmup} warm-up calls"] if len(warmup) >= max_warmup else []
    reasons += [f"the timed calls spread {spread:.0%} around their median"] if spread > 0.25 else []
    return "; ".join(reasons)


def interleaved_ratio(first, second, rounds: int = 9) -> dict:
    """How many times faster `first` is than `second` (no-argument calls doing the same work), timed in turns:
    both warmed up as stable_timing warms, then each round times one call of each (first then second, the
    next round second then first) and the ratio is the median of the rounds' ratios, so a drift of the
    machine's speed over a bench's minutes, which moves separate timings apart, moves both sides alike."""
    first_s, second_s = times_in_turns([first, second], rounds)
    return {**ratio_by_round(second_s, first_s), "rounds": rounds}


def times_in_turns(calls: list, rounds: int) -> list:
    """Each of `calls` (no-argument) warmed up as stable_timing warms, then timed once a round for `rounds`
    rounds, in the given order and reversed every other round: [seconds of each round] per call."""
    for fn in calls:
        stable_timing(fn, repeat=1)
    seconds: list = [[] for _ in calls]
    order = list(enumerate(calls))
    for r in range(rounds):
        for i, fn in (order if r % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            fn()
            seconds[i].append(time.perf_counter() - start)
    return seconds


def mode_call(generate, batch, new_tokens: int, mode: str):
    """generation_call in one of generation_modes' modes: in fp32 (fp32, compiled_fp32) or in bf16 autocast
    (bf16, compiled_bf16); the model's compiled state is the caller's."""
    return in_mode(generation_call(generate, batch, new_tokens), mode)


def encoder_call(encode, batch, mode: str):
    """A no-argument call of `encode` (a model's encoder pass as its generate() runs it) on `batch`'s inputs,
    in `mode`'s precision."""
    inputs = generation_inputs(batch)
    return in_mode(torch.no_grad()(lambda: encode(**inputs)), mode)


def in_mode(call, mode: str):
    """`call` as it is (fp32 modes) or under bf16 autocast (bf16 modes)."""
    if "bf16" not in mode:
        return call

    def in_bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return call()
    return in_bf16


def step_flops(model, batch, bf16: bool = True) -> float:
    """FLOPs of one forward + backward, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    eager_backward(model, batch, counter, bf16)
    return float(counter.get_total_flops())


def training_work(mine: float, peer, peer_batches, bf16: bool = True) -> dict:
    """The FLOPs of a training pass of each model over its batches (the same examples, laid out each model's
    way; `mine`, unio's, counted by the caller): how much of the training ratio is work one model does not do
    (padding, chiefly) and how much is the same work done faster (the rest: ratio = work ratio x rate ratio)."""
    theirs = sum(step_flops(peer, b, bf16) for b in peer_batches)
    return {"unio_pass_flops": mine, "t5_pass_flops": theirs, "t5_over_unio": theirs / mine}


def unpadded_work(model, batches, work: dict, bf16: bool = True) -> dict:
    """training_work's figures with unio's FLOPs over the same examples each run alone (rows_alone): the share
    of unio's work that is padding, and the work ratio no layout of unio's could beat."""
    alone = sum(step_flops(model, row, bf16) for row in rows_alone(batches))
    return {"unio_unpadded_pass_flops": alone, "unio_padding_share": 1 - alone / work["unio_pass_flops"],
            "t5_over_unio_unpadded": work["t5_pass_flops"] / alone}


def rows_alone(batches) -> list:
    """Every row of `batches` as a batch of its own, its prompt and target cut to their own lengths: the same
    examples with no padding at all (what a layout could save at best). Prompts are left-aligned (the
    collator's layout); a row whose prompt is not is an error."""
    from unio.train.sub_batches import target_lengths
    out = []
    for batch in batches:
        targets = target_lengths(batch["labels"])
        for i in range(len(batch["labels"])):
            prompt = int(batch["attention_mask"][i].sum())
            if not bool(batch["attention_mask"][i, :prompt].all()):
                raise ValueError(f"row {i}'s prompt is not left-aligned: its padding cannot be cut off")
            target = max(int(targets[i]), 1)
            row = {k: v[i:i + 1] for k, v in batch.items() if isinstance(v, torch.Tensor)}
            row["input_ids"], row["attention_mask"] = row["input_ids"][:, :prompt], row["attention_mask"][:, :prompt]
            row["labels"] = row["labels"][:, :target]
            out.append(row)
    return out


def generation_inputs(batch) -> dict:
    """The parts of a collated batch that generate() (and an encoder pass) takes."""
    return {k: batch[k] for k in ("pixel_values", "input_ids", "attention_mask", "region_boxes") if k in batch}


def generation_call(generate, batch, new_tokens: int):
    """A no-argument call of greedy generation of exactly `new_tokens` tokens for `batch`."""
    inputs = generation_inputs(batch)
    return torch.no_grad()(lambda: generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                            do_sample=False))


def encoder_and_decoding(encode, call, new_tokens: int, rounds: int = 7) -> dict:
    """A generate() call (`call`, `new_tokens` tokens a row) split in two, the two timed in turns: its encoder pass
    (`encode`, the same inputs) and the rest, the decoding steps with transformers' loop around them. Medians of
    `rounds`; the rest per new token."""
    return splits_in_turns({"model": (encode, call)}, new_tokens, rounds)["model"]


def splits_in_turns(pairs: dict, new_tokens: int, rounds: int = 7) -> dict:
    """encoder_and_decoding for several models at once, {name: (encode, call)}, every pass of every model timed in
    one round, the order reversed each round, so that models compared are timed in the same minutes (this VM's
    speed drifts: two models' figures timed minutes apart have been 1.4x apart for no reason of their own).
    Each model's medians, and its times in each round (`by_round`) for ratios (ratio_by_round)."""
    names = list(pairs)
    timed = times_in_turns([fn for name in names for fn in pairs[name]], rounds)
    seconds = {name: (timed[2 * i], timed[2 * i + 1]) for i, name in enumerate(names)}
    out = {}
    for name, (encode_s, call_s) in seconds.items():
        encoder, whole = float(np.median(encode_s)), float(np.median(call_s))
        out[name] = {"encoder_seconds": encoder, "call_seconds": whole, "encoder_fraction": encoder / whole,
                     "decoding_seconds_per_token": (whole - encoder) / new_tokens, "rounds": rounds,
                     "by_round": {"encoder": encode_s, "call": call_s,
                                  "decoding_per_token": [(c - e) / new_tokens for e, c in zip(encode_s, call_s)]}}
    return out


def ratio_by_round(slower: list, faster: list) -> dict:
    """How many times faster one side is than the other from their times in the same rounds: the median of the
    rounds' ratios, the ratios, and their range over the median (`spread`)."""
    ratios = [s / f for s, f in zip(slower, faster)]
    median = float(np.median(ratios))
    return {"ratio": median, "ratios": ratios, "spread": (max(ratios) - min(ratios)) / median}


def generation_throughput(generate, batch, new_tokens: int, repeat: int = 5, timings: dict | None = None,
                          name: str = "") -> float:
    """Tokens/s of greedy generation, the median of `repeat` calls once compiling has stopped and the
    time settled (this VM's speed drifts within a run); `timings[name]` receives the timing record."""
    timing = stable_timing(generation_call(generate, batch, new_tokens), repeat=repeat)
    if timings is not None:
        timings[name] = timing
    return batch["input_ids"].shape[0] * new_tokens / timing["median_seconds"]


def preset_utilisation(preset: str, batch_size: int, peak: float, steps: int = 3, prompt: int = 16,
                       target: int = 16, device="cpu", rounds: int = 5, bf16: bool = True) -> dict:
    """FLOP/s of a training step of `preset` (blocks compiled; bf16 autocast or fp32) on random inputs of the
    given lengths, as a fraction of `peak` (the matmul rate in the same precision), and its matmul-only ceiling: the matmul fraction where the
    matrices are as large as the preset makes them, and the step's share of it timed in `rounds` turns
    (ceiling_in_turns). On a CPU, also the step's share of time in matmuls."""
    from unio.model.presets import model_from_preset
    model = model_from_preset(preset, 2048).to(device)
    cfg = model.config
    batch = {k: v.to(device) for k, v in random_batch(cfg, batch_size, prompt, target).items()}
    flops = step_flops(model, batch, bf16)
    ceiling = matmul_ceiling(model, [batch], peak, bf16)
    model.compile_blocks()
    on_cpu = torch.device(device).type == "cpu"
    timing = train_throughput(model, [batch] * steps, (cfg.image_size // cfg.patch_size) ** 2, bf16, profile=on_cpu)
    seconds = timing["seconds_per_step"]
    in_turns = ceiling_in_turns(model, [batch], rounds, bf16)
    out = {"preset": preset, "batch_size": batch_size, "device": str(device), "step_flops": flops,
           "seconds_per_step": seconds, "flop_per_s": flops / seconds, "fraction_of_matmul_rate": flops / seconds / peak,
           "matmul_ceiling": ceiling, "ceiling_in_turns": in_turns, "fraction_of_matmul_ceiling": in_turns["fraction"]}
    return {**out, "matmul_time_fraction": timing["matmul_time_fraction"]} if on_cpu else out


def generation_modes(generate, batch, new_tokens: int, compile_generation=None, bf16: bool = True) -> dict:
    """Generation tokens/s in fp32, in bf16 autocast (where `bf16`: on a machine whose bf16 matmuls are slower,
    fp32 alone) and, given `compile_generation` (which switches the model to a static KV cache with a compiled
    decoding step), compiled in bf16 (or fp32); and the best."""
    out, modes, timings = {}, ["fp32", "bf16"] if bf16 else ["fp32"], {}
    for mode in modes:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
            out[f"{mode}_tokens_per_s"] = generation_throughput(generate, batch, new_tokens, timings=timings, name=mode)
    if compile_generation is not None:
        compiled = compiled_generation(generate, batch, new_tokens, compile_generation, bf16)
        mode = "compiled_bf16" if bf16 else "compiled_fp32"
        out["compile_seconds"], out[f"{mode}_tokens_per_s"] = compiled["compile_seconds"], compiled["tokens_per_s"]
        timings[mode] = compiled["timing"]
        modes.append(mode)
    out["timing"] = timings
    out["clean"] = all(t["clean"] for t in timings.values())
    out["best_mode"] = max(modes, key=lambda m: out[f"{m}_tokens_per_s"])
    out["best"] = out[f"{out['best_mode']}_tokens_per_s"]
    return out


def compiled_generation(generate, batch, new_tokens: int, compile_generation, bf16: bool = True) -> dict:
    """Tokens/s (bf16 autocast, or fp32) after `compile_generation()`, and the seconds its first call spent
    compiling."""
    compile_generation()
    timings: dict = {}
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        start = time.perf_counter()
        generation_call(generate, batch, new_tokens)()
        seconds = time.perf_counter() - start
        rate = generation_throughput(generate, batch, new_tokens, timings=timings, name="compiled")
        return {"compile_seconds": seconds, "tokens_per_s": rate, "timing": timings["compiled"]}


def compile_t5_generation(t5: T5WithPatches) -> None:
    """T5's own route to a compiled decoding step: a static cache and transformers' auto-compile."""
    from unio.model.transformer import decoding_compile_config
    t5.t5.generation_config.cache_implementation = "static"
    t5.t5.generation_config.compile_config = decoding_compile_config(t5.t5.device)


def run_batch_vs_loop(runner, n: int = 16) -> dict:
    import unio
    images = [World("test")[i].image for i in range(n)]
    prompts = ["What color is the cube?"] * n
    batch = timed(lambda: unio.run(prompts, images, model=runner), repeat=2)
    loop = timed(lambda: [unio.run(p, i, model=runner) for p, i in zip(prompts, images)], repeat=1)
    return {"batch_answers_per_s": n / batch, "loop_answers_per_s": n / loop, "batch_over_loop": loop / batch}


def detection_vs_refexp(runner, images: list, objects: list, detection: str = "detection",
                        refexp: str = "refexp") -> dict:
    """Decoded objects/s: one detection call per image (each image alone, and all as one batch)
    against one refexp call per object (`objects`: per image, the phrases naming its objects)."""
    from unio.registries import TASKS
    prompt = TASKS.get(detection).prompts[0]
    template = TASKS.get(refexp).prompts[0]
    runner([prompt], images[:1], task=detection)                       # warm-up
    start = time.perf_counter()
    found = sum(len(runner([prompt], [image], task=detection)[0].boxes) for image in images)
    single_s = time.perf_counter() - start
    start = time.perf_counter()
    batched = sum(len(r.boxes) for r in runner([prompt] * len(images), images, task=detection))
    batch_s = time.perf_counter() - start
    start = time.perf_counter()
    asked = sum(len(runner([template.format(p)], [image], task=refexp)[0].boxes) for image, names in
                zip(images, objects) for p in names)
    refexp_s = time.perf_counter() - start
    return {"images": len(images), "objects_decoded": found, "gold_objects": sum(map(len, objects)),
            "detection_objects_per_s": found / single_s, "detection_batched_objects_per_s": batched / batch_s,
            "refexp_objects_per_s": asked / refexp_s,
            "ratio_single": found / single_s / (asked / refexp_s), "ratio_batched": batched / batch_s / (asked / refexp_s)}


LATENCY_TASKS = ["caption", "vqa", "refexp", "depth", "detection", "segment", "generate"]


def latency_asks(world_scene, task: str) -> tuple:
    """(prompt, image, region) asking `task` about one world scene, as a user would call unio.run."""
    handler = TASKS.get(task)
    name = world_scene.refexps[0][0] if world_scene.refexps else "the object"
    prompt = handler.prompts[0]
    prompt = prompt.format(name) if "{}" in prompt else prompt
    return prompt, world_scene.image, None


LATENCY_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import benchlib
print(json.dumps(benchlib.latency(sys.argv[2], n=int(sys.argv[3]), batch=int(sys.argv[4]))))
"""


def latency_in_fresh_process(model_dir: str, n: int = 20, batch: int = 16) -> dict:
    """`latency` in a new Python process: none of this process's settings (the trainer's allocator) or warm
    caches carried over."""
    import subprocess
    import sys
    scripts = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run([sys.executable, "-c", LATENCY_PROBE, scripts, model_dir, str(n), str(batch)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"measuring unio.run's latency on {model_dir} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def latency(model_dir: str, tasks=LATENCY_TASKS, n: int = 20, batch: int = 16) -> dict:
    """unio.run's latency on one image per call, per task the model knows: `cold_ms`, the first call
    of a freshly loaded model; `p50_ms` and `p95_ms` over `n` warm calls on other images; and
    `batch_answers_per_s`, `batch` images in one call. Tasks the model did not train are listed apart."""
    import unio
    from unio.infer.runner import load
    start = time.perf_counter()
    runner = load(model_dir)
    out = {"load_s": time.perf_counter() - start, "tasks": {}, "not_trained": []}
    trained = runner.model.config.trained_tasks
    scenes = World("test")
    for task in tasks:
        if trained is not None and task not in trained:
            out["not_trained"].append(task)
            continue
        asks = [latency_asks(scenes[i], task) for i in range(n + 1)]
        times = []
        for prompt, image, region in asks:
            began = time.perf_counter()
            unio.run(prompt, image, model=runner, task=task, region=region)
            times.append((time.perf_counter() - began) * 1000)
        prompts, images = [a[0] for a in asks[:batch]], [a[1] for a in asks[:batch]]
        batched = timed(lambda: unio.run(prompts, images, model=runner, task=task), repeat=2)
        out["tasks"][task] = {"cold_ms": times[0], "p50_ms": float(np.percentile(times[1:], 50)),
                              "p95_ms": float(np.percentile(times[1:], 95)), "batch_answers_per_s": len(prompts) / batched}
    out["peak_rss_mb"] = peak_rss_mb()
    return out


# A fresh process's own peak: /proc's VmHWM (its address space's high-water mark) where there is one, since
# Linux carries ru_maxrss over fork and exec, so a child of a large process would report its parent's peak.
MEMORY_PROBE = """
import resource, sys, torch
from unio.model.presets import model_from_preset
preset = sys.argv[1]
model = None if preset == "-" else model_from_preset(preset, int(sys.argv[2])).eval()
if model is not None:
    c = model.config
    model(pixel_values=torch.zeros(1, 3, c.image_size, c.image_size), input_ids=torch.ones(1, 8, dtype=torch.long),
          labels=torch.ones(1, 8, dtype=torch.long))
try:
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) / 1024
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(0 if model is None else sum(q.numel() for q in model.parameters()), peak)
"""


def loaded_model_memory(presets=("toy", "tiny", "small", "base"), vocab_size: int = 1454) -> dict:
    """Per preset: its parameters and the peak resident memory (MB) of a fresh process that builds the
    model and runs one forward pass, against the same process importing unio alone."""
    import subprocess
    import sys
    # every process at once (each one's own peak is measured, so they may overlap): its imports take seconds
    started = {p: subprocess.Popen([sys.executable, "-c", MEMORY_PROBE, p, str(vocab_size)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for p in ("-", *presets)}
    measured = {}
    for preset, proc in started.items():
        out, err = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"measuring the memory of preset {preset!r} failed:\n{err[-2000:]}")
        measured[preset] = int(out.split()[0]), float(out.split()[1])
    base = measured.pop("-")[1]
    return {"import_only_mb": base, **{preset: {"parameters": params, "peak_rss_mb": rss, "over_import_mb": rss - base}
                                       for preset, (params, rss) in measured.items()}}


def layout_batches(tasks: list, mods, config, batch_size: int, n_batches: int, packing, seed: int = 0) -> list:
    """`n_batches` of the world mixture of `tasks` (weight 1 each), the trainer's way: length-bucketed
    (`packing` None) or packed (a unio.data.packing.Packing); the same examples either way, as long as they
    are whole megabatches (a multiple of BUCKETS: a megabatch's batches hold its examples in another order
    each way)."""
    if n_batches % BUCKETS:
        raise ValueError(f"{n_batches} batches are not whole megabatches of {BUCKETS}: the two layouts would "
                         f"hold different examples")
    stream = world_stream(tasks, mods, config, batch_size, packing, seed)
    return [model_inputs(stream.batch(i)) for i in range(n_batches)]


def world_stream(tasks: list, mods, config, batch_size: int, packing=None, seed: int = 0) -> BatchStream:
    named = {n: TASKS.get(n) for n in tasks}
    sources = {"world": build_source("world", None, config.image_size)}
    mixture = Mixture(named, sources, {(n, "world"): 1.0 for n in tasks}, config.image_size, 50_000, seed)
    collate = Collator(named, mods, config.max_text_length, config.max_target_length)
    return BatchStream(mixture, collate, batch_size, packing)


def mixed_batches(tasks: list, mods, config, batch_size: int, n_batches: int, groups: int = 1, seed: int = 0) -> list:
    """layout_batches' examples in their drawn order, each batch's tasks mixed (the layout of --buckets 1);
    with `groups` > 1, each decoded in at most that many groups of like target lengths (--sub-batches)."""
    from unio.train.balance import token_weights
    from unio.train.sub_batches import target_groups
    stream, out = world_stream(tasks, mods, config, batch_size, seed=seed), []
    for index in range(n_batches // BUCKETS):
        examples = stream.mixture.megabatch(index, batch_size * BUCKETS)
        for start in range(0, len(examples), batch_size):
            batch = model_inputs(stream.collate(examples[start:start + batch_size]))
            if groups > 1:
                batch["label_weights"] = token_weights(batch["labels"], torch.zeros(len(batch["labels"])), "token")
                batch["target_groups"] = target_groups(batch["labels"], groups)
            out.append(batch)
    return out


def whole_megabatches(n_batches: int) -> int:
    """`n_batches` rounded up to whole megabatches."""
    return -(-n_batches // BUCKETS) * BUCKETS


def slot_use(batches: list, patches: int) -> dict:
    """The share of the token slots a layout computes that hold a real token, encoder and decoder."""
    encoder_used = sum(int(b["attention_mask"].sum()) + len(b["pixel_values"]) * patches for b in batches)
    decoder_used = sum(int((b["labels"] != -100).sum()) for b in batches)
    def slots(b):
        if "encoder_index" in b:
            return b["encoder_index"].numel(), b["labels"].numel()
        decoder = sum(len(rows) * length for rows, length in b.get("target_groups", [(b["labels"], b["labels"].shape[1])]))
        return b["input_ids"].numel() + len(b["input_ids"]) * patches, decoder
    encoder_slots, decoder_slots = (sum(x) for x in zip(*(slots(b) for b in batches)))
    return {"encoder_slots_used": encoder_used / encoder_slots, "decoder_slots_used": decoder_used / decoder_slots,
            "rows_per_batch": sum(len(b["labels"]) for b in batches) / len(batches)}


def packing_comparison(model, mixtures: dict, mods, batch_size: int, n_batches: int, bf16: bool = True,
                       rounds: int = 9) -> dict:
    """Useful tokens/s of training on length-bucketed batches against packed ones (--packing auto), and
    against batches whose tasks are mixed (--buckets 1), decoded whole or in two or three groups of like target
    lengths (--sub-batches 2, 3); the same examples, for each mixture {name: tasks}: medians of 5 timed
    passes, their spread, slot use and the share of each layout's FLOPs that is padding (against the same
    examples each run alone); and three groups against two (the default) timed in turns, `rounds` rounds."""
    from unio.data.packing import Packing
    cfg = model.config
    patches = (cfg.image_size // cfg.patch_size) ** 2
    n_batches = whole_megabatches(n_batches)
    out = {}
    for name, tasks in mixtures.items():
        row = {"tasks": tasks}
        layouts = {"bucketed": lambda: layout_batches(tasks, mods, cfg, batch_size, n_batches, None),
                   "packed": lambda: layout_batches(tasks, mods, cfg, batch_size, n_batches, Packing.parse("auto", cfg)),
                   "mixed": lambda: mixed_batches(tasks, mods, cfg, batch_size, n_batches),
                   "mixed_grouped": lambda: mixed_batches(tasks, mods, cfg, batch_size, n_batches, groups=2),
                   "mixed_grouped3": lambda: mixed_batches(tasks, mods, cfg, batch_size, n_batches, groups=3)}
        laid, unpadded = {}, None
        for layout, batches_of in layouts.items():
            laid[layout] = batches_of()
            if unpadded is None:   # the examples alone, from the first layout (every layout holds the same ones)
                unpadded = sum(step_flops(model, r, bf16) for r in rows_alone(laid[layout]))
            flops = sum(step_flops(model, b, bf16) for b in laid[layout])
            row[layout] = {**train_throughput(model, laid[layout], patches, bf16), **slot_use(laid[layout], patches),
                           "padding_share": 1 - unpadded / flops}
        speed = {layout: row[layout]["useful_tokens_per_s"] for layout in layouts}
        row["packed_over_bucketed"] = speed["packed"] / speed["bucketed"]
        row["mixed_over_bucketed"] = speed["mixed"] / speed["bucketed"]
        row["mixed_grouped_over_mixed"] = speed["mixed_grouped"] / speed["mixed"]
        row["grouped3_over_grouped2_in_turns"] = interleaved_ratio(
            training_pass(model, laid["mixed_grouped3"], bf16), training_pass(model, laid["mixed_grouped"], bf16), rounds)
        out[name] = row
    return out


STEP_PARTS = (   # (part, pieces of the names of the profiler's ops that belong to it), first match wins
    ("optimizer", ("adam", "optimizer")),
    ("loss over the vocabulary", ("log_softmax", "nll_loss", "logsumexp", "cross_entropy")),
    ("attention", ("bmm", "softmax", "scaled_dot_product", "baddbmm")),
    ("matmuls", ("aten::mm", "aten::addmm", "aten::linear", "aten::matmul")),
    # a compiled graph's own time is its fused elementwise kernels (the matmuls it calls are listed apart)
    ("norms and activations", ("compiledfxgraph", "cpp_fused", "rms_norm", "silu", "aten::mul", "aten::add",
                               "aten::div", "aten::rsqrt", "aten::pow", "aten::mean", "aten::sigmoid", "aten::neg",
                               "aten::sum")),
    ("copies and casts", ("copy", "aten::to", "clone", "contiguous", "aten::cat", "index", "embedding", "gather",
                          "scatter", "fill", "zero", "aten::where", "masked")),
    ("allocation, views and framework overhead", ("compiledfunction", "dynamo", "autograd", "backward", "compiled region",
                                                  "pregraph", "aotdispatcher", "aten::empty", "aten::view",
                                                  "aten::slice", "aten::reshape", "aten::transpose", "aten::t",
                                                  "aten::expand", "aten::unsqueeze", "aten::split", "aten::chunk")),
)


def step_profile(step, batches, top: int = 0) -> dict:
    """Where a training step's time goes, by part (STEP_PARTS, and "other" for the rest, its largest ops
    named): each part's share of the profiled CPU time and its ms per step.
    Self times of every op, so the parts add up to the whole step; in a compiled step the fused
    elementwise kernels (cpp_fused_*) count as norms and activations, the matmuls they call as matmuls."""
    from torch.profiler import profile
    with profile() as prof:
        for batch in batches:
            step(batch)
    totals, others = Counter(), Counter()
    for event in prof.key_averages():
        name = event.key.lower()
        part = next((p for p, keys in STEP_PARTS if any(k in name for k in keys)), "other")
        totals[part] += event.self_cpu_time_total
        if part == "other":
            others[event.key] += event.self_cpu_time_total
    whole = sum(totals.values())
    out = {part: {"share": totals[part] / whole, "ms_per_step": totals[part] / 1e3 / len(batches)}
           for part in [*(p for p, _ in STEP_PARTS), "other"]}
    out["other"]["largest"] = {k: v / 1e3 / len(batches) for k, v in others.most_common(8)}   # ms per step
    if top:   # the `top` ops of the largest self time, whatever their part: ms and calls per step
        events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:top]
        out["largest"] = {e.key: {"ms_per_step": e.self_cpu_time_total / 1e3 / len(batches),
                                  "calls_per_step": e.count / len(batches)} for e in events}
    return out


def profiled_step(model, batches, bf16: bool = True) -> dict:
    """step_profile of `model`'s training step (bf16 autocast, fused AdamW) on `batches`, after a warm-up
    pass over them (where a compiled model compiles)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    model.train()

    def step(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    for batch in batches:
        step(batch)
    return step_profile(step, batches)


def profiled_generation(generate, batch, new_tokens: int, compile_generation=None, mode: str = "fp32",
                        calls: int = 3) -> dict:
    """step_profile of `calls` greedy generate() calls of `new_tokens` tokens a row on `batch` (encoder pass and
    decoding; ms per call), after warm-up, in `mode`'s precision; given `compile_generation`, compiled first, with
    inductor's kernel profiling on so that each fused kernel is named by the ops it fuses (a fused softmax:
    attention)."""
    import torch._inductor.config as inductor
    with inductor.patch({"cpp.enable_kernel_profile": True}):
        if compile_generation is not None:
            compile_generation()
        call = mode_call(generate, batch, new_tokens, mode)
        stable_timing(call, repeat=1)
        parts = step_profile(lambda _: call(), [batch] * calls, top=12)
    largest = parts.pop("largest")
    return {"mode": mode, "new_tokens": new_tokens, "rows": len(batch["input_ids"]),
            "call_ms": sum(part["ms_per_step"] for part in parts.values()), "parts": parts,
            "largest_ops": largest}   # ms and calls per call


def random_batch(config, batch_size: int, prompt: int = 16, target: int = 16, vocab: int = 2048) -> dict:
    """Random pixels, prompt and target ids at a model's sizes: for presets without a mixture's tokenizers."""
    return {"pixel_values": torch.rand(batch_size, 3, config.image_size, config.image_size),
            "input_ids": torch.randint(3, vocab, (batch_size, prompt)),
            "attention_mask": torch.ones(batch_size, prompt, dtype=torch.long),
            "labels": torch.randint(3, vocab, (batch_size, target))}

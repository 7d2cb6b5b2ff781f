"""What decoding under a task's output grammar costs per generated token (`scripts/bench.py`'s `grammar`).

Each task's grammar is enforced by a logits processor that generate() calls once a step: a static grammar by a
(position, vocabulary) table, any other (boxes, repeats) by an automaton run over each row's prefix in Python
(unio/grammar.py). For each grammar: greedy tokens/s of the same batch and the same number of steps without and
with its processor (built anew for every call, as unio.run builds it), and the milliseconds a step spends
inside the processor.
"""
from __future__ import annotations

import time

import benchlib as bench
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from unio.registries import TASKS
from unio.vocab import EOS, PAD

GRAMMAR_TASKS = ["vqa", "caption", "depth", "refexp", "detection"]


class TimedProcessor(LogitsProcessor):
    """A logits processor that adds the seconds each of its calls takes to `clock["seconds"]`."""

    def __init__(self, processor, clock: dict):
        self.processor, self.clock = processor, clock

    def __call__(self, input_ids, scores):
        start = time.perf_counter()
        out = self.processor(input_ids, scores)
        self.clock["seconds"] += time.perf_counter() - start
        self.clock["calls"] += 1
        return out


def grammar_call(model, batch: dict, steps: int, processor=None, clock: dict | None = None, bf16: bool = True):
    """A no-argument call of greedy generation of exactly `steps` tokens; with `processor` (a function
    building a fresh logits processor), each call decodes under a new one, timed into `clock`."""
    inputs = {k: batch[k] for k in ("pixel_values", "input_ids", "attention_mask") if k in batch}

    @torch.no_grad()
    def call():
        extra = {}
        if processor is not None:
            extra["logits_processor"] = LogitsProcessorList([TimedProcessor(processor(), clock)])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model.generate(**inputs, max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                                  pad_token_id=PAD, eos_token_id=EOS, **extra)
    return call


def grammar_cost(model, batch: dict, mods, image_size: int, new_tokens: int, tasks=GRAMMAR_TASKS,
                 repeat: int = 5, bf16: bool = True) -> dict:
    """Per task: its grammar's kind, the steps timed (`new_tokens`, or fewer where the grammar's answers are
    shorter), tokens/s without and with the processor, and the processor's milliseconds a step (the whole
    batch) and share of the constrained call. `batch`: one batch of the bench's examples, decoded eagerly in
    bf16 autocast, or in fp32 where `bf16` is off (unio.run decodes in fp32: the processors do the same work,
    the model's step differs)."""
    limit = model.config.max_target_length + 1
    rows = batch["input_ids"].shape[0]
    out = {"batch": rows}
    for task in tasks:
        grammar = TASKS.get(task).grammar(mods, image_size)
        steps = max(1, min(new_tokens, grammar.max_length - 1, limit - 1))
        plain = bench.stable_timing(grammar_call(model, batch, steps, bf16=bf16), repeat=repeat)
        clock = {"seconds": 0.0, "calls": 0}
        constrained = bench.stable_timing(grammar_call(model, batch, steps, lambda: grammar.processor(mods.vocab, limit),
                                                       clock, bf16), repeat=repeat)
        per_step = clock["seconds"] / max(clock["calls"], 1)
        out[task] = {"kind": "table" if grammar.static else "automaton", "steps": steps,
                     "plain_tokens_per_s": rows * steps / plain["median_seconds"],
                     "constrained_tokens_per_s": rows * steps / constrained["median_seconds"],
                     "processor_ms_per_step": per_step * 1000,
                     "processor_share": per_step * steps / constrained["median_seconds"],
                     "timing": {"plain": plain, "constrained": constrained}}
    return out

"""Batches of a mixture: examples collated to model tensors, length-bucketed megabatches, and the
prefetchers that build them ahead of the trainer (a worker process by default, or a thread).

Batch `step` is a pure function of (seed, rank, step): resuming at a step restores the data
position exactly, and nothing beyond the batches in flight is held in memory.
"""
from __future__ import annotations

import os
import queue
import threading
from typing import Mapping

import numpy as np
import torch

from unio.allocator import keep_freed_memory
from unio.data.encoding import encode_inputs
from unio.data.mixture import Mixture, pair_name
from unio.grammar import answer_start_id
from unio.model.transformer import shift_right
from unio.vocab import BOS, EOS, IGNORE, PAD

BUCKETS = 4  # batches per megabatch (--buckets): examples are sorted by target length across them


class Collator:
    """Examples -> model tensors: pixels, padded prompt ids, target ids + EOS (padding = -100). With
    `answer_starts` (the image size of a model whose config says decoder_start="answer"), the decoder's
    inputs start from each task's answer start token (unio.grammar.answer_start_id) instead of <s>."""

    def __init__(self, tasks: Mapping, modalities, max_text_length: int, max_target_length: int,
                 answer_starts: int | None = None):
        self.tasks, self.mods = tasks, modalities
        self.max_text, self.max_target = max_text_length, max_target_length
        self.answer_starts, self._starts = answer_starts, {}

    def start_id(self, task: str) -> int:
        if task not in self._starts:
            grammar = self.tasks[task].grammar(self.mods, self.answer_starts)
            self._starts[task] = answer_start_id(grammar, self.mods.vocab)
        return self._starts[task]

    def target_ids(self, examples) -> list:
        out = [None] * len(examples)
        by_task: dict = {}
        for i, ex in enumerate(examples):
            by_task.setdefault(ex.task, []).append(i)
        for name, idx in by_task.items():
            for i, ids in zip(idx, self.tasks[name].targets([examples[i] for i in idx], self.mods)):
                out[i] = ids
        return out

    def __call__(self, examples, targets=None) -> dict:
        targets = targets if targets is not None else self.target_ids(examples)
        inputs = encode_inputs(examples, self.mods, self.max_text)
        length = max(len(t) for t in targets) + 1
        if length > self.max_target + 1:
            raise ValueError(f"a target of {length - 1} tokens exceeds the model's max_target_length {self.max_target}")
        labels = torch.full((len(targets), length), IGNORE, dtype=torch.long)
        for i, t in enumerate(targets):
            labels[i, : len(t) + 1] = torch.tensor(list(t) + [EOS], dtype=torch.long)
        ignored = [(i, j) for i, t in enumerate(targets) for j in getattr(t, "ignored", ())]
        if ignored or self.answer_starts:   # the decoder still reads ignored tokens; only the loss leaves them out
            inputs["decoder_input_ids"] = shift_right(labels, BOS, PAD)
            if self.answer_starts:
                inputs["decoder_input_ids"][:, 0] = torch.tensor([self.start_id(ex.task) for ex in examples])
        if ignored:
            rows, cols = zip(*ignored)
            labels[list(rows), list(cols)] = IGNORE
        inputs["labels"] = labels
        return {k: inputs[k] for k in ("pixel_values", "input_ids", "attention_mask", "labels", "decoder_input_ids",
                                       "image_mask", "region_boxes")
                if k in inputs}


class BatchStream:
    """Batch `step` of a bucketed mixture: megabatches of `buckets` * B examples sorted by target length, cut
    into `buckets` batches (each nearly one task on the world's mixtures; docs/experiments.md, session 36).
    Each batch also says which task each example is from (`task_index`, into `mixture.names`).
    With `packing` (a Packing), batches keep the megabatch's drawn order and each is packed into rows
    instead (unio.data.packing): the same examples, by another layout."""

    def __init__(self, mixture: Mixture, collator: Collator, batch_size: int, packing=None, buckets: int = BUCKETS):
        self.mixture, self.collate, self.batch_size, self.packing = mixture, collator, batch_size, packing
        self.buckets = buckets
        self._cached = (None, None, [])

    def batch(self, step: int) -> dict:
        """Batch `step`; with `skipped_records` [(source, message)] where its megabatch skipped bad records."""
        examples, targets = self.examples(step)
        batch = self.collate(examples, targets)
        if self.packing is not None:
            batch = self.packing(batch)
        batch["task_index"] = torch.tensor([self.mixture.names.index(pair_name(ex.task, ex.source))
                                            for ex in examples])
        if self._cached[2]:        # on every batch of the megabatch: the trainer counts each record once
            batch["skipped_records"] = list(self._cached[2])
        return batch

    def examples(self, step: int) -> tuple:
        """(examples, their target ids): what batch `step` is built from."""
        index, part = divmod(step, self.buckets)
        if self._cached[0] != index:
            skipped = []
            examples = self.mixture.megabatch(index, self.batch_size * self.buckets, skipped)
            targets = self.collate.target_ids(examples)
            order = list(range(len(examples)))
            if self.packing is None:
                order.sort(key=lambda i: len(targets[i]))
            chunks = [order[i * self.batch_size:(i + 1) * self.batch_size] for i in range(self.buckets)]
            perm = np.random.default_rng([self.mixture.seed, index, 3]).permutation(self.buckets)
            self._cached = (index, [([examples[i] for i in chunks[p]], [targets[i] for i in chunks[p]]) for p in perm],
                            skipped)
        return self._cached[1][part]


def yield_cores_to_training() -> bool:
    """Run the calling process only on cores the training step leaves idle (Linux's SCHED_IDLE policy), so the
    step's threads are not preempted in the middle of a kernel while its other threads wait for them at the
    next barrier; the worker builds while they sleep between kernels and steps, or while the trainer waits for
    a batch. True where the policy took (Linux); elsewhere nothing changes. Scheduling only: the batches are
    the same. Measured: docs/training.md, "Threads, memory and the data worker"."""
    if not hasattr(os, "SCHED_IDLE"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        return False
    return True


class _StreamFrom(torch.utils.data.IterableDataset):
    def __init__(self, stream: BatchStream, start: int, idle: bool = True):
        self.stream, self.start, self.idle = stream, start, idle

    def __iter__(self):
        torch.set_num_threads(1)
        keep_freed_memory()           # a process of its own: forked workers inherit it, spawned ones do not
        if self.idle:
            yield_cores_to_training()
        step = self.start
        while True:
            yield self.stream.batch(step)
            step += 1


class WorkerPrefetcher:
    """Builds batches start, start+1, ... in a worker process: no GIL shared with the training step. `idle`:
    the worker runs on the cores the step leaves idle (yield_cores_to_training)."""

    def __init__(self, stream: BatchStream, start: int, depth: int = 4, idle: bool = True):
        loader = torch.utils.data.DataLoader(_StreamFrom(stream, start, idle), batch_size=None, num_workers=1,
                                             prefetch_factor=depth, persistent_workers=False)
        self.iterator = iter(loader)

    def next(self) -> dict:
        return next(self.iterator)

    def close(self):
        del self.iterator


def prefetcher(stream: BatchStream, start: int, workers: int, idle: bool = True):
    return WorkerPrefetcher(stream, start, idle=idle) if workers > 0 else Prefetcher(stream, start)


class Prefetcher:
    """Builds batches start, start+1, ... in a background thread, `depth` ahead of the trainer."""

    def __init__(self, stream: BatchStream, start: int, depth: int = 6):
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stream, self.step, self._stop = stream, start, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        step = self.step
        while not self._stop.is_set():
            try:
                item = (step, self.stream.batch(step))
            except Exception as error:  # surfaced in the trainer, never swallowed
                item = (step, error)
            while not self._stop.is_set():
                try:
                    self.queue.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue
            step += 1

    def next(self) -> dict:
        step, item = self.queue.get()
        if isinstance(item, Exception):
            raise RuntimeError(f"building batch {step} failed: {item}") from item
        return item

    def close(self):
        self._stop.set()


def model_inputs(batch: dict) -> dict:
    """A stream batch without its bookkeeping: what the model's forward takes."""
    return {k: v for k, v in batch.items() if k not in ("task_index", "skipped_records", "decoder_example")}

"""The data path: a streaming mixture of (task, source) pairs, length-bucketed batches, and a prefetching thread.

Batch `step` is a pure function of (seed, rank, step): resuming at a step restores the data
position exactly, and nothing beyond the batches in flight is held in memory.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from unio.bad_records import BadRecord, BadRecords
from unio.model.transformer import shift_right
from unio.photometric import SHARE, augment, tolerated
from unio.task import Example, NothingToAsk, image_tensor, make_example
from unio.vocab import BOS, EOS, IGNORE, PAD

BUCKETS = 4  # batches per megabatch: examples are sorted by target length across them
REDRAWS = 64  # bad records drawn in a row for one example before the mixture gives up
EMPTY_REDRAWS = 1000   # records with nothing to ask drawn in a row before the mixture gives up


DEFAULT_SOURCE = "world"


def pair_name(task: str, source: str) -> str:
    """How a (task, source) pair is named in logs and results: the task alone on the world."""
    return task if source == DEFAULT_SOURCE else f"{task}@{source}"


def parse_mixture(spec: str | Mapping, known: list, default_weight=lambda name: 1.0) -> dict:
    """'vqa@vqav2:2,caption' or {'vqa': 2, ('caption', 'coco'): 1} -> {(task, source): weight}, with
    clear errors. A pair without a source uses the world; without a weight, `default_weight(task)`."""
    items = _split_spec(spec, known, default_weight) if isinstance(spec, str) else {
        (k if isinstance(k, tuple) else tuple(k.partition("@")[::2])): v for k, v in dict(spec).items()}
    items = {(t, s or DEFAULT_SOURCE): w for (t, s), w in items.items()}
    if not items:
        raise ValueError(f"no tasks given; available: {', '.join(known)}")
    for (name, source), weight in items.items():
        if name not in known:
            raise ValueError(f"unknown task {name!r}; available: {', '.join(known)}")
        refuse_composed(name)
        if not (isinstance(weight, (int, float)) and weight > 0 and np.isfinite(weight)):
            raise ValueError(f"task {name!r} has weight {weight}; weights must be positive numbers")
    return {k: float(v) for k, v in items.items()}


def refuse_composed(name: str) -> None:
    """A task composed of trained ones at inference (unio.run only) cannot be trained or evaluated itself."""
    from unio.registries import TASKS
    task = TASKS.get(name) if name in TASKS else None
    if getattr(task, "composed", False):
        raise ValueError(f"task {name!r} runs in unio.run as {' then '.join(task.composed_of)} and has no training "
                         f"or evaluation of its own; train and evaluate {' and '.join(task.composed_of)}")


def _split_spec(spec: str, known: list, default_weight) -> dict:
    items = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        pair, _, weight = part.partition(":")
        name, _, source = (x.strip() for x in pair.partition("@"))
        try:
            items[(name, source)] = float(weight) if weight else (default_weight(name) if name in known else 1.0)
        except ValueError:
            raise ValueError(f"malformed weight {weight!r} for task {name!r}; write tasks as "
                             f"'vqa:2,caption@coco:1'") from None
    return items


@dataclass
class Mixture:
    tasks: dict            # task name -> task object
    sources: dict          # source name -> source object
    weights: dict          # (task, source) -> weight
    resolution: int = 64
    pool: int = 50_000     # records of each source's train split cycled through (costly targets are cached)
    seed: int = 0
    rank: int = 0
    first_tasks: tuple = ()    # the only pairs (by name) sampled in megabatches before `first_until`
    first_until: int = 0
    photometric: float = 0.0   # strength of the photometric augmentation (unio/photometric.py) after the first stage
    bad: BadRecords | None = None   # whether bad records are skipped (None: a bad record stops the run)
    first_only: tuple = ()     # pairs (by name) of the first stage that are not sampled after it

    def __post_init__(self):
        self.pairs = list(self.weights)
        self.names = [pair_name(*p) for p in self.pairs]
        self.probs = self._probs([n for n in self.names if n not in self.first_only])
        self.first_probs = self._probs(self.first_tasks) if self.first_tasks else self.probs
        self.splits = {s: self.sources[s].split("train") if self.bad is None else
                       self.bad.open_split(self.sources[s], s, "train")
                       for s in dict.fromkeys(s for _, s in self.pairs)}
        self.spans = np.array([min(self.pool, len(self.splits[s])) for _, s in self.pairs])
        if (self.spans == 0).any():
            raise ValueError(f"source {self.pairs[int(np.argmin(self.spans))][1]!r} has an empty train split")

    def _probs(self, names) -> np.ndarray:
        p = np.array([w if n in names else 0.0 for n, w in zip(self.names, self.weights.values())], dtype=np.float64)
        return p / p.sum()

    def megabatch(self, index: int, size: int, skipped: list | None = None) -> list:
        """Megabatch `index`; bad records skipped on the way are added to `skipped` as (source, message)."""
        rng = np.random.default_rng([self.seed, self.rank, index, 17])
        probs = self.first_probs if index < self.first_until else self.probs
        picked = rng.choice(len(self.pairs), size=size, p=probs)
        records = rng.integers(0, self.spans[picked])
        examples = [self.draw(int(p), int(r), rng, (index, position), skipped)
                    for position, (p, r) in enumerate(zip(picked, records))]
        for position, example in enumerate(examples if index >= self.first_until else ()):
            # an rng of its own, so the examples stay as they were; not in the spatial-first stage
            self.augment(example, np.random.default_rng([self.seed, self.rank, index, 23, position]))
        return examples

    def draw(self, pair: int, record: int, rng, where: tuple, skipped: list | None) -> Example:
        """The example of `record` of `pair`. When bad records are skipped, a bad one is replaced by another
        record of the pair drawn by an rng of its own (seeded by the position `where`): batch k stays a
        function of (seed, rank, k), the same as without skipping wherever no record is bad. A record
        holding nothing the task asks about (NothingToAsk: a COCO image without a person, for person
        keypoints) is replaced the same way, skipping or not, and is not a bad record."""
        bad, empty = 0, 0
        for attempt in range(REDRAWS + EMPTY_REDRAWS):
            try:
                return self.example(pair, record, rng)
            except NothingToAsk as error:
                empty += 1
                if empty >= EMPTY_REDRAWS:
                    raise ValueError(f"task {self.pairs[pair][0]!r} found nothing to ask in {empty} records of source "
                                     f"{self.pairs[pair][1]!r} drawn in a row (the last: {error}); does the source "
                                     "hold what the task needs?") from None
            except BadRecord as error:
                if self.bad is None or not self.bad.skip:
                    raise
                bad, last = bad + 1, (self.pairs[pair][1], str(error))
                if skipped is None:
                    self.bad.note(*last)
                else:
                    skipped.append(last)
                if bad >= REDRAWS:
                    raise ValueError(f"source {last[0]!r}: {REDRAWS} records drawn in a row were bad (the last: "
                                     f"{last[1]}); is its train split readable?")
            record = int(np.random.default_rng([self.seed, self.rank, *where, 29, attempt]).integers(self.spans[pair]))

    def example(self, pair: int, index: int, rng) -> Example:
        task, source = self.pairs[pair]
        example = make_example(self.tasks[task], self.splits[source][index], self.resolution, rng, keep_record=False)
        for_training = getattr(self.tasks[task], "for_training", None)   # e.g. guidance's null prompts
        return example if for_training is None else for_training(example, rng)

    def augment(self, example: Example, rng) -> None:
        if self.photometric > 0 and example.image is not None:
            kinds = tolerated(self.tasks[example.task])
            example.image = augment(example.image, rng, kinds, self.photometric, example.frame.content, SHARE)


def prompt_ids(example, mods, max_length: int) -> list:
    """A prompt's ids: its text, then its region's location tokens (never cut) where it has one."""
    ids = mods.text_ids(example.prompt)
    if getattr(example, "region", None) is None:
        return ids[:max_length]
    height, width = example.image.shape[:2]
    location = box_ids(example.region, mods, width, height)
    return ids[:max_length - len(location)] + location


def box_ids(box, mods, width: float, height: float) -> list:
    """A box (x1, y1, x2, y2) in pixels as global ids of the first tokenizer that encodes boxes."""
    for name, tokenizer in mods.tokenizers.items():
        if hasattr(tokenizer, "encode_box"):
            return mods.vocab.to_global(name, tokenizer.encode_box(box, width, height))
    raise ValueError(f"a region needs a tokenizer that encodes boxes; this model has {', '.join(mods.tokenizers)}")


def encode_prompts(examples, mods, max_length: int) -> tuple:
    """Prompts (with their regions) -> (input_ids, attention_mask), padded to the longest."""
    ids = [prompt_ids(ex, mods, max_length) for ex in examples]
    length = max(1, max(len(x) for x in ids))
    input_ids = torch.full((len(ids), length), PAD, dtype=torch.long)
    mask = torch.zeros((len(ids), length), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, : len(x)] = 1
    return input_ids, mask


def encode_inputs(examples, mods, max_text_length: int) -> dict:
    """What the encoder reads: pixels and prompt ids. Training, evaluation and unio.run all use it."""
    input_ids, mask = encode_prompts(examples, mods, max_text_length)
    seen = [ex.image is not None for ex in examples]
    if not all(seen):   # prompts without an image (Example.image None): see inputs_without_images
        return inputs_without_images(examples, seen, input_ids, mask)
    pixels = torch.stack([image_tensor(ex.image) for ex in examples])
    return {"pixel_values": pixels, "input_ids": input_ids, "attention_mask": mask}


def inputs_without_images(examples, seen: list, input_ids, mask) -> dict:
    """A batch where some prompts come without an image: none has one -> no pixels at all (the encoder
    reads the text alone); some have one -> the others get blank pixels and `image_mask` (B,) False,
    which hides their patches from every query, so they too read as the text alone."""
    empty = [i for i, ex in enumerate(examples) if not seen[i] and not mask[i].any()]
    if empty:
        raise ValueError(f"example {empty[0]} has neither an image nor a prompt; the encoder needs one of them")
    inputs = {"input_ids": input_ids, "attention_mask": mask}
    if any(seen):
        shape = next(ex.image for ex in examples if ex.image is not None).shape
        blank = np.zeros(shape, np.uint8)
        inputs["pixel_values"] = torch.stack([image_tensor(blank if ex.image is None else ex.image) for ex in examples])
        inputs["image_mask"] = torch.tensor(seen)
    return inputs


class Collator:
    """Examples -> model tensors: pixels, padded prompt ids, target ids + EOS (padding = -100)."""

    def __init__(self, tasks: Mapping, modalities, max_text_length: int, max_target_length: int):
        self.tasks, self.mods = tasks, modalities
        self.max_text, self.max_target = max_text_length, max_target_length

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
        if ignored:   # the decoder still reads those tokens; only the loss leaves them out
            inputs["decoder_input_ids"] = shift_right(labels, BOS, PAD)
            rows, cols = zip(*ignored)
            labels[list(rows), list(cols)] = IGNORE
        inputs["labels"] = labels
        return {k: inputs[k] for k in ("pixel_values", "input_ids", "attention_mask", "labels", "decoder_input_ids",
                                       "image_mask")
                if k in inputs}


class BatchStream:
    """Batch `step` of a bucketed mixture: megabatches of BUCKETS*B examples sorted by target length.
    Each batch also says which task each example is from (`task_index`, into `mixture.names`)."""

    def __init__(self, mixture: Mixture, collator: Collator, batch_size: int):
        self.mixture, self.collate, self.batch_size = mixture, collator, batch_size
        self._cached = (None, None, [])

    def batch(self, step: int) -> dict:
        """Batch `step`; with `skipped_records` [(source, message)] where its megabatch skipped bad records."""
        index, part = divmod(step, BUCKETS)
        if self._cached[0] != index:
            skipped = []
            examples = self.mixture.megabatch(index, self.batch_size * BUCKETS, skipped)
            targets = self.collate.target_ids(examples)
            order = sorted(range(len(examples)), key=lambda i: len(targets[i]))
            chunks = [order[i * self.batch_size:(i + 1) * self.batch_size] for i in range(BUCKETS)]
            perm = np.random.default_rng([self.mixture.seed, index, 3]).permutation(BUCKETS)
            self._cached = (index, [([examples[i] for i in chunks[p]], [targets[i] for i in chunks[p]]) for p in perm],
                            skipped)
        examples, targets = self._cached[1][part]
        batch = self.collate(examples, targets)
        batch["task_index"] = torch.tensor([self.mixture.names.index(pair_name(ex.task, ex.source))
                                            for ex in examples])
        if self._cached[2]:        # on every batch of the megabatch: the trainer counts each record once
            batch["skipped_records"] = list(self._cached[2])
        return batch


class _StreamFrom(torch.utils.data.IterableDataset):
    def __init__(self, stream: BatchStream, start: int):
        self.stream, self.start = stream, start

    def __iter__(self):
        torch.set_num_threads(1)
        step = self.start
        while True:
            yield self.stream.batch(step)
            step += 1


class WorkerPrefetcher:
    """Builds batches start, start+1, ... in a worker process: no GIL shared with the training step."""

    def __init__(self, stream: BatchStream, start: int, depth: int = 4):
        loader = torch.utils.data.DataLoader(_StreamFrom(stream, start), batch_size=None, num_workers=1,
                                             prefetch_factor=depth, persistent_workers=False)
        self.iterator = iter(loader)

    def next(self) -> dict:
        return next(self.iterator)

    def close(self):
        del self.iterator


def prefetcher(stream: BatchStream, start: int, workers: int):
    return WorkerPrefetcher(stream, start) if workers > 0 else Prefetcher(stream, start)


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
    return {k: v for k, v in batch.items() if k not in ("task_index", "skipped_records")}

"""The task mixture: a `{(task, source): weight}` spec and the stream of examples it draws.

Megabatch `index` is a pure function of (seed, rank, index): examples are drawn record by record from
each source's train split (no epoch in memory), in the curriculum's stages, photometrically augmented
after the first stage. One process draws each record at random; with several ranks (`world` > 1) each rank
reads its own part of every pair's records, in epochs: a permutation of the pair's records per epoch, rank r
taking every world-th from the r-th, so that in one epoch no record is read twice and none is left out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from unio.data.bad_records import BadRecord, BadRecords
from unio.data.photometric import SHARE, augment, tolerated
from unio.data.records import make_example
from unio.task import Example, NothingToAsk

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
        refuse_untrainable(name)
        if not (isinstance(weight, (int, float)) and weight > 0 and np.isfinite(weight)):
            raise ValueError(f"task {name!r} has weight {weight}; weights must be positive numbers")
    return {k: float(v) for k, v in items.items()}


def refuse_untrainable(name: str) -> None:
    """A task made at inference from another's answers alone (`via`, no targets: segment_every) cannot be
    trained or evaluated itself."""
    from unio.registries import TASKS
    task = TASKS.get(name) if name in TASKS else None
    if task is not None and not hasattr(task, "targets"):
        raise ValueError(f"task {name!r} is answered in unio.run through {getattr(task, 'via', None)!r} and has no "
                         f"training or evaluation of its own; train and evaluate the tasks it asks")


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
    photometric: float = 0.0   # strength of the photometric augmentation (unio/data/photometric.py) after the first stage
    bad: BadRecords | None = None   # whether bad records are skipped (None: a bad record stops the run)
    first_only: tuple = ()     # pairs (by name) of the first stage that are not sampled after it
    world: int = 1             # ranks drawing from this mixture (each its own part of every pair's records)

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
        if self.world > 1 and (self.spans < self.world).any():
            small = int(np.argmin(self.spans))
            raise ValueError(f"source {self.pairs[small][1]!r} has {self.spans[small]} train records, fewer than the "
                             f"{self.world} ranks that each read a part of it")
        self._drawn = (0, 0, np.zeros(len(self.pairs), dtype=np.int64))   # (megabatch, size, draws of each pair before it)
        self._orders = {}   # pair -> (epoch, its permutation of the pair's records)

    def _probs(self, names) -> np.ndarray:
        p = np.array([w if n in names else 0.0 for n, w in zip(self.names, self.weights.values())], dtype=np.float64)
        return p / p.sum()

    def megabatch(self, index: int, size: int, skipped: list | None = None) -> list:
        """Megabatch `index`; bad records skipped on the way are added to `skipped` as (source, message)."""
        rng = np.random.default_rng([self.seed, self.rank, index, 17])
        picked = self.pick(rng, index, size)
        records = rng.integers(0, self.spans[picked])
        if self.world > 1:
            records = self.sharded_records(index, size, picked)
        examples = [self.draw(int(p), int(r), rng, (index, position), skipped)
                    for position, (p, r) in enumerate(zip(picked, records))]
        for position, example in enumerate(examples if index >= self.first_until else ()):
            # an rng of its own, so the examples stay as they were; not in the spatial-first stage
            self.augment(example, np.random.default_rng([self.seed, self.rank, index, 23, position]))
        return examples

    def pick(self, rng, index: int, size: int) -> np.ndarray:
        """The pair of each example of megabatch `index` (the stage's weights)."""
        probs = self.first_probs if index < self.first_until else self.probs
        return rng.choice(len(self.pairs), size=size, p=probs)

    def sharded_records(self, index: int, size: int, picked: np.ndarray) -> np.ndarray:
        """Each example's record when ranks share the records: the k-th draw of a pair on this rank reads
        the k-th record of the rank's part of that pair's records, epoch after epoch."""
        before = self.draws_before(index, size)
        out = np.empty(len(picked), dtype=np.int64)
        for position, pair in enumerate(picked):
            out[position] = self.record_of(int(pair), int(before[pair]))
            before[pair] += 1
        return out

    def draws_before(self, index: int, size: int) -> np.ndarray:
        """How many times this rank drew each pair in megabatches 0..index-1 (their picks replayed once,
        then carried on from the last megabatch asked)."""
        at, at_size, counts = self._drawn
        if index < at or size != at_size:
            at, counts = 0, np.zeros(len(self.pairs), dtype=np.int64)
        counts = counts.copy()
        for earlier in range(at, index):
            picks = self.pick(np.random.default_rng([self.seed, self.rank, earlier, 17]), earlier, size)
            counts += np.bincount(picks, minlength=len(self.pairs))
        self._drawn = (index, size, counts)
        return counts.copy()

    def record_of(self, pair: int, draw: int) -> int:
        """This rank's `draw`-th record of `pair`: its epoch's permutation of the pair's records, every
        world-th from this rank's place."""
        span = int(self.spans[pair])
        epoch, within = divmod(draw, len(range(self.rank, span, self.world)))
        cached = self._orders.get(pair)
        if cached is None or cached[0] != epoch:
            cached = self._orders[pair] = (epoch, np.random.default_rng([self.seed, pair, epoch, 31]).permutation(span))
        return int(cached[1][self.rank + within * self.world])

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



"""Training the tokenizers before the model, as a tokenizer config says (configs/tokenizers/*.yaml).

Each configured tokenizer plugin builds itself from a corpus (the texts and image-like targets of
the mixture's (task, source) pairs): sentencepiece on texts, the VQ-VAE on images, coordinate bins
from their options alone. `ensure_modalities` loads them from a cache folder or builds and saves
them there, so one `train_mixture.py` command works on a fresh machine and the next run starts at once.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import yaml

from unio.data.bad_records import BadRecords
from unio.data.mixture import DEFAULT_SOURCE
from unio.data.records import make_example
from unio.kit.images import image_tensor
from unio.modalities import Modalities
from unio.plugins import builtin_dir
from unio.registries import TASKS, TOKENIZERS
from unio.task_set import TaskSet


def cache_root() -> Path:
    return Path(os.environ.get("UNIO_CACHE", Path.home() / ".cache" / "unio"))


def load_tokenizer_config(name: str | Path = "default", **overrides) -> dict:
    """A tokenizer config (a name under configs/tokenizers/ or a YAML path); each override replaces
    that option in every tokenizer that has it (e.g. steps=20, num_bins=32)."""
    path = Path(name) if str(name).endswith((".yaml", ".yml")) else builtin_dir("configs") / "tokenizers" / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer config {path}; configs: "
                                f"{', '.join(p.stem for p in path.parent.glob('*.yaml'))}")
    config = yaml.safe_load(path.read_text())
    for options in config["tokenizers"].values():
        options.update({k: v for k, v in overrides.items() if k in options and v is not None})
    return config


class Corpus:
    """What tokenizers learn from: examples of (task, source) pairs from each source's train split.
    With `bad` skipping, a bad record gives no example (None) and is noted there. `tasks`: the run's
    TaskSet (its task options; default: the registered tasks)."""

    def __init__(self, pairs, sources, resolution: int, texts_per_pair: int = 1000, bad: BadRecords | None = None,
                 tasks: TaskSet | None = None):
        self.pairs, self.sources, self.resolution = list(pairs), sources, resolution
        self.texts_per_pair, self.bad, self.tasks = texts_per_pair, bad or BadRecords(), tasks or TaskSet()

    def _example(self, pair, index: int, seed: int = 0):
        task, source = self.tasks.get(pair[0]), self.sources[pair[1]]
        records = self.bad.open_split(source, pair[1], "train")
        rng = np.random.default_rng([seed, sum(task.name.encode()), index])
        return self.bad.attempt(pair[1], lambda: make_example(task, records[index % len(records)], self.resolution,
                                                              rng, keep_record=False))

    def texts(self):
        for pair in self.pairs:
            task = self.tasks.get(pair[0])
            yield from (p.replace("{}", "").strip() for p in task.prompts)
            for index in range(min(self.texts_per_pair, len(self.sources[pair[1]].split("train")))):
                example = self._example(pair, index)
                if example is not None:
                    yield from task.training_texts(example)

    def image_kinds(self) -> set:
        """The kinds of image (rgb, depth, mask) the corpus's tasks answer with."""
        return {kind for task, _ in self.pairs if (kind := image_kind(self.tasks.get(task))) is not None}

    def images(self, start: int = 0, kind: str | None = None):
        """An endless stream of image-like targets (of `kind` alone when given; RGB input images when no
        task answers with any, or with none of an rgb `kind`)."""
        index, misses = start, 0
        pairs = [p for p in self.pairs if kind is None or image_kind(self.tasks.get(p[0])) == kind]
        if kind not in (None, "rgb") and not pairs:
            raise ValueError(f"no task of the tokenizer corpus answers with {kind} images; its pairs: {self.pairs}")
        while True:
            found = False
            for pair in pairs:
                example = self._example(pair, index)
                for image in self.tasks.get(pair[0]).training_images(example) if example is not None else ():
                    found = True
                    yield image
            examples = (self._example(pair, index) for pair in self.pairs)   # the first with an image (text pairs have none)
            first = None if found else next((ex for ex in examples if ex is not None and ex.image is not None), None)
            if first is not None:
                yield image_tensor(first.image)
            misses = 0 if found or first is not None else misses + 1
            if misses >= 1000:
                raise ValueError(f"1000 records in a row were bad in the train splits of {self.pairs}; nothing to "
                                 "train the tokenizers on")
            index += 1


def image_kind(task) -> str | None:
    """The kind of image a task answers with (its ImageCodes' `kind`), None for tasks answering no image."""
    codes = getattr(task, "codes", None)
    return getattr(codes, "kind", None)


def world_corpus(task_names, resolution: int, texts_per_pair: int = 1000) -> Corpus:
    """A corpus of these tasks on the embedded world (the scripts that train one tokenizer use it)."""
    from unio.data.sources import build_source
    world = build_source(DEFAULT_SOURCE, None, resolution)
    return Corpus([(t, DEFAULT_SOURCE) for t in task_names], {DEFAULT_SOURCE: world}, resolution, texts_per_pair)


def corpus_pairs(pairs, config: dict) -> list:
    """The mixture's pairs and the config's corpus tasks on the world, sorted by task."""
    extra = [(t, DEFAULT_SOURCE) for t in config.get("corpus_tasks", ()) if t in TASKS]
    return sorted(dict.fromkeys([*pairs, *extra]))


def corpus_for(corpus: Corpus, tasks) -> Corpus:
    """The corpus narrowed to the pairs of `tasks` (a tokenizer's `learn_from` option; None: all of it)."""
    if tasks is None:
        return corpus
    pairs = [p for p in corpus.pairs if p[0] in tasks]
    if not pairs:
        raise ValueError(f"learn_from {list(tasks)} names no task of the tokenizer corpus; its pairs: {corpus.pairs}")
    return Corpus(pairs, corpus.sources, corpus.resolution, corpus.texts_per_pair, corpus.bad, corpus.tasks)


def train_modalities(config: dict, corpus: Corpus, directory: Path, progress: bool = True) -> Modalities:
    """Each configured tokenizer built from the corpus (or, with `learn_from: [task, ...]`, from those
    tasks' pairs alone). An entry names its plugin under `plugin` (default: the entry's own name), so one
    plugin may give several tokenizers: a codebook per `modality` of image, each built only when a task
    of the corpus answers with that kind of image."""
    tokenizers, plugins = {}, {}
    for name, options in config["tokenizers"].items():
        options = dict(options)
        plugins[name] = options.pop("plugin", name)
        plugin = TOKENIZERS.get(plugins[name])
        source = corpus_for(corpus, options.pop("learn_from", None))
        if options.get("modality") is not None and options["modality"] not in source.image_kinds():
            continue
        if "progress" in inspect.signature(plugin.build).parameters:
            options = {**options, "progress": progress}
        tokenizers[name] = plugin.build(source, directory / name, **options)
    return Modalities(tokenizers, plugins)


def cache_folder(pairs, config: dict, resolution: int, source_specs: dict | None = None,
                 tasks: TaskSet | None = None) -> Path:
    """The cache folder of the tokenizers a mixture's pairs are trained with (built or not). corpus_pairs of
    corpus_pairs is the same list, so `pairs` may be either."""
    return cache_root() / cache_name(corpus_pairs(pairs, config), config, resolution, source_specs or {}, tasks)


def cache_name(pairs, config: dict, resolution: int, source_specs: dict, tasks: TaskSet | None = None) -> str:
    """Runs with the same tokenizer config and corpus share their cached tokenizers. A task whose options
    change what its examples give the tokenizers says so in its `tokenizer_signature` (None: nothing)."""
    parts = [config, [list(p) for p in pairs], {s: str(source_specs.get(s)) for _, s in pairs}]
    tasks = tasks or TaskSet()
    signatures = {t: s for t, _ in pairs if (s := getattr(tasks.get(t), "tokenizer_signature", None)) is not None}
    key = json.dumps(parts + ([signatures] if signatures else []), sort_keys=True, default=str)
    return f"tokenizers-r{resolution}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def ensure_modalities(pairs, sources, resolution: int = 64, config: dict | None = None, directory: Path | None = None,
                      progress: bool = True, source_specs: dict | None = None,
                      bad: BadRecords | None = None, tasks: TaskSet | None = None) -> Modalities:
    """Load the tokenizers from `directory` (default: the cache), or build and save them there (from
    the sources' train splits, the examples of `tasks`, the run's TaskSet; `bad` says whether bad records
    are skipped there)."""
    config = config or load_tokenizer_config()
    pairs = corpus_pairs(pairs, config)
    directory = Path(directory or cache_folder(pairs, config, resolution, source_specs, tasks))
    if (directory / "vocab.json").is_file():
        return Modalities.load(directory)
    with building(directory):
        if (directory / "vocab.json").is_file():   # another process built them while this one waited
            return Modalities.load(directory)
        build_modalities_into(directory, pairs, sources, resolution, config, progress, bad, tasks)
    return Modalities.load(directory)


@contextmanager
def building(directory: Path):
    """One process at a time builds a tokenizer folder (a lock file beside it): runs started together
    (the default command twice) share one cache, the others waiting for it."""
    from filelock import FileLock, Timeout
    directory.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory.with_name(directory.name + ".lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting for another process building the tokenizers in {directory} (lock {lock.lock_file})", flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def build_modalities_into(directory: Path, pairs, sources, resolution: int, config: dict, progress: bool,
                          bad: BadRecords | None, tasks: TaskSet | None) -> None:
    """Train the tokenizers in `directory`.tmp and rename it into place."""
    print(f"training the tokenizers into {directory} (once; later runs with these tasks and sources load them)",
          flush=True)
    missing = {s for _, s in pairs} - set(sources)
    if missing:
        from unio.data.sources import build_source
        sources = {**sources, **{s: build_source(s, None, resolution) for s in missing}}
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    corpus = Corpus(pairs, sources, resolution, config.get("texts_per_pair", 1000), bad, tasks)
    train_modalities(config, corpus, tmp / "build", progress).save(tmp)
    shutil.rmtree(tmp / "build", ignore_errors=True)
    if directory.exists():
        shutil.rmtree(directory)
    tmp.replace(directory)

"""Evaluating models and baselines on a split of a source, (task, source) pair by pair.

Predictions are mapped back to each original image (the task's `to_original`) before the task's
metrics compare them with the gold answers, so figures are in original pixels on every source.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
from tqdm import tqdm

from unio.data.bad_records import BadRecords
from unio.data.mixture import pair_name
from unio.data.photometric import perturb
from unio.data.records import make_example
from unio.infer.pipeline import generate_answers
from unio.task import to_original
from unio.task_set import TaskSet

ROLES = ("train", "validation", "test")   # what every source answers to (a reader maps them onto its files)


def split_examples(task, source, split: str, n: int, resolution: int, seed: int = 0,
                   perturbation: str | None = None, bad: BadRecords | None = None, name: str | None = None,
                   kept: dict | None = None) -> list:
    """Example i comes from record i of the split, with its own deterministic rng; `perturbation`
    (unio/data/photometric.py) changes each image the model sees, not its answers. With `bad` skipping,
    bad records (of source `name`) are skipped and noted there: the first n good records are read.
    `kept` ({index: record} of this source and split): records read once and kept there, for several tasks."""
    bad, name = bad or BadRecords(), name or getattr(source, "name", type(source).__name__)
    records = bad.open_split(source, name, split)
    read = records.__getitem__ if kept is None else (lambda i: _kept_record(kept, records, i))
    salt = sum(task.name.encode())
    examples = []
    for i in range(len(records)):
        if len(examples) >= n:
            break
        example = bad.attempt(name, lambda: make_example(task, read(i), resolution,
                                                         np.random.default_rng([seed, salt, i])))
        if example is not None:
            examples.append(example)
    for i, example in enumerate(examples if perturbation else ()):
        example.image = perturb(example.image, perturbation, np.random.default_rng([seed, salt, i, 31]),
                                example.frame.content)
    return examples


def _kept_record(kept: dict, records, index: int):
    if index not in kept:           # a bad record raises here each time it is read, as without keeping
        kept[index] = records[index]
    return kept[index]


def predict(model, modalities, task, examples, batch_size: int = 64, progress: bool = False, **options) -> list:
    """Decoding under the task's grammar, then the task's detokenizer: predictions in the model's frame."""
    predictions = []
    for i in tqdm(range(0, len(examples), batch_size), desc=f"predict {task.name}", disable=not progress):
        predictions += [a.prediction for a in generate_answers(model, modalities, task, examples[i:i + batch_size], **options)]
    return predictions


def score(task, predictions, examples) -> dict:
    """The task's metrics, on predictions mapped back to the original images."""
    return task.evaluate([to_original(task, p, ex.frame) for p, ex in zip(predictions, examples)], examples)


def evaluation_split(source, split: str, name: str | None = None) -> str:
    """`split` if the source has it (any of its splits: RefCOCO's testA ...); a role (train, validation,
    test) it lacks falls back on its test, validation or train split, in that order."""
    names = source.splits()
    if split in names:
        return split
    fallback = next((s for s in ("test", "validation", "train") if s in names), None) if split in ROLES else None
    if fallback is None:
        raise KeyError(f"source {name or getattr(source, 'name', '?')!r} has no split {split!r}"
                       f"{' and none to fall back on' if split in ROLES else ''}; its splits: {', '.join(names)}")
    return fallback


def evaluate_model(model, modalities, pairs, sources, split: str = "test", n: int = 200, progress: bool = False,
                   perturbation: str | None = None, bad: BadRecords | None = None, tasks: TaskSet | None = None,
                   guidance_scale: float | None = None, seed: int | None = None) -> dict:
    """{pair name: metrics} for `pairs` [(task, source)] over `sources` {name: source object};
    `bad`: whether bad records are skipped (and where they are counted); `tasks`: the TaskSet whose tasks
    answer (default: the model's tasks, with the options it was trained with); `guidance_scale`: classifier-free
    guidance for the tasks that take it (an unconditional prompt: generate, inpaint, map_to_image), greedy
    decoding for the others and by default; `seed`: the first seed of sampled answers (a pooled task's samples)."""
    tasks = tasks or TaskSet(model.config.task_options, known_only=True)
    results = {}
    for task_name, source_name in pairs:
        task, source = tasks.get(task_name), sources[source_name]
        examples = split_examples(task, source, evaluation_split(source, split, source_name), n,
                                  model.config.image_size, perturbation=perturbation, bad=bad, name=source_name)
        options = {"guidance_scale": guidance_scale} if guidance_scale is not None and hasattr(task, "unconditional") else {}
        options.update({"seed": seed} if seed is not None else {})
        results[pair_name(task_name, source_name)] = score(task, predict(model, modalities, task, examples,
                                                                         progress=progress, **options), examples)
    return results


def evaluate_baselines(modalities, pairs, sources, split: str = "test", n: int = 200, resolution: int = 64,
                       n_train: int = 2000, only: str = "all", bad: BadRecords | None = None,
                       tasks: TaskSet | None = None) -> dict:
    """{pair name: {baseline: metrics}}; each baseline is fitted on the train split, scored on `split`;
    `tasks`: a TaskSet (default: the registered tasks). Each source's train records are read once for all
    its tasks (the world renders a scene once, not once a task)."""
    tasks = tasks or TaskSet()
    results, train_records = {}, defaultdict(dict)
    for task_name, source_name in pairs:
        task, source = tasks.get(task_name), sources[source_name]
        train = split_examples(task, source, "train", n_train, resolution, bad=bad, name=source_name,
                               kept=train_records[source_name])
        examples = split_examples(task, source, evaluation_split(source, split, source_name), n, resolution,
                                  bad=bad, name=source_name)
        results[pair_name(task_name, source_name)] = {
            name: score(task, _baseline_predictions(make, train, modalities, examples), examples)
            for name, make in task.baselines().items() if only in ("all", name)}
    return results


def _baseline_predictions(make, train, modalities, examples) -> list:
    predictor = make(train, modalities)
    return [predictor(ex) for ex in examples]


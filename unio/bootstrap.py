"""Training the tokenizers before the model: sentencepiece on task texts, the VQ-VAE on image targets.

`ensure_modalities` loads them from a cache folder or trains and saves them there, so one
`train_mixture.py` command works on a fresh machine and the next run starts at once.
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from unio.modalities import Modalities
from unio.registries import TASKS, TOKENIZERS
from unio.world import World


def cache_root() -> Path:
    return Path(os.environ.get("UNIO_CACHE", Path.home() / ".cache" / "unio"))


def world_examples(task, split: str, start: int, stop: int, resolution: int, seed: int = 0):
    """Example i of `task` comes from scene i of `split`, with its own deterministic rng."""
    world = World(split, resolution=resolution)
    salt = sum(task.name.encode())
    for index in range(start, stop):
        yield task.example(world[index], np.random.default_rng([seed, salt, index]))


def task_texts(task_names, n_scenes: int, resolution: int):
    for name in task_names:
        task = TASKS.get(name)
        yield from (p.replace("{}", "").strip() for p in task.prompts)
        for example in world_examples(task, "train", 0, n_scenes, resolution):
            yield from task.training_texts(example)


def task_images(task_names, resolution: int, start: int = 0):
    """An endless stream of image-like targets from the tasks (RGB scenes when no task has any)."""
    tasks = [TASKS.get(n) for n in task_names]
    index = start
    while True:
        found = False
        for task in tasks:
            ex = next(world_examples(task, "train", index, index + 1, resolution))
            for image in task.training_images(ex):
                found = True
                yield image
        if not found:
            from unio.task import image_tensor
            yield image_tensor(World("train", resolution=resolution)[index].image)
        index += 1


def train_text(task_names, out_dir: Path, resolution: int, vocab_size: int = 1000, n_scenes: int = 1000):
    return TOKENIZERS.get("text").train(task_texts(task_names, n_scenes, resolution), out_dir, vocab_size=vocab_size)


def train_vq(task_names, resolution: int, steps: int = 600, batch_size: int = 32, progress: bool = True, **vq_args):
    import sys
    vq_cls = TOKENIZERS.get("vq")
    module = sys.modules[vq_cls.__module__]  # the plugin's own training loop
    return module.train_vq(vq_cls(**vq_args), task_images(task_names, resolution), steps=steps,
                           batch_size=batch_size, progress=progress)


CORE_TASKS = ("vqa", "caption", "refexp", "depth")   # their texts and images are always in the tokenizers


def cache_name(task_names, resolution: int, num_bins: int) -> str:
    """Cached tokenizers are shared by runs whose tasks add nothing beyond the core four."""
    extra = sorted(set(task_names) - set(CORE_TASKS))
    return f"tokenizers-r{resolution}-b{num_bins}" + ("-" + "+".join(extra) if extra else "")


def ensure_modalities(task_names, resolution: int = 64, num_bins: int = 64, directory: Path | None = None,
                      vq_steps: int = 600, text_vocab: int = 1000, progress: bool = True) -> Modalities:
    """Load the tokenizers from `directory` (default: the cache), or train and save them there."""
    directory = Path(directory or cache_root() / cache_name(task_names, resolution, num_bins))
    if (directory / "vocab.json").is_file():
        return Modalities.load(directory)
    all_tasks = sorted(set(task_names) | set(CORE_TASKS) & set(TASKS.names()))
    tmp = directory.with_name(directory.name + ".tmp")
    text = train_text(all_tasks, tmp / "text_build", resolution, vocab_size=text_vocab)
    # an 8x8 code grid at 64 px and 16x16 at 256 px (Unified-IO's), so depth answers stay short
    vq = train_vq(all_tasks, resolution, steps=vq_steps, progress=progress, downsample=max(8, resolution // 16))
    modalities = Modalities({"text": text, "coordinates": TOKENIZERS.get("coordinates")(num_bins=num_bins), "vq": vq})
    modalities.save(tmp)
    import shutil
    shutil.rmtree(tmp / "text_build", ignore_errors=True)
    if directory.exists():
        shutil.rmtree(directory)
    tmp.replace(directory)
    return Modalities.load(directory)

"""unio.run: prompt-style inference that returns typed results.

    import unio
    result = unio.run("What is the depth map of the image?", "scene.png")
    result.depth            # metres, the original image's size
    result.save("depth.png")
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from unio.grammar import Grammar, Segment
from unio.images import Frame, to_rgb_array
from unio.pipeline import generate_answers
from unio.registries import TASKS
from unio.task import Example, to_original


@dataclass
class Result:
    """A typed answer in the original image's pixels. A task fills the fields of its output kind;
    a plugin's new kind lands in `extras` and reads as an attribute all the same."""
    task: str | None
    prompt: str
    image: np.ndarray = field(repr=False)       # the original image, (H, W, 3) uint8
    tokens: list = field(default_factory=list)
    score: float | None = None
    text: str | None = None
    boxes: list | None = None                   # [[x1, y1, x2, y2]] in original pixels
    labels: list | None = None                  # one per box, where the task names them
    scores: list | None = None                  # one per box, where the task scores them
    depth: np.ndarray | None = field(default=None, repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)
    keypoints: list | None = None
    generated_image: np.ndarray | None = field(default=None, repr=False)
    extras: dict = field(default_factory=dict, repr=False)

    def __getattr__(self, name: str):
        extras = self.__dict__.get("extras", {})
        if name in extras:
            return extras[name]
        raise AttributeError(f"Result has no field {name!r}")

    def fill(self, fields: dict) -> None:
        known = {f.name for f in dataclasses.fields(self)}
        for key, value in fields.items():
            if key in known:
                setattr(self, key, value)
            else:
                self.extras[key] = value

    def draw(self):
        """The result rendered onto (or beside) its image, as a PIL image (the task's own drawing if it has one)."""
        task = TASKS.get(self.task) if self.task and self.task in TASKS else None
        if task is not None and hasattr(task, "draw"):
            return task.draw(self)
        from unio.drawing import draw_result
        return draw_result(self)

    def save(self, path: str | Path) -> Path:
        self.draw().save(path)
        return Path(path)


class FreeText:
    """Decoding when no task is recognised: text of the prompt tokenizer, up to the model's target length."""
    name = None

    def __init__(self, max_length: int):
        self.max_length = max_length

    def grammar(self, mods, image_size: int) -> Grammar:
        return Grammar((Segment(mods.prompt_name, 0, self.max_length),))

    def decode(self, ids, mods, example=None) -> str:
        return mods.text_from_ids(ids).strip()

    def to_result(self, prediction: str) -> dict:
        return dict(text=prediction)


class Runner:
    """A loaded model with its tokenizers; `runner(prompts, images)` runs a batch."""

    def __init__(self, model, modalities, path: Path | None = None):
        self.model, self.mods, self.path = model.eval(), modalities, path

    def recognise(self, prompt: str) -> str | None:
        best, best_literal = None, -1
        for name in TASKS.names():
            for template in TASKS.get(name).prompts:
                literal = len(template.replace("{}", ""))
                pattern = "^" + re.escape(template).replace(r"\{\}", "(.+)") + "$"
                if literal == 0 and not prompt.rstrip().endswith("?"):
                    continue  # a bare '{}' template (a question-answering task) takes questions only
                if re.match(pattern, prompt.strip(), flags=re.I | re.S) and literal > best_literal:
                    best, best_literal = name, literal
        return best

    def __call__(self, prompts, images, task: str | None = None, **options) -> list:
        if len(prompts) != len(images):
            raise ValueError(f"{len(prompts)} prompts but {len(images)} images; pass one image per prompt")
        jobs = [self._job(prompt, image, task) for prompt, image in zip(prompts, images)]
        results: list = [None] * len(jobs)
        for name in dict.fromkeys(job.task for job in jobs):
            idx = [i for i, job in enumerate(jobs) if job.task == name]
            for i, result in zip(idx, self._run_group(name, [jobs[i] for i in idx], **options)):
                results[i] = result
        return results

    def _job(self, prompt, image, task: str | None) -> "Example":
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("the prompt is empty; ask something, e.g. 'What does the image describe?'")
        original = to_rgb_array(image)
        frame = Frame(original.shape[0], original.shape[1], self.model.config.image_size)
        name = task or self.recognise(prompt)
        if name is not None and name not in TASKS:
            TASKS.get(name)  # raises with the list of tasks
        return Example(name, frame.to_model(original), prompt, None, frame=frame, record={"image": original})

    def _run_group(self, name, examples, **options) -> list:
        task = TASKS.get(name) if name else FreeText(self.model.config.max_target_length)
        answers = generate_answers(self.model, self.mods, task, examples, **options)
        return [self._result(task, ex, answer) for ex, answer in zip(examples, answers)]

    def _result(self, task, example, answer) -> Result:
        result = Result(task.name, example.prompt, example.record["image"], tokens=answer.ids, score=answer.score)
        prediction = to_original(task, answer.prediction, example.frame)
        result.fill(task.to_result(prediction) if hasattr(task, "to_result") else {task.output: prediction})
        return result


# -- the default model ---------------------------------------------------------------------
_default: Runner | None = None


def newest_run(root: Path = Path("runs")) -> Path | None:
    models = sorted(root.glob("*/model/config.json"), key=lambda p: p.stat().st_mtime)
    return models[-1].parent if models else None


def load(path: str | Path | None = None, compile: bool = False) -> Runner:
    """Load a trained model (a run folder or its model/ folder) and make it the default for unio.run.
    `compile`: generation on a static KV cache with a compiled decoding step (UnioModel.compile_generation),
    worth its compile time (~10 s per new batch size or task) for many batched calls."""
    global _default
    from unio.modalities import Modalities
    from unio.model import UnioModel
    path = Path(path or os.environ.get("UNIO_MODEL") or newest_run() or "")
    if path == Path("") or not path.exists():
        raise FileNotFoundError(
            "no trained unio model found (looked at UNIO_MODEL and runs/*/model); train one with "
            "`python scripts/train_mixture.py --tasks vqa,caption,refexp,depth` or pass unio.load(PATH)")
    if (path / "model" / "config.json").is_file():
        path = path / "model"
    model = UnioModel.from_pretrained(path)
    if compile:
        model.compile_generation()
    _default = Runner(model, Modalities.load(path / "tokenizers"), path)
    return _default


def run(prompt, image, *, model: Runner | str | Path | None = None, task: str | None = None, **options):
    """Answer `prompt` about `image` (or lists of both, run as one batch) with a typed Result."""
    runner = model if isinstance(model, Runner) else (load(model) if model else (_default or load()))
    if isinstance(prompt, (list, tuple)):
        if not isinstance(image, (list, tuple)):
            raise TypeError("with a list of prompts, pass a list of images of the same length")
        return runner(list(prompt), list(image), task=task, **options)
    return runner([prompt], [image], task=task, **options)[0]


def task_helper(name: str):
    """`unio.<task>(image, *slots, **options)`: the task's first prompt, its slots filled, run as that task."""
    task = TASKS.get(name)

    def helper(image, *slots, **options) -> Result:
        return run(task.prompts[0].format(*slots), image, task=name, **options)
    helper.__name__, helper.__doc__ = name, f"Run the {name!r} task: {task.prompts[0]!r}."
    return helper

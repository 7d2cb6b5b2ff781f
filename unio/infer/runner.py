"""unio.run: prompt-style inference that returns typed results.

    import unio
    result = unio.run("What is the depth map of the image?", "scene.png")
    result.depth            # metres, the original image's size
    result.save("depth.png")
"""
from __future__ import annotations

import dataclasses
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unio.infer.pipeline import generate_answers
from unio.infer.processor import UnioProcessor, recognise
from unio.registries import TASKS
from unio.task import Example


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
        from unio.kit.drawing import draw_result
        return draw_result(self)

    def save(self, path: str | Path) -> Path:
        self.draw().save(path)
        return Path(path)

    def summary(self) -> dict:
        """The filled fields as JSON: arrays by shape and range, the rest as they are."""
        skip = {"image", "tokens", "extras"}
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}
        out = {}
        for key, value in {**fields, **self.extras}.items():
            if isinstance(value, np.ndarray):
                out[key] = {"shape": list(value.shape), "min": float(value.min()), "max": float(value.max())}
            elif value is not None:
                out[key] = value if isinstance(value, (str, int, float, list, dict)) else repr(value)
        return out

    def answer_text(self) -> str:
        """The answer as one string: the text where the task answers in text, else the answer's fields as
        JSON (boxes in the image's pixels, arrays by shape and range), as transformers' pipelines return it."""
        if self.text is not None:
            return self.text
        fields = {k: v for k, v in self.summary().items() if k not in ("task", "prompt", "score")}
        return json.dumps(fields, default=lambda v: v.tolist() if isinstance(v, (np.ndarray, np.generic)) else repr(v))


class Runner:
    """A loaded model with its processor (UnioProcessor: prompts and images in, answers out);
    `runner(prompts, images)` runs a batch."""

    def __init__(self, model, modalities, path: Path | None = None, task_options: dict | None = None,
                 processor: UnioProcessor | None = None):
        """`task_options` ({task: {option: value}}) change how this runner's tasks answer (e.g. find_all
        through detection), over the options the model was trained with; the model and other runners keep theirs.
        `processor`: one already made for this model (default: made from its config)."""
        self.model, self.mods, self.path = model.eval(), modalities, path
        self.processor = processor or UnioProcessor.for_model(model.config, modalities, task_options)
        self.tasks = self.processor.tasks
        self._lock = threading.Lock()   # one generate() at a time: a compiled static cache is shared state

    def recognise(self, prompt: str) -> str | None:
        """The task whose prompt template (or alias) the prompt matches, the most specific one first."""
        return recognise(prompt)

    def __call__(self, prompts, images, task: str | None = None, regions=None, **options) -> list:
        return self.answer(self.processor.examples(prompts, images, task, regions), **options)

    def answer(self, jobs: list, **options) -> list:
        """Examples made by this runner's processor -> their Results, one generate() per task."""
        results: list = [None] * len(jobs)
        for name in dict.fromkeys(job.task for job in jobs):
            idx = [i for i, job in enumerate(jobs) if job.task == name]
            for i, result in zip(idx, self._run_group(name, [jobs[i] for i in idx], **options)):
                results[i] = result
        return results

    def _job(self, prompt, image, task: str | None, region=None) -> Example:
        return self.processor.example(prompt, image, task, region)

    def _run_group(self, name, examples, **options) -> list:
        task = self.processor.task(name)
        with self._lock:
            answers = generate_answers(self.model, self.mods, task, examples, self.tasks, **options)
        return [self._result(task, ex, answer) for ex, answer in zip(examples, answers)]

    def _result(self, task, example, answer) -> Result:
        result = Result(task.name, example.record["prompt"], example.record["image"], tokens=answer.ids,
                        score=answer.score)
        result.fill(self.processor.post_process(task, answer.prediction, example.frame))
        return result


# -- the default model ---------------------------------------------------------------------
_default: Runner | None = None
_loading = threading.Lock()


def newest_run(root: Path = Path("runs")) -> Path | None:
    models = sorted(root.glob("*/model/config.json"), key=lambda p: p.stat().st_mtime)
    return models[-1].parent if models else None


def load(path: str | Path | None = None, compile: bool = False) -> Runner:
    """Load a trained model (a run folder or its model/ folder) and make it the default for unio.run.
    `compile`: generation on a static KV cache with a compiled decoding step (UnioModel.compile_generation),
    worth its compile time (once per new batch size or task) for many batched calls."""
    global _default
    from unio.infer.model_folder import load_model_folder, model_folder
    named = ("the path given", path) if path is not None else ("UNIO_MODEL", os.environ.get("UNIO_MODEL"))
    if named[1] and not Path(named[1]).exists():
        raise FileNotFoundError(f"no model at {named[1]} ({named[0]}): the path does not exist; pass a run folder or "
                                f"its model/ folder, e.g. runs/NAME as train_mixture.py --out writes it")
    path = Path(path or os.environ.get("UNIO_MODEL") or newest_run() or "")
    if path == Path("") or not path.exists():
        raise FileNotFoundError(
            "no trained unio model found (looked at UNIO_MODEL and runs/*/model); train one with "
            "`python scripts/train_mixture.py --tasks vqa,caption,refexp,depth` or pass unio.load(PATH)")
    model, mods = load_model_folder(path)
    if compile:
        model.compile_generation()
    _default = Runner(model, mods, model_folder(path))
    return _default


def default_runner() -> Runner:
    """The default model, loaded once however many threads ask for it at the same time."""
    with _loading:
        return _default or load()


def run(prompt, image=None, *, model: Runner | str | Path | None = None, task: str | None = None, region=None,
        **options):
    """Answer `prompt` about `image` (or lists of both, run as one batch) with a typed Result.
    `region`: a box [x1, y1, x2, y2] in the image's pixels that the prompt asks about (a list of
    them, or of None, with lists of prompts; two boxes [[...], [...]] for a task asking about a pair); the
    model reads it as location tokens after the prompt. No image: a text-only task ("Premise: ... Hypothesis:
    ...") or one that makes an image. Safe to call from several threads: each call's generation runs alone."""
    runner = model if isinstance(model, Runner) else (load(model) if model else default_runner())
    if isinstance(prompt, (list, tuple)):
        image = [None] * len(prompt) if image is None else image
        if not isinstance(image, (list, tuple)):
            raise TypeError("with a list of prompts, pass a list of images of the same length")
        return runner(list(prompt), list(image), task=task, regions=region, **options)
    return runner([prompt], [image], task=task, regions=None if region is None else [region], **options)[0]


def task_helper(name: str):
    """`unio.<task>(image, *slots, **options)`: the task's first prompt, its slots filled, run as that task."""
    task = TASKS.get(name)
    if hasattr(task, "helper_call"):   # a task with its own calling convention (e.g. prompt-only generation)
        def custom(*args, **options):
            return task.helper_call(run, *args, **options)
        custom.__name__, custom.__doc__ = name, task.helper_call.__doc__
        return custom

    def helper(image, *slots, **options) -> Result:
        if not getattr(task, "reads_image", True) and isinstance(image, str):   # text only: every argument a slot
            image, slots = None, (image, *slots)
        fitting = [p for p in task.prompts if p.count("{}") == len(slots)]   # the first prompt with these slots
        return run((fitting or task.prompts)[0].format(*slots), image, task=name, **options)
    helper.__name__, helper.__doc__ = name, f"Run the {name!r} task: {task.prompts[0]!r}."
    return helper

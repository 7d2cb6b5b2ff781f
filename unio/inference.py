"""unio.run: prompt-style inference that returns typed results.

    import unio
    result = unio.run("What is the depth map of the image?", "scene.png")
    result.depth            # metres, the original image's size
    result.save("depth.png")
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unio.images import Frame, to_rgb_array
from unio.model.decoding import generate_constrained, strip_answer
from unio.registries import TASKS
from unio.task import Example, Grammar, Segment


@dataclass
class Result:
    task: str | None
    prompt: str
    image: np.ndarray = field(repr=False)       # the original image, (H, W, 3) uint8
    tokens: list = field(default_factory=list)
    score: float | None = None
    text: str | None = None
    boxes: list | None = None                   # [[x1, y1, x2, y2]] in original pixels
    depth: np.ndarray | None = field(default=None, repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)
    keypoints: list | None = None
    generated_image: np.ndarray | None = field(default=None, repr=False)

    def draw(self):
        """The result rendered onto (or beside) its image, as a PIL image."""
        from unio.drawing import draw_result
        return draw_result(self)

    def save(self, path: str | Path) -> Path:
        self.draw().save(path)
        return Path(path)


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
                    continue  # a bare '{}' template (vqa) takes questions only
                if re.match(pattern, prompt.strip(), flags=re.I | re.S) and literal > best_literal:
                    best, best_literal = name, literal
        return best

    def __call__(self, prompts, images, task: str | None = None, **options) -> list:
        if len(prompts) != len(images):
            raise ValueError(f"{len(prompts)} prompts but {len(images)} images; pass one image per prompt")
        size = self.model.config.image_size
        jobs = []
        for prompt, image in zip(prompts, images):
            if not isinstance(prompt, str) or not prompt.strip():
                raise ValueError("the prompt is empty; ask something, e.g. 'What does the image describe?'")
            original = to_rgb_array(image)
            frame = Frame(original.shape[0], original.shape[1], size)
            name = task or self.recognise(prompt)
            if name is not None and name not in TASKS:
                TASKS.get(name)  # raises with the list of tasks
            jobs.append((prompt, original, frame, name))
        results: list = [None] * len(jobs)
        for name in dict.fromkeys(j[3] for j in jobs):
            idx = [i for i, j in enumerate(jobs) if j[3] == name]
            for i, result in zip(idx, self._run_group(name, [jobs[i] for i in idx], **options)):
                results[i] = result
        return results

    @torch.no_grad()
    def _run_group(self, name, jobs, **options) -> list:
        from unio.data import Collator
        cfg = self.model.config
        examples = [Example(name or "free", frame.to_model(original), prompt, None) for prompt, original, frame, _ in jobs]
        collate = Collator({}, self.mods, cfg.max_text_length, cfg.max_target_length)
        input_ids, mask = collate.prompts(examples)
        from unio.task import image_tensor
        pixels = torch.stack([image_tensor(ex.image) for ex in examples])
        device = next(self.model.parameters()).device
        inputs = {"input_ids": input_ids.to(device), "attention_mask": mask.to(device), "pixel_values": pixels.to(device)}
        grammar = TASKS.get(name).grammar(self.mods, cfg.image_size) if name else self.free_grammar()
        options.setdefault("output_scores", True)
        options.setdefault("return_dict_in_generate", True)
        table = grammar.allowed(self.mods.vocab, limit=cfg.max_target_length + 1)
        out = self.model.generate(**inputs, logits_processor=_processors(table),
                                  max_new_tokens=options.pop("max_new_tokens", table.shape[0]),
                                  do_sample=options.pop("do_sample", False), pad_token_id=0, eos_token_id=1, **options)
        scores = _sequence_scores(out)
        return [self._result(name, job, ex, strip_answer(row[1:]), score)
                for job, ex, row, score in zip(jobs, examples, out.sequences.cpu(), scores)]

    def free_grammar(self) -> Grammar:
        """Anything: text, location or image tokens, up to the model's target length."""
        return Grammar((Segment("text", 0, self.model.config.max_target_length),))

    def _result(self, name, job, example, ids, score) -> Result:
        prompt, original, frame, _ = job
        result = Result(name, prompt, original, tokens=ids, score=score)
        if name is None:
            result.text = self.mods.text_from_ids(ids).strip()
            return result
        prediction = TASKS.get(name).decode(ids, self.mods, example)
        fill_result(result, TASKS.get(name).output, prediction, frame)
        return result


def fill_result(result: Result, output: str, prediction: Any, frame: Frame) -> None:
    """Put a task's prediction into the result's typed field, in the original image's frame."""
    if output == "text":
        result.text = prediction
    elif output == "box":
        result.boxes = [frame.box_to_original(prediction)]
    elif output == "boxes":
        result.boxes = [frame.box_to_original(b) for b in prediction]
    elif output == "depth":
        result.depth = frame.map_to_original(prediction)
    elif output == "mask":
        result.mask = frame.map_to_original(prediction.astype(np.float32)) > 0.5
    elif output == "keypoints":
        result.keypoints = [frame.point_to_original(p) for p in prediction]
    elif output == "image":
        result.generated_image = prediction
    else:
        result.text = str(prediction)


def _processors(table):
    from transformers import LogitsProcessorList
    from unio.model.decoding import GrammarLogitsProcessor
    return LogitsProcessorList([GrammarLogitsProcessor(table)])


def _sequence_scores(out) -> list:
    """Mean log-probability of the chosen tokens (greedy / sampling), or the beam score."""
    if getattr(out, "sequences_scores", None) is not None:
        return [float(s) for s in out.sequences_scores]
    if not getattr(out, "scores", None):
        return [None] * out.sequences.shape[0]
    logps = torch.stack([s.float().log_softmax(-1) for s in out.scores], 1)          # (B, L, V)
    chosen = out.sequences[:, 1:1 + logps.shape[1]].to(logps.device)
    picked = logps.gather(-1, chosen[..., None])[..., 0]
    valid = (chosen != 0) & torch.isfinite(picked)
    return [float((p * v).sum() / v.sum().clamp(min=1)) for p, v in zip(picked, valid)]


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


def caption(image, **options) -> Result:
    return run("What does the image describe?", image, task="caption", **options)


def vqa(image, question: str, **options) -> Result:
    return run(question, image, task="vqa", **options)


def refexp(image, expression: str, **options) -> Result:
    return run(f'Which region does the text "{expression}" describe?', image, task="refexp", **options)


def depth(image, **options) -> Result:
    return run("What is the depth map of the image?", image, task="depth", **options)

"""What tasks that generate an RGB image share: classifier-free guidance's null prompt, and the generated
image decoded and mapped back to the original image.

Unified-IO 2's recipe: in training a share of the examples (`null_fraction`) become the null prompt with no
image and no region; at inference `guidance_scale=a` decodes each example beside its null twin in one batch,
logp = (1 + a) logp(cond) - a logp(uncond) (unio.infer.pipeline.ClassifierFreeGuidance). Every image
generator of a model shares the one null prompt, so they share one unconditional distribution.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from unio.kit.answers import ImageAnswer
from unio.kit.image_codes import image_to_original

NULL_PROMPT = "Generate an image."      # the unconditional prompt of classifier-free guidance


def check_null_fraction(null_fraction: float) -> float:
    if not 0 <= null_fraction < 1:
        raise ValueError(f"null_fraction must be in [0, 1), got {null_fraction}")
    return float(null_fraction)


def check_guidance(guidance) -> float | tuple | None:
    """A task's `guidance` option: None (its answers decoded plainly unless the caller guides them), the
    classifier-free guidance scale they are decoded at when the caller names none (a finite number >= 0), or a
    list of such scales, the candidates one is chosen among on the validation split (unio.infer.choices: at the
    end of training, or by evaluate.py), returned as a tuple."""
    if isinstance(guidance, (list, tuple)):
        if not guidance:
            raise ValueError("guidance as a list names the candidate scales chosen among on validation; got none")
        return tuple(_scale(g) for g in guidance)
    return None if guidance is None else _scale(guidance)


def _scale(guidance) -> float:
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance) \
            or guidance < 0:
        raise ValueError(f"guidance is a classifier-free guidance scale, a finite number >= 0, a list of such scales "
                         f"to choose among on validation, or None (plain decoding); got {guidance!r}")
    return float(guidance)


class GeneratedImageAnswer(ImageAnswer):
    """Mixin for tasks whose answer is an RGB image they generate (`self.codes` an ImageCodes of RGB,
    `self.null_fraction` set): guidance's dropout and null twin, the decoded image in the model's frame and
    in the original's, and the null prompt among the texts the tokenizer learns from. `self.guidance`, the
    task option: the guidance scale its answers are decoded at where the caller names none (training's
    evaluation, evaluate.py, unio.run; unio.pipeline._generate_answers), None for plain decoding, or a tuple of
    candidate scales until one is chosen on validation (unio.infer.choices)."""
    output = "generated_image"
    null_prompt = NULL_PROMPT
    guidance = None
    photometric = ()                        # the answer is an image: no augmentation

    def for_training(self, example, rng):
        """Classifier-free guidance's dropout: a `null_fraction` of training examples become the null prompt
        alone (no image, no region)."""
        if rng.random() < self.null_fraction:
            example.prompt, example.image, example.region = self.null_prompt, None, None
        return example

    def unconditional(self, example):
        return dataclasses.replace(example, prompt=self.null_prompt, image=None, region=None, meta=dict(example.meta))

    def decode(self, ids, mods, example) -> np.ndarray:
        side = int(len(ids) ** 0.5)
        size = example.frame.size if example.frame is not None else mods[self.codes.tokenizer(mods)].downsample * side
        return self.codes.decode(ids, mods, size, size)

    def to_original(self, image, frame) -> np.ndarray:
        return image_to_original(image, frame)

    def to_result(self, image) -> dict:
        return {"generated_image": image}

    def training_texts(self, example) -> list:
        return [example.prompt, self.null_prompt]

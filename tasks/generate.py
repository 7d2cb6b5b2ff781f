"""Text to image: 'Generate an image of: {caption}' -> the image as a full grid of VQ-VAE codes.

The encoder reads the prompt alone (no image: `reads_image = False`; unio.data.mixture feeds no pixels, or
hides a blank image's patches in batches shared with tasks that read images). Classifier-free
guidance, Unified-IO 2's recipe (unio/kit/generation.py, shared with map_to_image): in training a fraction of the prompts (`null_fraction`, 10%) become
the null prompt; at inference `guidance_scale=a` decodes each prompt beside its null twin in one batch,
logp = (1 + a) logp(cond) - a logp(uncond) (unio.infer.pipeline.ClassifierFreeGuidance).

Metrics, with no downloaded network: the generated image read with the world's palette
(unio/data/world/palette.py): colour-set precision / recall / F1 against the objects asked for, object
count accuracy, left-to-right order. `unio.generate(prompt, n=4, guidance_scale=1, seed=0)`.
"""
from __future__ import annotations

import zlib

import numpy as np
from PIL import Image, ImageDraw

from unio.data.world.palette import palette_metrics
from unio.kit.answers import ImageCodes, baseline
from unio.kit.generation import GeneratedImageAnswer, check_guidance, check_null_fraction
from unio.registries import register_task
from unio.task import Example, choose_prompt, pick


@register_task
class Generate(GeneratedImageAnswer):     # null prompt, guidance's dropout, decoding: unio/kit/generation.py
    name, hub_task = "generate", "text-to-image"   # registry name; task type on the hub
    prompts = ["Generate an image of: {}", "Draw an image of: {}", "Make a picture of: {}"]
    requires = ("image", "captions")
    reads_image = False                     # the encoder reads the prompt alone
    headline, also_report = "color_f1", ("count_accuracy", "order_accuracy")
    report_samples = 4                      # the run's report draws this many samples of one prompt
    report_options = {"do_sample": True, "top_k": 50, "seed": 0, "guidance_scale": 1.0}
    sample_options = {"do_sample": True, "top_k": 50, "guidance_scale": 1.0}   # unio.generate's (best measured)

    def __init__(self, null_fraction: float = 0.1, guidance: float | list | None = None):
        self.null_fraction = check_null_fraction(null_fraction)
        self.guidance = check_guidance(guidance)   # the scale answers are decoded at unless the caller names one
        #                                           (a tuple: candidates, chosen on validation)
        self.codes = ImageCodes()

    def example(self, record, rng) -> Example:
        caption = pick(record["captions"], rng, record, "caption").strip()
        colours = [o.get("attributes", {}).get("color") for o in record.get("objects") or []]
        order = np.argsort([(o["box"][0] + o["box"][2]) / 2 for o in record.get("objects") or []], kind="stable")
        return Example(self.name, None, choose_prompt(self.prompts, rng, caption), np.asarray(record["image"]),
                       {"key": (record.get("id"), "rgb", np.asarray(record["image"]).shape[0]), "caption": caption,
                        "colours": [colours[i] for i in order] if all(colours) else None})

    def draw(self, result) -> Image.Image:
        """The generated image (beside the image of the record it came from, when there is one), prompt below."""
        generated = Image.fromarray(np.asarray(result.generated_image, np.uint8))
        panels = [generated] if result.image is None else [Image.fromarray(result.image).resize(generated.size), generated]
        canvas = Image.new("RGB", (sum(p.width for p in panels), generated.height + 14), "white")
        for i, panel in enumerate(panels):
            canvas.paste(panel, (i * generated.width, 0))
        ImageDraw.Draw(canvas).text((2, generated.height + 1), result.prompt[:60], fill=(0, 0, 0))
        return canvas

    def helper_call(self, run, prompt: str, n: int = 4, size=None, model=None, **options) -> list:
        """unio.generate(prompt, n=4, guidance_scale=1.0, seed=0, size=(width, height)): `n` images of
        `prompt` (a description, e.g. "a large red cube.") as Results (`.generated_image`), sampled
        (top-k 50, guidance 1.0, unless the options say otherwise) in one batch."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        canvas = None
        if size is not None:
            width, height = size
            canvas = np.zeros((int(height), int(width), 3), np.uint8)
        options = {**self.sample_options, **options}
        if not options.get("do_sample"):
            options = {k: v for k, v in options.items() if k not in ("top_k", "top_p", "temperature")}
        return run([self.prompts[0].format(prompt)] * n, [canvas] * n, model=model, task=self.name, **options)

    def evaluate(self, predictions, examples) -> dict:
        """Predictions in original pixels, read with the world's palette, against the objects asked for."""
        return palette_metrics(predictions, [ex.meta.get("colours") for ex in examples])

    def baselines(self):
        return {"mean_image": _MeanImage, "train_image": _TrainImage,
                "vq_ceiling": baseline(lambda example, mods: self.codes.round_trip(example.target, mods)),
                "gold": baseline(lambda example, mods: example.target)}   # the palette reader's own ceiling


class _MeanImage:
    """The mean training image, every time (a floor: it shows no object)."""

    def __init__(self, train_examples, mods=None):
        self.image = np.mean([ex.target for ex in train_examples], axis=0).round().astype(np.uint8)

    def __call__(self, example):
        return self.image


class _TrainImage:
    """Another scene's image: a training image picked by the example's index (chance level)."""

    def __init__(self, train_examples, mods=None):
        self.images = [ex.target for ex in train_examples]

    def __call__(self, example):
        return self.images[zlib.crc32(str(example.meta.get("caption")).encode()) % len(self.images)]

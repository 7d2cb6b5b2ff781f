"""Inpainting: the image with a region blanked + 'Fill in the region.' (the region as location tokens
after the prompt) -> the whole image as a full grid of VQ-VAE codes; the generated region is pasted back
into the original image at its original size, so every pixel outside the region stays as it was.

Training regions are boxes of whole code cells (1/4 to 1/2 of the image's side), anywhere in the image.
Metrics: PSNR and SSIM inside the region against the gold image; baselines: the region filled with the
mean colour of the rest of the image, and the gold through the VQ-VAE (the ceiling the codes allow).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from unio.kit.answers import ImageAnswer, ImageCodes, baseline
from unio.kit.image_codes import image_to_original
from unio.kit.image_metrics import blank, crop, paste, pixel_box, psnr, ssim
from unio.kit.images import to_rgb_array
from unio.registries import register_task
from unio.task import Example, choose_prompt

CELL = 8        # training regions are whole cells of this many pixels (the VQ-VAE's default downsampling)


@register_task
class Inpaint(ImageAnswer):
    name = "inpaint"
    hub_task = "image-to-image"
    output = "generated_image"
    prompts = ["Fill in the region.", "Complete the missing region.", "Inpaint the region."]
    region_prompts = prompts           # the region to fill is given as region=
    requires = ("image",)
    photometric = ()      # the answer is the image: no augmentation
    headline, also_report = "psnr", ("ssim",)

    def __init__(self):
        self.codes = ImageCodes()

    def example(self, record, rng) -> Example:
        image = np.asarray(record["image"], np.uint8)
        box = random_region(image.shape[0], image.shape[1], rng)
        return Example(self.name, blank(image, box), choose_prompt(self.prompts, rng), image,
                       {"key": (record.get("id"), "rgb", image.shape[0])}, region=box)

    def prepare(self, example) -> Example:
        """At inference (unio.run): blank the region the prompt asks to fill."""
        if example.region is None:
            raise ValueError("inpainting needs the region to fill: pass region=[x1, y1, x2, y2] in the image's pixels")
        example.image = blank(example.image, example.region)
        return example

    def decode(self, ids, mods, example) -> dict:
        size = example.image.shape[0]
        return self._prediction(self.codes.decode(ids, mods, size, size), example)

    @staticmethod
    def _prediction(image, example) -> dict:
        record = example.record or {}
        original = None if record.get("image") is None else to_rgb_array(record["image"])
        return {"image": image, "region": example.region, "original": original}

    def to_original(self, prediction, frame) -> dict:
        """{image: the generated region pasted into the original image (the whole generated image when
        the original is not known, e.g. from post_process_generation), region: the box in original pixels}."""
        generated = image_to_original(prediction["image"], frame)
        if prediction["original"] is None or prediction["region"] is None:
            return {"image": generated, "region": None}
        box = frame.box_to_original(prediction["region"])
        return {"image": paste(generated, prediction["original"], box), "region": box}

    def to_result(self, prediction) -> dict:
        return {"generated_image": prediction["image"], "region": prediction["region"]}

    def draw(self, result) -> Image.Image:
        """The input (its region blanked) beside the filled-in image."""
        filled = Image.fromarray(np.asarray(result.generated_image, np.uint8))
        shown = result.image if result.region is None else blank(result.image, result.region)
        base = Image.fromarray(shown).resize(filled.size) if result.image is not None else filled
        canvas = Image.new("RGB", (filled.width * 2, filled.height))
        canvas.paste(base, (0, 0))
        canvas.paste(filled, (filled.width, 0))
        return canvas

    def evaluate(self, predictions, examples) -> dict:
        """PSNR and SSIM inside the region (original pixels) against the gold image, and PSNR over the whole image."""
        inside_psnr, inside_ssim, whole = [], [], []
        for prediction, example in zip(predictions, examples):
            prediction = prediction["image"]
            gold = to_rgb_array(example.record["image"]) if example.record is not None else example.target
            box = example.frame.box_to_original(example.region) if example.frame is not None else example.region
            inside_psnr.append(psnr(crop(prediction, box), crop(gold, box)))
            inside_ssim.append(ssim(crop(prediction, box), crop(gold, box)))
            whole.append(psnr(prediction, gold))
        return {"psnr": float(np.mean(inside_psnr)), "ssim": float(np.mean(inside_ssim)),
                "psnr_image": float(np.mean(whole))}

    def baselines(self):
        # vq_ceiling: the gold through the codes and back, pasted into the region
        ceiling = baseline(lambda example, mods: self._prediction(self.codes.round_trip(example.target, mods), example))
        return {"mean_fill": baseline(mean_fill), "vq_ceiling": ceiling}


def random_region(height: int, width: int, rng) -> list:
    """A box of whole CELL-pixel cells, 1/4 to 1/2 of each side (at least one cell)."""
    rows, cols = max(1, height // CELL), max(1, width // CELL)
    h = int(rng.integers(max(1, rows // 4), max(1, rows // 2) + 1))
    w = int(rng.integers(max(1, cols // 4), max(1, cols // 2) + 1))
    y, x = int(rng.integers(0, rows - h + 1)), int(rng.integers(0, cols - w + 1))
    return [float(x * CELL), float(y * CELL), float((x + w) * CELL), float((y + h) * CELL)]


def mean_fill(example, mods=None) -> dict:
    """The region filled with the mean colour of the rest of the input image (a baseline)."""
    x1, y1, x2, y2 = pixel_box(example.region, *example.image.shape[:2])
    outside = np.ones(example.image.shape[:2], bool)
    outside[y1:y2, x1:x2] = False
    filled = np.array(example.image, copy=True)
    filled[y1:y2, x1:x2] = example.image[outside].mean(0).round().astype(np.uint8)
    return Inpaint._prediction(filled, example)

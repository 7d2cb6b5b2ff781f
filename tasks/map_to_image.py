"""Map to image: a class map or a depth map (the encoder's image) + 'Generate an image from the segment map.'
-> the scene's RGB image as a full grid of VQ-VAE codes (the RGB codebook generate and inpaint answer with).

Unified-IO's segment-based image generation and 4M's depth-to-image. Each example shows one kind of map,
drawn from `kinds`: the class map painted in the fixed palette (unio/kit/pixel_maps.py: class i its i-th
colour, unlabelled black), or the depth map in grey, 255 * (1 - d / depth_range) (black from 10 m on, and
where no depth is known). Classifier-free guidance as generate's (unio/kit/generation.py): the same null
prompt, given with no map to `null_fraction` of the training examples.

Metric, with no downloaded network: the world paints a shape in any of its colours, so a generated image's
classes cannot be read back from colour, but where its objects are can. `agreement`: per example, at the
original size, the IoU of the scene's foreground (its pixels of a class other than sky and ground) with the
pixels the world's palette reads as an object's colour in the generated image (unio/data/world/palette.py);
also per kind of map (`agreement_classes`, `agreement_depth`). Baselines: `map_blind` (another training
scene's image: a generator blind to the map) and `vq_ceiling` (the scene's image through the codebook).
`unio.map_to_image(map, kind="classes" | "depth")`.
"""
from __future__ import annotations

import zlib

import numpy as np
from PIL import Image

from unio.data.world.palette import colour_map
from unio.data.world.surfaces import CLASS_NAMES
from unio.kit.answers import ImageCodes, baseline
from unio.kit.drawing import _side_by_side
from unio.kit.generation import GeneratedImageAnswer, check_guidance, check_null_fraction
from unio.kit.metrics import mask_ious
from unio.kit.pixel_maps import GREY_DEPTH, PALETTE, class_colours, depth_grey
from unio.registries import register_task
from unio.task import Example, choose_prompt

PROMPTS = {"classes": ["Generate an image from the segment map.", "Draw the scene of this segment map."],
           "depth": ["Generate an image from the depth map.", "Draw the scene of this depth map."]}
BACKGROUND = ("sky", "ground")      # the classes that are no object


@register_task
class MapToImage(GeneratedImageAnswer):   # null prompt, guidance's dropout, decoding: unio/kit/generation.py
    name, hub_task = "map_to_image", "image-to-image"   # registry name; task type on the hub
    prompts = [p for kind in PROMPTS.values() for p in kind]
    headline, also_report = "agreement", ("agreement_classes", "agreement_depth")
    helper_options = {"guidance_scale": 1.0}    # unio.map_to_image's, unless its options say otherwise

    def __init__(self, kinds=("classes", "depth"), null_fraction: float = 0.1, depth_range: float = GREY_DEPTH,
                 guidance: float | list | None = None):
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        if not kinds or set(kinds) - set(PROMPTS):
            raise ValueError(f"kinds are one or more of {', '.join(PROMPTS)}; got {kinds}")
        if not depth_range > 0:
            raise ValueError(f"depth_range is the depth (metres) shown black, > 0; got {depth_range}")
        self.kinds, self.depth_range = kinds, float(depth_range)
        self.null_fraction = check_null_fraction(null_fraction)
        self.guidance = check_guidance(guidance)   # the scale answers are decoded at unless the caller names one
        #                                           (a tuple: candidates, chosen on validation)
        self.requires = ("image", "classes", "class_names") + (("depth",) if "depth" in kinds else ())
        self.codes = ImageCodes()

    def example(self, record, rng) -> Example:
        kind = self.kinds[int(rng.integers(len(self.kinds)))]
        image = np.asarray(record["image"])
        return Example(self.name, self.paint(record, kind), choose_prompt(PROMPTS[kind], rng), image,
                       {"key": (record.get("id"), "rgb", image.shape[0]), "kind": kind,
                        "foreground": foreground(record["classes"], record["class_names"])})

    def paint(self, record, kind: str) -> np.ndarray:
        """The record's map of `kind` as the image the encoder reads, at the record's size."""
        if kind == "classes":
            return class_colours(record["classes"])
        depth, valid = np.asarray(record["depth"], np.float32), record.get("depth_valid")
        return depth_grey(depth, self.depth_range, np.isfinite(depth) & (depth > 0) if valid is None else valid)

    def report_image(self, example) -> np.ndarray:
        """The map the example shows, at the original record's size: what a user gives unio.run."""
        return self.paint(example.record, example.meta["kind"])

    def evaluate(self, predictions, examples) -> dict:
        """Predictions in original pixels: the foreground the palette reads in them against the scene's."""
        scores = {kind: [] for kind in PROMPTS}
        for image, example in zip(predictions, examples):
            inter, union = mask_ious(read_foreground(image), _gold(example))
            scores[example.meta["kind"]].append(inter / union if union else 1.0)
        every = [s for kind in scores.values() for s in kind]
        return {"agreement": float(np.mean(every)), "n": len(every),
                **{f"agreement_{kind}": float(np.mean(s)) for kind, s in scores.items() if s}}

    def draw(self, result) -> Image.Image:
        """The map given beside the image generated from it."""
        return _side_by_side(Image.fromarray(np.asarray(result.image, np.uint8)),
                             Image.fromarray(np.asarray(result.generated_image, np.uint8)))

    def helper_call(self, run, pixel_map, kind: str = "classes", model=None, **options):
        """unio.map_to_image(map, kind="classes" | "depth", guidance_scale=1.0): an image of the scene a map
        shows, as a Result whose `.generated_image` is (H, W, 3) uint8 in the map's pixels. `map` (H, W):
        class indices for "classes" (-1 unlabelled; the world's 0 sky, 1 ground, 2 cube, 3 sphere, 4 cone,
        5 cylinder), metres for "depth" (0: not known, shown black as in training)."""
        shown = self.map_image(pixel_map, kind)
        return run(PROMPTS[kind][0], shown, model=model, task=self.name, **{**self.helper_options, **options})

    def map_image(self, pixel_map, kind: str) -> np.ndarray:
        """An (H, W) map of `kind` as the image the encoder reads, checked."""
        if kind not in PROMPTS:
            raise ValueError(f"kind must be one of {', '.join(repr(k) for k in PROMPTS)}; got {kind!r}")
        values = np.asarray(pixel_map)
        if values.ndim != 2 or 0 in values.shape:
            raise ValueError(f"a {kind} map is a non-empty (H, W) array; got shape {values.shape}")
        if kind == "classes":
            return class_colours(_checked_classes(values))
        return depth_grey(_checked_depth(values), self.depth_range, values > 0)     # 0: no depth known

    def baselines(self):
        return {"map_blind": _OtherScene,
                "vq_ceiling": baseline(lambda example, mods: self.codes.round_trip(example.target, mods))}


def foreground(classes, class_names) -> np.ndarray:
    """(H, W) bool: the pixels of a class other than the background's (sky, ground) and unlabelled."""
    classes = np.asarray(classes, np.int64)
    objects = [i for i, name in enumerate(class_names) if name not in BACKGROUND]
    return np.isin(classes, objects)


def read_foreground(image) -> np.ndarray:
    """(H, W) bool: the pixels of an (H, W, 3) image the world's palette reads as an object's colour."""
    return colour_map(np.asarray(image, np.uint8)) >= 0


def _checked_classes(values: np.ndarray) -> np.ndarray:
    valid = (f"integer class indices from -1 (unlabelled) to {len(PALETTE) - 1} (the world's: "
             f"{', '.join(f'{i} {n}' for i, n in enumerate(CLASS_NAMES))})")
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"a class map holds {valid}; got dtype {values.dtype}")
    if values.min() < -1 or values.max() >= len(PALETTE):
        raise ValueError(f"a class map holds {valid}; got values {values.min()}..{values.max()}")
    return values


def _checked_depth(values: np.ndarray) -> np.ndarray:
    if not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
        raise ValueError(f"a depth map holds metres, real numbers >= 0; got dtype {values.dtype}")
    if not np.isfinite(values).all() or values.min() < 0:
        raise ValueError(f"a depth map holds metres, finite numbers >= 0; got values {values.min()}..{values.max()}")
    return values


def _gold(example) -> np.ndarray:
    """The scene's foreground in the original image's pixels."""
    record = example.record
    return example.meta["foreground"] if record is None else foreground(record["classes"], record["class_names"])


class _OtherScene:
    """Another training scene's image, picked by the example's id: what a generator blind to the map makes."""

    def __init__(self, train_examples, mods=None):
        self.images = [ex.target for ex in train_examples]

    def __call__(self, example):
        return self.images[zlib.crc32(str(example.meta.get("id")).encode()) % len(self.images)]

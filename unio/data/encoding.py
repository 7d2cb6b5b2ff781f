"""What the encoder reads: pixels and prompt ids (a prompt's region as location tokens, and as boxes a
model of `region_marks` marks on its patches). Training, evaluation and `unio.run` all encode their inputs here."""
from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import torch

from unio.kit.images import image_tensor
from unio.task import region_boxes
from unio.vocab import PAD


def prompt_ids(example, mods, max_length: int) -> list:
    """A prompt's ids: its text, then its region's location tokens (never cut) where it has one (each box's
    in turn where it holds several). Text past `max_length` is cut, and the first cut prompt of each task is
    reported (a warning); unio.run refuses such a prompt instead (check_prompt_length)."""
    ids, location = prompt_parts(example, mods)
    if len(ids) + len(location) > max_length:
        report_cut(example, max_length)
    return ids[:max_length - len(location)] + location


def prompt_parts(example, mods) -> tuple:
    """(the prompt's text ids, its region's location ids: [] without a region)."""
    ids = mods.text_ids(example.prompt)
    if getattr(example, "region", None) is None:
        return ids, []
    height, width = example.image.shape[:2]
    return ids, [i for box in region_boxes(example.region) for i in box_ids(box, mods, width, height)]


_CUT_REPORTED: set = set()


def report_cut(example, max_length: int) -> None:
    """Warn once per task (per process) that its prompts are longer than the model reads."""
    task = getattr(example, "task", None)
    if task in _CUT_REPORTED:
        return
    _CUT_REPORTED.add(task)
    warnings.warn(f"task {task!r}: a prompt is longer than the model's max_text_length ({max_length} tokens) and is "
                  f"cut to it, so the model never reads its end (e.g. {example.prompt[-60:]!r}); raise it with "
                  f"--model max_text_length=N to read such prompts whole. Reported once per task.",
                  stacklevel=first_frame_outside_unio())


def first_frame_outside_unio() -> int:
    """The `stacklevel` that points a warning raised in unio at the first caller outside the package (a script,
    the user's code), however deep in the data pipeline it was raised (Python 3.12's skip_file_prefixes)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1      # level 1: the function that calls warnings.warn
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


class PromptTooLong(ValueError):
    """A prompt longer than the model reads (unio.run refuses it; training cuts it)."""


def check_prompt_length(example, mods, max_length: int) -> None:
    """Raise PromptTooLong where a prompt (with its region's location tokens) is longer than the model reads."""
    ids, location = prompt_parts(example, mods)
    if len(ids) + len(location) > max_length:
        region = f" and {len(location)} for its region" if location else ""
        fits = (f"shorten it to at most {max_length - len(location)} tokens" if len(location) < max_length
                else "the region alone is more than it reads")
        raise PromptTooLong(f"the prompt is {len(ids)} tokens{region}, more than this model reads "
                            f"(max_text_length {max_length}); {fits}")


def box_ids(box, mods, width: float, height: float) -> list:
    """A box (x1, y1, x2, y2) in pixels as global ids of the first tokenizer that encodes boxes."""
    for name, tokenizer in mods.tokenizers.items():
        if hasattr(tokenizer, "encode_box"):
            return mods.vocab.to_global(name, tokenizer.encode_box(box, width, height))
    raise ValueError(f"a region needs a tokenizer that encodes boxes; this model has {', '.join(mods.tokenizers)}")


def encode_prompts(examples, mods, max_length: int) -> tuple:
    """Prompts (with their regions) -> (input_ids, attention_mask), padded to the longest."""
    ids = [prompt_ids(ex, mods, max_length) for ex in examples]
    length = max(1, max(len(x) for x in ids))
    input_ids = torch.full((len(ids), length), PAD, dtype=torch.long)
    mask = torch.zeros((len(ids), length), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, : len(x)] = 1
    return input_ids, mask


def encode_inputs(examples, mods, max_text_length: int) -> dict:
    """What the encoder reads: pixels and prompt ids, and `region_boxes` where a prompt has a region.
    Training, evaluation and unio.run all use it."""
    input_ids, mask = encode_prompts(examples, mods, max_text_length)
    seen = [ex.image is not None for ex in examples]
    if all(seen):
        pixels = torch.stack([image_tensor(ex.image) for ex in examples])
        inputs = {"pixel_values": pixels, "input_ids": input_ids, "attention_mask": mask}
    else:   # prompts without an image (Example.image None): see inputs_without_images
        inputs = inputs_without_images(examples, seen, input_ids, mask)
    boxes = region_boxes_tensor(examples) if "pixel_values" in inputs else None
    if boxes is not None:
        inputs["region_boxes"] = boxes
    return inputs


def region_boxes_tensor(examples):
    """(B, K, 4) float: each example's region boxes (x1, y1, x2, y2) as fractions of its image's width and
    height, K the most boxes any region of the batch holds; a missing box is all zeros (it covers nothing).
    None when no example has a region. A model with `region_marks` marks the patches each box covers."""
    regions = [region_boxes(ex.region) if getattr(ex, "region", None) is not None else [] for ex in examples]
    count = max(len(r) for r in regions)
    if not count:
        return None
    out = torch.zeros(len(examples), count, 4)
    for i, (ex, boxes) in enumerate(zip(examples, regions)):
        height, width = ex.image.shape[:2] if boxes else (1, 1)
        for k, box in enumerate(boxes):
            out[i, k] = torch.tensor([float(v) for v in box]) / torch.tensor([width, height, width, height])
    return out.clamp(0, 1)


def inputs_without_images(examples, seen: list, input_ids, mask) -> dict:
    """A batch where some prompts come without an image: none has one -> no pixels at all (the encoder
    reads the text alone); some have one -> the others get blank pixels and `image_mask` (B,) False,
    which hides their patches from every query, so they too read as the text alone."""
    empty = [i for i, ex in enumerate(examples) if not seen[i] and not mask[i].any()]
    if empty:
        raise ValueError(f"example {empty[0]} has neither an image nor a prompt; the encoder needs one of them")
    inputs = {"input_ids": input_ids, "attention_mask": mask}
    if any(seen):
        shape = next(ex.image for ex in examples if ex.image is not None).shape
        blank = np.zeros(shape, np.uint8)
        inputs["pixel_values"] = torch.stack([image_tensor(blank if ex.image is None else ex.image) for ex in examples])
        inputs["image_mask"] = torch.tensor(seen)
    return inputs

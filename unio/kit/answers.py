"""Answer kinds task plugins build on: short text, boxes (location tokens) and image codes.

Each kind finds its tokenizer by what it does, never by its name: text through the prompt tokenizer
(`mods.prompt_name`), boxes through the first tokenizer that encodes boxes (`encode_box`, as a prompt's
region is encoded), image codes through the first that turns images into a grid of codes (`downsample`,
`encode`, `decode`). Mixins give a task the hooks an answer kind fixes (`ShortTextAnswer`: all of them;
`LocationAnswer`, `BoxListAnswer`, `ImageAnswer`: some); functions encode and decode boxes; `ImageCodes`
is an object a task holds (it keeps the gold codes' cache); `baseline` makes the baselines that learn nothing.
"""
from __future__ import annotations

import functools
import os
from collections import Counter, defaultdict
from dataclasses import replace

import numpy as np
import torch

from unio.grammar import Grammar, Repeat, Segment
from unio.kit.boxes import split_groups
from unio.kit.image_codes import CodeCache, decode_expected_grid, decode_grid, image_grammar
from unio.kit.images import image_tensor
from unio.kit.labels import left_to_right


def baseline(answer):
    """A baseline that learns nothing from the training examples: answer(example, mods) for each example
    (e.g. the gold answer through the tokenizers and back: the ceiling the tokens allow)."""
    return lambda train_examples, mods=None: (lambda example: answer(example, mods))


def through_tokens(task):
    """answer(example, mods) for `baseline`: the gold answer through the task's own targets and decode."""
    return lambda example, mods: task.decode(task.targets([example], mods)[0], mods, example)


# -- text ------------------------------------------------------------------------------------------
class ShortTextAnswer:
    """What tasks answering in a few words share (optional: inherit it or write your own): text targets,
    a grammar of 1 to `max_tokens` text tokens, the decoded text, accuracy (exact match) as the metric
    unless the task has its own, the texts the tokenizer learns from and the most-frequent-answer baseline
    (named `baseline_name`)."""
    headline = "accuracy"
    max_tokens = 8
    baseline_name = "majority"

    def targets(self, examples, mods):
        return [mods.text_ids(ex.target) for ex in examples]

    def grammar(self, mods, image_size: int) -> Grammar:
        return Grammar((Segment(mods.prompt_name, 1, self.max_tokens),))   # the prompt tokenizer's text

    def decode(self, ids, mods, example=None) -> str:
        return mods.text_from_ids(ids).strip()

    def evaluate(self, predictions, examples) -> dict:
        return {"accuracy": float(np.mean([p == ex.target for p, ex in zip(predictions, examples)]))}

    def training_texts(self, example) -> list:
        return [example.prompt, example.target]

    def training_images(self, example) -> list:
        return []

    def baselines(self):
        return {self.baseline_name: MostFrequentAnswer}


class MostFrequentAnswer:
    """A baseline for tasks answering in words: the most frequent training target, every time; with `per`
    (a meta key, e.g. the question type), the most frequent for the example's value of it where training
    saw that value."""

    def __init__(self, train_examples, mods=None, per: str | None = None):
        self.answer = Counter(ex.target for ex in train_examples).most_common(1)[0][0]
        counts = defaultdict(Counter)
        for ex in train_examples if per else ():
            counts[ex.meta[per]][ex.target] += 1
        self.per, self.answers = per, {value: c.most_common(1)[0][0] for value, c in counts.items()}

    def __call__(self, example):
        return self.answers.get(example.meta[self.per], self.answer) if self.per else self.answer


def text_scores(predictions, references, rouge: bool = False, meteor: bool = False) -> dict:
    """pycocoevalcap's BLEU-4 and CIDEr-D (and ROUGE-L with `rouge`, METEOR with `meteor` where Java runs
    it and `UNIO_METEOR` is not 0), after its PTB tokenisation, as the COCO caption evaluation computes them;
    `references` a list of lists of strings, all the references of each prediction."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [dict(caption=r) for r in refs] for i, refs in enumerate(references)})  # its field
    res = tokenizer.tokenize({i: [dict(caption=p)] for i, p in enumerate(predictions)})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    out = {"bleu4": float(bleu[3]), "cider": float(cider)}
    if rouge:
        out["rougeL"] = float(Rouge().compute_score(gts, res)[0])
    score = _meteor(gts, res) if meteor and os.environ.get("UNIO_METEOR", "1") != "0" else None
    return out if score is None else {**out, "meteor": score}


@functools.lru_cache(maxsize=1)
def _meteor_process():
    """One METEOR process for this Python process, started on first use and kept: starting one (Java loading
    its paraphrase tables) takes seconds, a score from a running one milliseconds; each score is computed
    from its own segments alone. It exits with this process (its stdin closes)."""
    from pycocoevalcap.meteor.meteor import Meteor
    return Meteor()


def _meteor(gts, res):
    """METEOR 1.5 through its jar, or None where Java cannot run it."""
    try:
        return float(_meteor_process().compute_score(gts, res)[0])
    except (OSError, ValueError):                    # no Java, or the jar died (the next call starts another)
        _meteor_process.cache_clear()
        return None


# -- boxes (location tokens) -------------------------------------------------------------------------
def location_tokenizer(mods) -> str:
    """The name of the tokenizer of locations: the first one that encodes boxes."""
    for name, tokenizer in mods.tokenizers.items():
        if hasattr(tokenizer, "encode_box"):
            return name
    raise ValueError(f"a box answer needs a tokenizer that encodes boxes; this model has {', '.join(mods.tokenizers)}")


def box_segment(mods) -> Segment:
    """The grammar's segment of one box: exactly 4 location bins."""
    name = location_tokenizer(mods)
    return Segment(name, 4, 4, local=(0, mods[name].num_bins), box=True)


def box_to_ids(box, mods, example) -> list:
    """A box (x1, y1, x2, y2) in the example's model frame -> its 4 global location ids."""
    name, (h, w) = location_tokenizer(mods), example.image.shape[:2]
    return mods.vocab.to_global(name, mods[name].encode_box(box, w, h))


def box_from_ids(ids, mods, example) -> list:
    """Generated global ids of one box -> the box in the example's model frame; the whole image when they
    are not 4 location tokens (never under a box grammar: the whole image rather than no box)."""
    name, (h, w) = location_tokenizer(mods), example.image.shape[:2]
    local = mods.vocab.to_local(name, list(ids))
    return mods[name].decode_box(local, w, h) if len(local) == 4 else [0.0, 0.0, float(w), float(h)]


def box_groups(ids, logprobs, mods, example, labelled: bool = True) -> tuple:
    """Generated ids of a list of boxes (each followed by its label's text where `labelled`) -> (the boxes
    in the model frame, the groups: their label ids and scores, see unio.kit.boxes.split_groups)."""
    name, (h, w) = location_tokenizer(mods), example.image.shape[:2]
    groups = split_groups(ids, logprobs, mods.vocab, name, labelled=labelled)
    return [mods[name].decode_box(g.location, w, h) for g in groups], groups


LABEL_TOKENS = 6      # a listed object's label words at most (detection's default, and the grounded lists')
LISTED_OBJECTS = 10   # objects a list holds at most (the same)


def listed_ids(objects, mods, example, max_label_tokens: int = LABEL_TOKENS, max_tokens: int = 64) -> list:
    """[(box, label)] as a detection answer's ids: each box's 4 location tokens, then its label's words, whole
    objects within `max_tokens` (itm.ground=detection starts its answers with this list too)."""
    return whole_groups([box_to_ids(box, mods, example) + mods.text_ids(label)[:max_label_tokens]
                         for box, label in objects], max_tokens)


def label_positions(objects, k: int, mods, example, listed: int) -> list:
    """Positions of object k's label tokens in listed_ids' ids of `objects` (`listed` of them; none where the list
    ends before it): the tokens a misnamed label (itm's and find_all's `list_noise`) leaves out of the loss."""
    start = len(listed_ids(objects[:k], mods, example))
    end = start + len(listed_ids(objects[k:k + 1], mods, example))
    return list(range(start + 4, end)) if end <= listed else []


def after_listed_objects(ids, logprobs, mods, prefix: int = 0) -> tuple:
    """(ids, logprobs) of a box list said after a list of labelled objects (find_all.ground): the tokens after
    the forced `prefix` and after the last label's text the model said past it."""
    name = location_tokenizer(mods)
    start = 1 + max((i for i, t in enumerate(ids) if i >= prefix and mods.vocab.owner(t) != name), default=prefix - 1)
    return list(ids[start:]), logprobs and logprobs[start:]


class ListedObjectsFirst:
    """Mixin for a task option `ground=TASK` (itm and find_all: "detection"): the answer starts with the image's
    objects as TASK's answer lists them (boxes and labels, left to right). At inference the pipeline's
    `ask_first` hook (set to `objects_first` by the task where ground is on) asks the same model's TASK, and
    `answer_prefix` starts the answer from what it found."""

    def set_ground(self, ground, allowed: tuple, via=None) -> None:
        """Checks and sets the `ground` option (False, or the task whose list the answer starts with; `allowed`
        names them) and the `ask_first` hook it needs."""
        if ground not in allowed:
            raise ValueError(f"ground is one of {', '.join(map(repr, allowed))} (a task's name: the answer lists the "
                             f"image's objects first, as that task answers), got {ground!r}")
        if via and ground:
            raise ValueError(f"{self.name} answers either through {via}'s answers (via) or by its own answer after "
                             f"{ground}'s list (ground), not both")
        self.ground = ground
        self.ask_first = self.objects_first if ground else None     # the pipeline's hook

    def objects_list(self, mods) -> Repeat:
        """The grammar of the list the answer starts with: listed_ids' boxes, each with its label's words."""
        return Repeat((box_segment(mods), Segment(mods.prompt_name, 1, LABEL_TOKENS)), 0, LISTED_OBJECTS)

    def objects_first(self, examples, tasks, ask) -> None:
        """Each example's image's objects as the model's `ground` task finds them (`ask(task name, examples)` ->
        their predictions: {boxes, labels}), left to right, in meta["found_objects"]."""
        lister = tasks.get(self.ground)
        found = ask(self.ground, [replace(ex, task=lister.name, prompt=lister.prompts[0], target=None, region=None,
                                          meta={}) for ex in examples])
        for ex, listed in zip(examples, found):    # a box whose label is no word is not an object of the list
            ex.meta["found_objects"] = left_to_right([(box, label) for box, label in
                                                      zip(listed["boxes"], listed["labels"]) if label.strip()])

    def answer_prefix(self, example, mods) -> list | None:
        """The objects `objects_first` found, as the answer's first tokens (None: no prefix)."""
        found = example.meta.get("found_objects")
        return listed_ids(found, mods, example) if found else None


def whole_groups(groups, max_tokens: int) -> list:
    """The ids of a list of answer groups (each a list of ids: a box and its label ...), the groups kept whole
    and in order while they fit in `max_tokens`."""
    ids: list = []
    for group in groups:
        if len(ids) + len(group) > max_tokens:
            break
        ids += group
    return ids


class LocationAnswer:
    """Mixin for answers in location tokens (boxes, keypoints): the prompt is the only text the tokenizer
    learns from, and there is no image to learn from."""

    def training_texts(self, example) -> list:
        return [example.prompt]

    def training_images(self, example) -> list:
        return []


class BoxListAnswer(LocationAnswer):
    """Mixin for answers that are a list of boxes ({"boxes": [...], "scores": [...], ...}): the boxes mapped
    to the original image, the prediction's fields the Result's (`boxes` its output)."""
    output = "boxes"

    def to_original(self, prediction, frame) -> dict:
        return {**prediction, "boxes": [frame.box_to_original(b) for b in prediction["boxes"]]}

    def to_result(self, prediction) -> dict:
        return dict(prediction)


# -- image codes ------------------------------------------------------------------------------------
def image_tokenizer(mods, kind: str | None = None) -> str:
    """The name of the image tokenizer for images of `kind`: the one whose `modality` is `kind` (a codebook
    per modality, as 4M has), else the first one of no declared modality (one codebook for every image)."""
    images = {name: tok for name, tok in mods.tokenizers.items()
              if all(hasattr(tok, a) for a in ("downsample", "encode", "decode"))}
    for name, tokenizer in images.items():
        if kind is not None and getattr(tokenizer, "modality", None) == kind:
            return name
    for name, tokenizer in images.items():
        if getattr(tokenizer, "modality", None) is None:
            return name
    if images:
        held = ", ".join(f"{name} ({tok.modality})" for name, tok in images.items())
        raise ValueError(f"an answer of {kind} images needs a codebook for {kind}; this model's image codebooks: "
                         f"{held}. Train it with a task that answers with {kind} images, so its tokenizers build one")
    raise ValueError(f"an image answer needs an image tokenizer (downsample, encode, decode); this model has "
                     f"{', '.join(mods.tokenizers)}")


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """A decoded (3, H, W) image in [0, 1] -> (H, W, 3) uint8."""
    return (image.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)


class ImageCodes:
    """A task's answer as a full grid of image codes, `channels` deep: RGB (3; decoded as (H, W, 3) uint8)
    or one channel (1; decoded as an (H, W) float map in [0, 1]: depth, masks). `kind` names what the images
    hold (the built-in tasks': rgb, depth, mask; a plugin may add its own) and picks the codebook of that
    modality where the model has one per modality. `to_tensor` turns a gold image into the tokenizer's
    input; gold codes are computed in batches and cached per key (a record id and size,
    unio.kit.image_codes.CodeCache). A task holds one: `self.codes = ImageCodes(...)`."""

    def __init__(self, to_tensor=image_tensor, channels: int = 3, kind: str = "rgb", cache_size: int = 200_000):
        if not (isinstance(kind, str) and kind.isidentifier()):
            raise ValueError(f"an image kind is a name such as 'rgb' or 'mask', got {kind!r}")
        self.to_tensor, self.channels, self.kind = to_tensor, channels, kind
        self.cache_size, self._caches = cache_size, {}

    def tokenizer(self, mods) -> str:
        """The name of the tokenizer these images are coded by in `mods`."""
        return image_tokenizer(mods, self.kind)

    def targets(self, images: list, keys: list, mods) -> list:
        """Gold images -> the global ids of their codes (raster order), one list per image."""
        name = self.tokenizer(mods)
        if name not in self._caches:
            self._caches[name] = CodeCache(name, self.cache_size, to_tensor=self.to_tensor)
        return self._caches[name](images, keys, mods)

    def grammar(self, mods, image_size: int) -> Grammar:
        """Always a full grid: exactly side * side codes, then EOS."""
        return image_grammar(mods, self.tokenizer(mods), image_size)

    def decode(self, ids, mods, height: int, width: int) -> np.ndarray:
        """Generated global ids (a full grid, or fewer: padded with code 0) -> the decoded image."""
        return self._array(decode_grid(ids, mods, self.tokenizer(mods), height, width, self.channels))

    def decode_expected(self, distributions, mods, height: int, width: int) -> np.ndarray:
        """Each step's log-probabilities (L, V) -> the image decoded from the expected latent of each cell
        (unio.kit.image_codes.decode_expected_grid)."""
        return self._array(decode_expected_grid(distributions, mods, self.tokenizer(mods), height, width,
                                                self.channels))

    def round_trip(self, image, mods) -> np.ndarray:
        """A gold image through encode -> decode: the ceiling the codes allow (the `vq_ceiling` baselines)."""
        tokenizer = mods[self.tokenizer(mods)]
        return self._array(tokenizer.decode(tokenizer.encode(self.to_tensor(image)), channels=self.channels)[0])

    def _array(self, image: torch.Tensor) -> np.ndarray:     # (C, H, W) -> (H, W, 3) uint8 or (H, W)
        return to_uint8(image) if self.channels == 3 else image[0].numpy()


class ImageAnswer:
    """Mixin for tasks whose answer is their gold image (`example.target`) as a full grid of codes of
    `self.codes` (an ImageCodes), cached by `meta["key"]`: targets, grammar, the prompt as the text to
    learn from and the gold image as the image to learn from."""

    def targets(self, examples, mods):
        return self.codes.targets([ex.target for ex in examples], [ex.meta.get("key") for ex in examples], mods)

    def grammar(self, mods, image_size: int) -> Grammar:
        return self.codes.grammar(mods, image_size)

    def training_texts(self, example) -> list:
        return [example.prompt]

    def training_images(self, example) -> list:
        return [self.codes.to_tensor(example.target)]

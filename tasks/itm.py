"""Image-text matching (ALBEF / TCL's ITM, OFA's phrasing): 'Does the image match "{}"?' -> yes / no.

Half the examples ask about the image's own caption, half about a hard negative: the caption with one
object's size, colour or shape changed, or with one object dropped or repeated (a count change). The
negatives are made on world-style captions ("a large red cube, a small blue sphere and a green cone.");
a caption of another form is only asked as a positive. `easy` (a training option: `--task-option itm.easy=0.5`)
swaps that share of the training negatives for easy ones, a random caption. `negatives` (a training option:
`--task-option "itm.negatives={color: 3, shape: 2, size: 1, count: 1}"`) draws the training negatives' kinds at
those weights instead of evenly, so the kinds a model still takes for matches get more of the examples (hard-negative
mining by kind); evaluation keeps its even kinds. The answer is ranked between "yes" and "no" by
likelihood. Metric: accuracy (also on positives, on each kind of negative and by the number of objects the caption
lists: `accuracy_objects_N`), and `yes_share`, the share of answers that are "yes" (half of the examples' are).

With `via="detection"` the task is answered through detection instead of its own trained answers (a
model trained with detection, with or without itm): "yes" when the objects the caption lists (size,
colour, shape each) are exactly the image's detected labels, as many of each. Only captions that list
objects in the world's form can be judged this way; another caption is an error naming it. Training is
unchanged; the option only changes how answers are made.

`ground="detection"` (a model option: training and inference) has the answer say the image's objects first, as
detection lists them (boxes and labels, left to right), then "yes" or "no": the caption is then compared with a
list the decoder has just said, not with the image in one step. At inference that list is the model's own
detection of the image, asked first; "yes" and "no" are ranked after it.

`verdicts=True` (a model option, with `ground`) has the answer check the caption's objects one at a time after the
list before its yes / no: "large red cube yes, small blue sphere no; no", each object "yes" where the list holds one
more of it (an object repeated beyond the image's count is a "no"), then the answer ("no" also where the list holds
an object the caption leaves out). A changed attribute is then one verdict's error, each comparing one object with
the list, rather than a share of one yes / no bit. At inference the verdicts and the answer are generated (greedy)
after the listed objects; the prediction is the answer's last word.

`list_noise` (a training option, with `ground`: `--task-option itm.list_noise=0.3`) teaches the answer to compare the
caption with the list rather than the image: that share of the training examples has one listed object misnamed,
and the answer (and verdicts) are those the misnamed list gives. Where the caption differs from the list by one
object said otherwise (a size, colour or shape negative), that listed object takes the caption's name and the answer
becomes "yes"; otherwise one attribute of a listed object changes and the answer is "no". The misnamed label is fed
to the decoder but left out of the loss.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict

import numpy as np

from unio.data.world.constants import COLORS, SIZES
from unio.data.world.labels import WORLD_VALUES, is_world_label, relabelled
from unio.kit.answers import ListedObjectsFirst, ShortTextAnswer, label_positions, listed_ids, location_tokenizer
from unio.kit.labels import label_of, left_to_right
from unio.registries import register_task
from unio.task import Example, Grammar, Segment, Target, choose_prompt, pick, share_option, slot_of

VALUES = WORLD_VALUES     # each attribute's words
KINDS = ("size", "color", "shape", "count")
PHRASE = re.compile(r"^an? (\w+) (\w+) (\w+)$")
VIAS = (None, "detection")   # None: its own trained answers
GROUNDS = (False, "detection")
VERDICT_TOKENS = 48          # the verdicts and the answer: up to 5 caption objects' names and verdicts


def parse(caption: str) -> list | None:
    """'a large red cube, a small blue sphere and a small green cone.' -> [[size, color, shape], ...]."""
    parts = re.split(r", | and ", caption.strip().rstrip("."))
    found = [PHRASE.match(p) for p in parts]
    if not all(found) or any(m.group(1) not in SIZES or m.group(2) not in COLORS for m in found):
        return None
    return [list(m.groups()) for m in found]


def render(objects: list) -> str:
    names = [f"a {' '.join(o)}" for o in objects]
    return (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]) + "."


def hard_negative(objects: list, kind: str, rng) -> str:
    """The caption with one change of `kind`: an attribute of one object, or one object dropped / repeated."""
    objects = [list(o) for o in objects]
    i = int(rng.integers(len(objects)))
    if kind == "count":
        if len(objects) > 1 and rng.random() < 0.5:
            objects.pop(i)
        else:
            objects.insert(i, list(objects[i]))
        return render(objects)
    slot = ("size", "color", "shape").index(kind)
    choices = [v for v in VALUES[kind] if v != objects[i][slot]]
    objects[i][slot] = choices[int(rng.integers(len(choices)))]
    return render(objects)


def verdict_text(caption_objects: list | None, labels: list, answer: str) -> str:
    """'large red cube yes, small blue sphere no; no': each caption object in turn, "yes" where `labels` (the
    listed objects') hold one more of it, then `answer`; only the answer for a caption that lists no objects."""
    if caption_objects is None:
        return answer
    left, said = Counter(" ".join(label.lower().split()) for label in labels), []
    for obj in caption_objects:
        name = " ".join(obj)
        found = left[name] > 0
        left[name] -= found
        said.append(f"{name} {'yes' if found else 'no'}")
    return ", ".join(said) + f"; {answer}"


def gold_objects(record) -> list:
    """[(box, label)] of a record's objects, left to right, as detection's targets list them."""
    if record.get("objects") is None:
        raise ValueError("itm.ground=detection lists the image's objects before its answer, so its records need "
                         "'objects' (boxes and categories); this source has none")
    return left_to_right([(list(o["box"]), label_of(o)) for o in record["objects"] if o.get("box") is not None])


def misnamed_in_list(example, rng):
    """The example (with `ground`'s list) with one listed object misnamed and the answer that list gives: where the
    caption and the list differ by one object said otherwise, the listed one takes the caption's name ("yes");
    otherwise a listed object gets another value of one attribute ("no", a list the caption no longer matches)."""
    caption, objects = parse(example.meta["text"]), [list(o) for o in example.meta["objects"]]
    named = [i for i, (_, label) in enumerate(objects) if is_world_label(label)]
    if caption is None or not named:
        return example
    said, listed = Counter(" ".join(o) for o in caption), Counter(" ".join(label.lower().split()) for _, label in objects)
    extra, missing = said - listed, listed - said
    swapped = [i for i in named if " ".join(objects[i][1].lower().split()) in missing]
    if sum(extra.values()) == 1 and sum(missing.values()) == 1 and swapped:
        k = swapped[0]
        objects[k][1] = next(iter(extra))
    else:
        k = named[int(rng.integers(len(named)))]
        objects[k][1] = relabelled(objects[k][1], rng)
    answer = "yes" if said == Counter(" ".join(label.lower().split()) for _, label in objects) else "no"
    example.meta = {**example.meta, "objects": [tuple(o) for o in objects], "misnamed": k}
    example.target = answer
    return example


def random_caption(rng) -> str:
    """A world-style caption of 1-4 objects with random attributes."""
    objects = [[VALUES[a][int(rng.integers(len(VALUES[a])))] for a in ("size", "color", "shape")]
               for _ in range(int(rng.integers(1, 5)))]
    return render(objects)


@register_task
class ImageTextMatch(ListedObjectsFirst, ShortTextAnswer):
    max_tokens = 4
    name = "itm"
    hub_task = "zero-shot-image-classification"
    output = "text"
    prompts = ['Does the image match "{}"?', 'Is "{}" a description of the image?']
    requires = ("image", "captions")
    options = ("yes", "no")

    def __init__(self, easy: float = 0.0, via: str | None = None, ground: bool | str = False,
                 negatives: dict | None = None, verdicts: bool = False, list_noise: float = 0.0):
        if not 0.0 <= easy <= 1.0:
            raise ValueError(f"easy must be a share between 0 and 1, got {easy}")
        # training only: each kind's share of the hard negatives
        self.negatives = share_option("negatives", negatives, KINDS, "{color: 3, shape: 2, size: 1, count: 1}")
        if via not in VIAS:
            raise ValueError(f"itm answers through one of {', '.join(map(str, VIAS))}; got via={via!r}")
        self.easy = easy   # training only: this share of examples asks about a random caption instead
        self.via = via
        self.set_ground(ground, GROUNDS, via)
        if verdicts and not ground:
            raise ValueError("itm.verdicts checks each caption object against the objects the answer lists first: "
                             "it needs ground='detection'")
        self.verdicts = bool(verdicts)
        if not 0.0 <= list_noise <= 1.0:
            raise ValueError(f"itm's list_noise is a share of the training examples, in [0, 1]; got {list_noise!r}")
        if list_noise and not ground:
            raise ValueError("itm.list_noise misnames an object of the list the answer starts with: it needs "
                             "ground='detection'")
        self.list_noise = list_noise        # training only: this share of the examples gets a misnamed list

    def for_training(self, example, rng) -> Example:
        """With `easy` > 0, that share of the training negatives become easy ones (a random world-style
        caption instead of a hard negative): a signal the model gets before it can bind attributes to
        objects. Positives stay half; evaluation keeps the positives and hard negatives of `example()`."""
        if self.easy and example.target == "no" and rng.random() < self.easy:
            example = self.asking(example, random_caption(rng), "easy", rng)
        elif self.negatives is not None and example.target == "no" and example.meta["kind"] in KINDS:
            kind = KINDS[int(rng.choice(len(KINDS), p=self.negatives))]
            example = self.asking(example, hard_negative(parse(example.meta["caption"]), kind, rng), kind, rng)
        if self.list_noise and rng.random() < self.list_noise:
            example = misnamed_in_list(example, rng)
        return example

    def asking(self, example, text: str, kind: str, rng) -> Example:
        """The training example asked about `text` instead, a negative of `kind`."""
        example.prompt = choose_prompt(self.prompts, rng, text)
        example.meta = {**example.meta, "kind": kind, "text": text}
        return example

    def example(self, record, rng) -> Example:
        caption = pick(record["captions"], rng, record, "caption")
        objects = parse(caption)
        kind = KINDS[int(rng.integers(len(KINDS)))]
        if objects is None or rng.random() < 0.5:
            text, answer, kind = caption, "yes", "positive"
        else:
            text, answer = hard_negative(objects, kind, rng), "no"
        meta = {"kind": kind, "text": text, "caption": caption}
        if self.ground:
            meta["objects"] = gold_objects(record)
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng, text), answer, meta)

    def targets(self, examples, mods):
        """"yes" or "no"; with `ground`, after the image's objects as detection lists them (with `verdicts`, after
        the caption objects' verdicts too)."""
        if not self.ground:
            return super().targets(examples, mods)
        out = []
        for ex in examples:
            listed = listed_ids(ex.meta["objects"], mods, ex)
            ids, misnamed = listed + mods.text_ids(self.said_after_list(ex)), ex.meta.get("misnamed")
            out.append(ids if misnamed is None else Target(ids, label_positions(ex.meta["objects"], misnamed, mods, ex,
                                                                               len(listed))))
        return out

    def said_after_list(self, example) -> str:
        if not self.verdicts:
            return example.target
        labels = [label for _, label in example.meta["objects"]]
        return verdict_text(parse(example.meta["text"]), labels, example.target)

    def grammar(self, mods, image_size: int) -> Grammar:
        if not self.ground:
            return super().grammar(mods, image_size)
        said = VERDICT_TOKENS if self.verdicts else self.max_tokens
        return Grammar((self.objects_list(mods), Segment(mods.prompt_name, 1, said)))

    def decode(self, ids, mods, example=None) -> str:
        """The answer's text; with `verdicts`, its last word (after the listed objects and the verdicts)."""
        if not self.verdicts:
            return super().decode(ids, mods, example)
        name = location_tokenizer(mods)
        start = 1 + max((i for i, t in enumerate(ids) if mods.vocab.owner(t) == name), default=-1)
        words = re.findall(r"[a-z]+", mods.text_from_ids(list(ids[start:])).lower())
        return words[-1] if words else ""

    def prepare(self, example: Example) -> Example:
        """unio.run's example: the caption is the text the prompt puts between the quotes."""
        example.meta.setdefault("text", slot_of(example.prompt, self.prompts) or "")
        return example

    def from_answer(self, detected: dict, example, ask=None) -> str:
        """This task's answer from a detection of the same image (`via="detection"`): "yes" when the
        caption's objects and the detected labels are the same multiset."""
        listed = parse(example.meta["text"])
        if listed is None:
            raise ValueError(f"itm.via=detection judges captions that list objects ('a large red cube, a small "
                             f"blue sphere and a small green cone.'); got {example.meta['text']!r}")
        said = Counter(" ".join(o) for o in listed)
        seen = Counter(" ".join(label.lower().split()) for label in detected["labels"])
        return "yes" if said == seen else "no"

    def answer_options(self, example):
        """"yes" and "no", ranked; None (generated, greedy) with `verdicts`, whose answer follows the verdicts."""
        return None if self.verdicts else list(self.options)

    def evaluate(self, predictions, examples) -> dict:
        by_kind, by_objects = defaultdict(list), defaultdict(list)
        for p, ex in zip(predictions, examples):
            by_kind[ex.meta["kind"]].append(p == ex.target)
            listed = parse(ex.meta.get("text", ""))
            if listed is not None:
                by_objects[len(listed)].append(p == ex.target)
        out = {"accuracy": float(np.mean([c for v in by_kind.values() for c in v])),
               "yes_share": float(np.mean([p == "yes" for p in predictions]))}
        out.update({f"accuracy_{k}": float(np.mean(v)) for k, v in sorted(by_kind.items())})
        out.update({f"accuracy_objects_{n}": float(np.mean(v)) for n, v in sorted(by_objects.items())})
        return out

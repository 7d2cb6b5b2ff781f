"""Class-conditioned detection: 'Find every "red cube".' -> the boxes of every matching object, or none.

Each box is 4 location tokens (y1, x1, y2, x2), left to right, then EOS; an answer of no box at all
is EOS alone. On sources whose objects have attributes (the world: size, colour, shape) a query
names some of them ("cube", "red cube", "large cube", "large red cube", "red object") and matches
every object that has them; elsewhere it names a category. A share `absent` of the examples asks
for something the image does not hold. Metrics: precision and recall of the returned boxes at IoU
0.5 on queries with matches (recall also for exactly one and for several), and the false-positive
rate: the share of absent queries that got any box (also for each form of query: `fp_rate_absent_shape`,
`..._color_shape`, ...). `absent_forms` (a training option: `--task-option "find_all.absent_forms={shape: 3,
size_shape: 2}"`) draws the training examples' absent queries in those forms at those weights (a form left out is
never drawn; a form no query of which is absent from the image keeps the query drawn), so the forms a model still
answers with boxes get more of the absent examples; evaluation keeps its own draw.

With `via="detection"` the task is answered through detection instead of its own trained answers (a
model trained with detection, with or without find_all): the image's detected boxes whose label names
the query (every word of it; a category query: the whole label), as a closed-set detector answers
"find every X". Training is unchanged; the option only changes how answers are made. So does `min_score`: boxes
whose score (their tokens' geometric mean probability) is under it are dropped, as a detector's score threshold
does (`scripts/score_threshold.py` sweeps it and chooses one on the validation split).

`ground="detection"` (a model option: training and inference) has the answer list the image's objects first, as
detection does (boxes and labels, left to right), then the boxes the query names: picking from a list the
decoder has just said, not finding them in the image in one step. At inference that list is the model's own
detection of the image, asked first; the decoded prediction is the boxes after it.

`verdicts=True` (a model option, with `ground`) has the answer say the image's objects itself, each with its verdict
after its label ("<box> small red cube yes <box> large blue sphere no"): each object compared with the query where
its label has just been said, instead of the boxes picked after the whole list. The prediction is the boxes said
"yes". The list is find_all's own (trained on the same lists as detection's), not detection's asked first.

`list_noise` (a training option, with `ground`: `--task-option find_all.list_noise=0.3`) teaches the boxes to follow
the list rather than the image: that share of the training examples has one listed object misnamed in an attribute
the query names, so that it matches the query where it did not, or no longer matches where it did, and the answer's
boxes are those the misnamed list names. The misnamed label is fed to the decoder but left out of the loss. At
inference the list is the model's own detection, right or wrong; a model whose boxes follow its list adds no false
positive where the list names no match.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from unio.data.world.labels import WORLD_VALUES, attributes_of, is_world_label, relabelled
from unio.kit.answers import (LABEL_TOKENS, LISTED_OBJECTS, BoxListAnswer, ListedObjectsFirst, after_listed_objects,
                               baseline, box_groups, box_segment, box_to_ids, label_positions, listed_ids, whole_groups)
from unio.kit.boxes import match, nms
from unio.kit.labels import label_of, left_to_right, query_matches
from unio.registries import register_task
from unio.task import Example, Grammar, Repeat, Segment, Target, choose_prompt, share_option, slot_of

FORMS = (("shape",), ("color", "shape"), ("size", "shape"), ("size", "color", "shape"), ("color",))
FORM_NAMES = tuple("_".join(form) for form in FORMS)   # as query_form names them
VALUES = WORLD_VALUES     # each attribute's words
VIAS = (None, "detection")   # None: its own trained answers
GROUNDS = (False, "detection")
VERDICT_TOKENS = 4      # a verdict's word ("yes", "no") in text tokens at most


def phrase(values: dict) -> str:
    words = [values[a] for a in ("size", "color") if a in values]
    return " ".join(words + [values.get("shape", "object")])


def query_form(query: dict) -> str:
    """Which attributes a query names ("color_shape"), or "category": the slices of the false-positive rate."""
    return "category" if "category" in query else "_".join(a for a in ("size", "color", "shape") if a in query)


def matches(obj, query: dict) -> bool:
    attributes = obj.get("attributes") or {}
    if "category" in query:
        return obj.get("category") == query["category"]
    return all(attributes.get(a) == v for a, v in query.items())


@register_task
class FindAll(ListedObjectsFirst, BoxListAnswer):
    name, hub_task = "find_all", "zero-shot-object-detection"   # registry name; task type on the hub
    prompts = ['Find every "{}".', 'Where is every "{}" in the image?', 'Locate all "{}" in the image.']
    requires = ("image", "objects")
    headline = "recall"
    uses_token_logprobs = True
    stop_by_mass = True                 # ends the list only when EOS outweighs every next box together

    def __init__(self, absent: float = 0.3, max_objects: int = 10, nms_iou: float = 0.6, via: str | None = None,
                 ground: bool | str = False, min_score: float = 0.0, absent_forms: dict | None = None,
                 list_noise: float = 0.0, verdicts: bool = False):
        if via not in VIAS:
            raise ValueError(f"find_all answers through one of {', '.join(map(str, VIAS))}; got via={via!r}")
        if not 0.0 <= min_score < 1.0:
            raise ValueError(f"find_all's min_score is a box score (its tokens' mean probability), in [0, 1); got {min_score!r}")
        self.absent, self.max_objects, self.nms_iou, self.via = absent, max_objects, nms_iou, via
        self.min_score = min_score          # boxes scored under it are dropped (scripts/score_threshold.py chooses it)
        self.set_ground(ground, GROUNDS, via)
        # training only: each form's share of the absent queries
        self.absent_forms = share_option("absent_forms", absent_forms, FORM_NAMES, "{shape: 3, size_shape: 2}")
        if not 0.0 <= list_noise <= 1.0:
            raise ValueError(f"find_all's list_noise is a share of the training examples, in [0, 1]; got {list_noise!r}")
        if list_noise and not ground:
            raise ValueError("find_all.list_noise misnames an object of the list the answer starts with: it needs "
                             "ground='detection'")
        self.list_noise = list_noise        # training only: this share of the examples gets a misnamed list
        if verdicts and (not ground or list_noise):
            raise ValueError("find_all.verdicts says a verdict after each object of the list the answer starts with: "
                             "it needs ground='detection' (and no list_noise)")
        self.verdicts = bool(verdicts)
        if self.verdicts:                   # the answer says its own list: nothing is asked first
            self.ask_first = None

    def example(self, record, rng) -> Example:
        objects = [o for o in record["objects"] if o.get("box") is not None]
        query = self.absent_query(objects, rng) if not objects or rng.random() < self.absent else None
        return self.for_query(record, query or self.present_query(objects, rng), rng)

    def for_query(self, record, query: dict, rng) -> Example:
        """The example asking for `query` ({attribute: value} or {"category": name}) in `record`."""
        objects = [o for o in record["objects"] if o.get("box") is not None]
        boxes = sorted((list(o["box"]) for o in objects if matches(o, query)), key=lambda b: (b[0], b[1]))
        text = query.get("category") or phrase(query)
        meta = {"query": text, "matches": len(boxes), "category": "category" in query, "form": query_form(query),
                "attributes": [o.get("attributes") or {} for o in objects]}
        if self.ground:
            meta["objects"] = left_to_right([(list(o["box"]), label_of(o)) for o in objects])
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng, text), boxes[:self.max_objects], meta)

    def for_training(self, example: Example, rng) -> Example:
        """With `absent_forms`, an absent query is asked again in a form drawn at those weights; with `list_noise`,
        that share of the examples gets a misnamed list and the boxes it names."""
        if self.absent_forms is not None and not example.target and not example.meta.get("category"):
            example = self.asked_in_drawn_form(example, rng)
        if self.list_noise and not example.meta.get("category") and rng.random() < self.list_noise:
            example = misnamed_in_list(example, rng, self.max_objects)
        return example

    def asked_in_drawn_form(self, example: Example, rng) -> Example:
        form = FORMS[int(rng.choice(len(FORMS), p=self.absent_forms))]
        objects = [{"attributes": a} for a in example.meta["attributes"]]
        query = self.absent_query(objects, rng, forms=(form,))
        if query is None:
            return example
        text = phrase(query)
        example.prompt = choose_prompt(self.prompts, rng, text)
        example.meta = {**example.meta, "query": text, "form": query_form(query)}
        return example

    def prepare(self, example: Example) -> Example:
        """unio.run's example: the query is the text the prompt puts between the quotes."""
        example.meta.setdefault("query", slot_of(example.prompt, self.prompts) or "")
        return example

    def present_query(self, objects, rng) -> dict:
        obj = objects[int(rng.integers(len(objects)))]
        attributes = obj.get("attributes") or {}
        if not all(a in attributes for a in VALUES):
            return {"category": obj.get("category", "object")}
        return {a: attributes[a] for a in FORMS[int(rng.integers(len(FORMS)))]}

    def absent_query(self, objects, rng, forms=FORMS) -> dict | None:
        """A phrase in one of `forms` that no object matches (None if 50 tries found none)."""
        for _ in range(50):
            form = forms[int(rng.integers(len(forms)))]
            query = {a: VALUES[a][int(rng.integers(len(VALUES[a])))] for a in form}
            if not any(matches(o, query) or o.get("category") == phrase(query) for o in objects):
                return query
        return None

    def targets(self, examples, mods):
        """The boxes' ids; with `ground`, after the image's objects as detection lists them (a misnamed label,
        `list_noise`'s, left out of the loss)."""
        if self.verdicts:
            return [verdict_ids(ex, mods) for ex in examples]
        out = []
        for ex in examples:
            listed = listed_ids(ex.meta["objects"], mods, ex) if self.ground else []
            ids = listed + [i for box in ex.target for i in box_to_ids(box, mods, ex)]
            misnamed = ex.meta.get("misnamed")
            out.append(ids if misnamed is None else Target(ids, label_positions(ex.meta["objects"], misnamed, mods, ex,
                                                                               len(listed))))
        return out

    def grammar(self, mods, image_size: int) -> Grammar:
        boxes = Repeat((box_segment(mods),), 0, self.max_objects)
        if not self.ground:
            return Grammar((boxes,))
        if self.verdicts:
            return Grammar((Repeat((box_segment(mods), Segment(mods.prompt_name, 1, LABEL_TOKENS + VERDICT_TOKENS)), 0,
                                   LISTED_OBJECTS),))
        return Grammar((self.objects_list(mods), boxes))

    def decode(self, ids, mods, example, logprobs=None) -> dict:
        """{boxes, scores} of the answer's boxes (with `ground`: those after the listed objects)."""
        if self.verdicts:
            return self.said_yes(ids, mods, example, logprobs)
        if self.ground:
            ids, logprobs = after_listed_objects(ids, logprobs, mods, len(self.answer_prefix(example, mods) or []))
        boxes, groups = box_groups(ids, logprobs, mods, example, labelled=False)
        scores = [g.score for g in groups]
        kept = sorted(i for i in nms(boxes, scores, None, self.nms_iou) if scores[i] >= self.min_score)
        return {"boxes": [boxes[i] for i in kept], "scores": [scores[i] for i in kept]}

    def said_yes(self, ids, mods, example, logprobs=None) -> dict:
        """{boxes, scores} of the listed objects whose label ends in "yes" (`verdicts`)."""
        boxes, groups = box_groups(ids, logprobs, mods, example, labelled=True)
        said = [mods.text_from_ids(g.label).split() for g in groups]
        kept = [i for i, words in enumerate(said) if words and words[-1].lower() == "yes" and
                groups[i].score >= self.min_score]
        return {"boxes": [boxes[i] for i in kept], "scores": [groups[i].score for i in kept]}

    def from_answer(self, detected: dict, example, ask=None) -> dict:
        """This task's prediction from a detection of the same image (`via="detection"`): the boxes whose
        label names the query."""
        keep = [i for i, label in enumerate(detected["labels"]) if names_query(label, example)]
        return {"boxes": [detected["boxes"][i] for i in keep], "scores": [detected["scores"][i] for i in keep]}

    def evaluate(self, predictions, examples) -> dict:
        counts = {"tp": 0, "predicted": 0, "gold": 0, "absent": 0, "absent_fp": 0}
        recall_by, absent_by_form = {"one": [0, 0], "several": [0, 0]}, defaultdict(list)
        for pred, ex in zip(predictions, examples):
            gold = [ex.frame.box_to_original(b) if ex.frame else b for b in ex.target]
            if not gold:
                counts["absent"] += 1
                counts["absent_fp"] += bool(pred["boxes"])
                absent_by_form[ex.meta.get("form", "unknown")].append(bool(pred["boxes"]))
                continue
            hit = match(gold, pred["boxes"])
            counts["tp"] += hit
            counts["predicted"] += len(pred["boxes"])
            counts["gold"] += len(gold)
            tally = recall_by["one" if len(gold) == 1 else "several"]
            tally[0], tally[1] = tally[0] + hit, tally[1] + len(gold)
        return {"precision": counts["tp"] / max(counts["predicted"], 1), "recall": counts["tp"] / max(counts["gold"], 1),
                "fp_rate_absent": counts["absent_fp"] / max(counts["absent"], 1),
                "recall_one": recall_by["one"][0] / max(recall_by["one"][1], 1),
                "recall_several": recall_by["several"][0] / max(recall_by["several"][1], 1),
                **{f"fp_rate_absent_{form}": float(np.mean(v)) for form, v in sorted(absent_by_form.items())}}

    def baselines(self):
        return {"none": baseline(lambda example, mods: {"boxes": [], "scores": []}), "mean_box": _MeanBox}


def verdict_ids(example: Example, mods) -> list:
    """`verdicts`' answer: each listed object's box, label and "yes" where the label names the query, else "no"."""
    return whole_groups([box_to_ids(box, mods, example) + mods.text_ids(label)[:LABEL_TOKENS]
                         + mods.text_ids("yes" if names_query(label, example) else "no")
                         for box, label in example.meta["objects"]], 64)


def names_query(label: str, example: Example) -> bool:
    """Whether a listed label names the example's query: every word of it (a category query: the whole label)."""
    query = example.meta["query"]
    return label.lower() == query.lower() if example.meta.get("category") else query_matches(label, query)


def misnamed_in_list(example: Example, rng, max_objects: int) -> Example:
    """The example with one listed object misnamed so that its match with the query flips (a matching object gets
    another value of one attribute the query names; else an object gets the query's values), and as target the boxes
    the misnamed list names. Labels that are not the world's (size colour shape) are left as they are."""
    query, objects = attributes_of(example.meta["query"]), [list(o) for o in example.meta["objects"]]
    named = [i for i, (_, label) in enumerate(objects) if is_world_label(label)]
    if not query or not named:
        return example
    matching = [i for i in named if query_matches(objects[i][1], example.meta["query"])]
    k = int(rng.choice(matching or named))
    if matching:      # another value of one attribute the query names
        attribute = sorted(query)[int(rng.integers(len(query)))]
        others = [v for v in VALUES[attribute] if v != query[attribute]]
        changes = {attribute: others[int(rng.integers(len(others)))]}
    else:             # the query's values
        changes = query
    objects[k][1] = relabelled(objects[k][1], rng, changes)
    boxes = [box for box, label in objects if query_matches(label, example.meta["query"])]
    example.meta = {**example.meta, "objects": [tuple(o) for o in objects], "misnamed": k}
    example.target = boxes[:max_objects]
    return example


class _MeanBox:
    """One box, the mean training box, whatever the query."""

    def __init__(self, train_examples, mods=None):
        self.box = np.mean([b for ex in train_examples for b in ex.target], axis=0).tolist()

    def __call__(self, example):
        return {"boxes": [list(self.box)], "scores": [1.0]}

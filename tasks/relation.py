"""The relation between two regions: "What is the relation between the two regions?" with region= two
boxes (the subject's, then the object's; location tokens after the prompt) -> the predicate ("left of",
"in front of", "larger than", "same color as" ...), ranked among `predicates` by likelihood (default: the
world's 8; `None` generates freely, as for Visual Genome's open predicates).

    unio.run("What is the relation between the two regions?", image, region=[subject_box, object_box])

A pair may hold several predicates; it is asked with the first in the world's priority order (what sets
the pair apart most: same shape, same colour, size, depth, then left or right; unio/kit/relations.py), so
the answer is a function of the pair. With `names` (`--task-option relation.names=true`) the model names
both regions first ("large red cube, small red sphere: same color as"; each object's category) and the
predicate after them is the answer (`.text` holds all of it): the look predicates become a rule over its own
words. With `geometry` (`relation.geometry=true`) it also says, before the answer, where the pair stands ("large
red cube, small red sphere; left of, in front of: same color as"): the layout predicates that hold of the pair
(left or right of, in front of or behind; world pairs are always one of left or right), so every example trains
reading the pair's order, not only the few asked it, and an answer of left, right, in front or behind is one
the model has just said. With either, it generates instead of ranking; metrics add how well it named the
regions (`names_exact`, `names_color` ..., `names_pair_exact` and the predicate's accuracy over pairs named
right / wrong) and said the layout (`layout_horizontal`, `layout_depth`); with `samples=N` too, the greedy
answer and N sampled ones vote on the predicate (self-consistency). Metrics: predicate accuracy (also per
predicate asked, e.g. `accuracy_same_shape_as`), and the share of answers that hold for the pair at all
(`holds`). Baselines:
the majority predicate, and `boxes_only` (nearest training pairs by the two boxes' geometry, never the
pixels: what can be told without looking at the objects).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from unio.data.world.relations import PREDICATES
from unio.kit.answers import MostFrequentAnswer, ShortTextAnswer
from unio.kit.metrics import accuracy_by_target
from unio.kit.relations import BoxesOnly, pair_predicate
from unio.registries import register_task
from unio.task import Example, choose_prompt, pick, region_boxes

# the order a pair's predicates are asked in: the rarest, most telling first
PRIORITY = ("same shape as", "same color as", "larger than", "smaller than", "in front of", "behind", "left of",
            "right of")
# where the pair stands: what `geometry` says before the answer, in this order
LAYOUT = ("left of", "right of", "in front of", "behind")


@register_task
class Relation(ShortTextAnswer):
    name = "relation"
    output = "text"
    prompts = ["What is the relation between the two regions?", "How is the first region related to the second?"]
    region_prompts = prompts           # every prompt asks about the two boxes given as region=
    region_count = 2                   # the subject's box, then the object's
    requires = ("image", "objects", "relations")
    headline, also_report = "accuracy", ("holds",)

    def __init__(self, predicates: list | None = PREDICATES, names: bool = False, samples: int = 0,
                 geometry: bool = False):
        self.predicates = list(predicates) if predicates is not None else None
        self.names, self.geometry = bool(names), bool(geometry)
        if self.names or self.geometry:
            self.max_tokens = 48 + 16 * self.geometry    # two names, the layout predicates, the predicate
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
            raise ValueError(f"samples is how many sampled answers vote with the greedy one, an integer >= 0, got {samples!r}")
        # only generated answers are sampled: ranked predicates (neither names nor geometry) would vote the same
        # answer N times (an option given alone, e.g. to evaluate.py for a model trained with names, must still build)
        self.pooled_samples = samples if self.generates else 0

    @property
    def generates(self) -> bool:
        """Whether the answer says more than the predicate (names, layout): generated, not ranked."""
        return self.names or self.geometry

    @property
    def tokenizer_signature(self):
        """The names and layout are in the targets: the text tokenizer learns them (another cached set)."""
        said = [kind for kind, on in (("names", self.names), ("geometry", self.geometry)) if on]
        return "+".join(said) or None

    def example(self, record, rng) -> Example:
        objects, relations = record["objects"], record["relations"]
        pairs = sorted({(int(s), int(o)) for s, _, o in relations if int(s) != int(o)
                        and objects[int(s)].get("box") is not None and objects[int(o)].get("box") is not None})
        subject, obj = pick(pairs, rng, record, "relation between two boxed objects")
        predicate = pair_predicate(relations, subject, obj, PRIORITY)
        holding = [p for s, p, o in relations if (int(s), int(o)) == (subject, obj)]
        names = [str(objects[i].get("category", "object")) for i in (subject, obj)]
        attributes = [dict(objects[i].get("attributes") or {}) for i in (subject, obj)]
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng), predicate,
                       {"holds": holding, "names": names, "attributes": attributes},
                       region=[list(objects[subject]["box"]), list(objects[obj]["box"])])

    def spoken(self, example) -> str:
        """What the model is trained to say: the predicate, after both regions' names (`names`) and where
        the pair stands (`geometry`): "large red cube, small red sphere; left of, in front of: same color as"."""
        said = [", ".join(example.meta["names"])] if self.names else []
        if self.geometry:
            holding = example.meta.get("holds", [example.target])
            said.append(", ".join(p for p in LAYOUT if p in holding))
        return "; ".join(said) + f": {example.target}" if said else example.target

    def targets(self, examples, mods):
        return [mods.text_ids(self.spoken(ex)) for ex in examples]

    def training_texts(self, example) -> list:
        return [example.prompt, self.spoken(example)]

    def predicate(self, answer: str) -> str:
        """The predicate of an answer: with `names` or `geometry`, the text after the last colon."""
        return answer.rpartition(":")[2].strip() if self.generates else answer

    def said_names(self, answer: str) -> str:
        """The names part of an answer ("large red cube, small red sphere"): before the layout, if said."""
        head = answer.rpartition(":")[0]
        return head.rpartition(";")[0] if self.geometry and ";" in head else head

    def said_layout(self, answer: str) -> set:
        """The layout predicates an answer says before its predicate (`geometry`)."""
        head = answer.rpartition(":")[0]
        layout = head.rpartition(";")[2] if self.names else head
        return {p.strip() for p in layout.split(",") if p.strip()}

    def pool(self, predictions: list) -> str:
        """The greedy answer and the sampled ones -> the first of them to say the predicate said most often
        (self-consistency: a vote over the model's answers; a tie goes to the earlier, the greedy first)."""
        votes = Counter(self.predicate(p) for p in predictions)
        winner = votes.most_common(1)[0][0]
        return next(p for p in predictions if self.predicate(p) == winner)

    def answer_options(self, example):
        return None if self.generates else self.predicates

    def baselines(self):
        return {self.baseline_name: MostFrequentAnswer, "boxes_only": BoxesOnly}

    def evaluate(self, predictions, examples) -> dict:
        predicates = [self.predicate(p) for p in predictions]
        right = [p == ex.target for p, ex in zip(predicates, examples)]
        scores = {"accuracy": float(np.mean(right)),
                  "holds": float(np.mean([p in ex.meta.get("holds", [ex.target]) for p, ex in zip(predicates, examples)])),
                  **{f"accuracy_{p.replace(' ', '_')}": a for p, a in accuracy_by_target(right, examples).items()}}
        said = any(":" in p for p in predictions)   # a baseline says the predicate alone
        if self.names and said:
            names = [self.said_names(p) for p in predictions]
            scores.update(name_scores(names, examples))
            scores.update(split_by_naming(right, [n == ", ".join(ex.meta["names"]) for n, ex in zip(names, examples)]))
        if self.geometry and said:
            scores.update(self.layout_scores(predictions, examples))
        return scores

    def layout_scores(self, predictions, examples) -> dict:
        """How well it said where the pair stands: `layout_horizontal`, the share whose left / right of is the
        pair's; `layout_depth`, whose in front of / behind (or neither) is."""
        def part(said, holds, kinds):
            return {p for p in said if p in kinds} == {p for p in holds if p in kinds}
        pairs = [(self.said_layout(p), ex.meta.get("holds", [ex.target])) for p, ex in zip(predictions, examples)]
        return {"layout_horizontal": float(np.mean([part(s, h, LAYOUT[:2]) for s, h in pairs])),
                "layout_depth": float(np.mean([part(s, h, LAYOUT[2:]) for s, h in pairs]))}


def name_scores(said_names, examples) -> dict:
    """How well the names said before the predicate (each answer's names part) read the two regions:
    `names_exact`, the share of regions named exactly; `names_<attribute>`, the share whose name holds the
    object's attribute as a word (the world's size, color and shape; attributes that are not words of the
    gold name, such as Visual Genome's object ids, are not scored); to tell what holds a name,
    `names_<attribute>_<value>` per gold value (for attributes with at most 8 values among the evaluated
    regions: `names_shape_sphere`), and `names_<attribute>_smaller_half` / `_larger_half` over the regions
    whose box area is under / at least the median area of all evaluated regions (ties go to the larger half,
    so the halves need not be equal)."""
    pairs = [(said, gold, attributes, _area(box))
             for names, ex in zip(said_names, examples)
             for said, gold, attributes, box in zip(split_names(names, ex.meta["names"]), ex.meta["names"],
                                                    ex.meta.get("attributes", [{}, {}]), _two_boxes(ex.region))]
    scores = {"names_exact": float(np.mean([said == gold for said, gold, _, _ in pairs]))}
    named = [(str(value) in said.split(), key, str(value), area) for said, gold, attributes, area in pairs
             for key, value in attributes.items() if str(value) in gold.split()]
    areas = [area for _, _, _, area in pairs if area is not None]
    median = float(np.median(areas)) if areas else None
    for key in sorted({key for _, key, _, _ in named}):
        scored = [(right, value, area) for right, k, value, area in named if k == key]
        scores[f"names_{key}"] = float(np.mean([right for right, _, _ in scored]))
        values = sorted({value for _, value, _ in scored})
        for value in values if len(values) <= 8 else ():
            scores[f"names_{key}_{value}"] = float(np.mean([right for right, v, _ in scored if v == value]))
        for half, inside in (("smaller_half", lambda a: a < median), ("larger_half", lambda a: a >= median)):
            kept = [right for right, _, area in scored if area is not None and inside(area)]   # an area: a median
            if kept:
                scores[f"names_{key}_{half}"] = float(np.mean(kept))
    return scores


def split_by_naming(right: list, named: list) -> dict:
    """Whether the predicate fails with the names or beside them: `names_pair_exact`, the share of pairs whose
    both names were said exactly; `accuracy_named_right` / `_named_wrong`, the predicate's accuracy over those
    pairs / the rest (where there are any)."""
    scores = {"names_pair_exact": float(np.mean(named))}
    for key, want in (("accuracy_named_right", True), ("accuracy_named_wrong", False)):
        kept = [r for r, n in zip(right, named) if n == want]
        if kept:
            scores[key] = float(np.mean(kept))
    return scores


def _two_boxes(region) -> list:
    """The subject's and the object's boxes (None where the example has fewer)."""
    boxes = region_boxes(region) if region is not None and len(region) else []
    return (boxes + [None, None])[:2]


def _area(box) -> float | None:
    return None if box is None else float(max(box[2] - box[0], 0) * max(box[3] - box[1], 0))


def split_names(said: str, gold: list) -> tuple:
    """"subject, object" -> (subject, object): cut after the gold subject where the answer starts with it
    (names may hold commas), else at the first comma; ("", "") when the answer names no pair."""
    if said.startswith(gold[0] + ","):
        return gold[0], said[len(gold[0]) + 1:].strip()
    subject, comma, obj = said.partition(",")
    return (subject.strip(), obj.strip()) if comma else ("", "")

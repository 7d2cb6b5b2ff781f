"""Relationship detection (scene-graph detection): "List the relationships in the image." -> per related
pair: the subject's box (4 location tokens), its name and the predicate in text ("large red cube; left
of"), the object's box and its name, repeated, then EOS. One relationship per related pair of objects
(either way round), the first of its predicates in the priority order of tasks/relation.py, listed by the
subject's left edge, at most `max_relations`, whole relationships within `max_tokens`.

A relationship's score is the geometric mean of its tokens' probabilities. With `samples=N`
(`--task-option relations.samples=128`) the greedy list is pooled with N lists sampled at temperature 1: each
object's box agreed over the lists (fused: boxes clustered at IoU >= 0.5, each replaced by its cluster's
median), each relationship once, scored by the share of lists that say it (the candidates recall@K ranks,
beyond what one list holds). Metrics as the Visual Genome scene-graph papers report them: triplet recall@20 and @50 (a gold triplet is found when a prediction has
the same subject, predicate and object names and both boxes at IoU >= 0.5), averaged over images; and, to
tell what holds it, recall@50 with the names or the boxes left out of a match.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from unio.kit.answers import BoxListAnswer, baseline, box_groups, box_segment, box_to_ids, through_tokens, whole_groups
from unio.kit.boxes import fused_boxes
from unio.kit.metrics import box_iou
from unio.kit.relations import scene_triplets, triplet_recall
from unio.registries import register_task
from unio.task import Example, Grammar, Repeat, Segment, choose_prompt

PRIORITY = ("same shape as", "same color as", "larger than", "smaller than", "in front of", "behind", "left of",
            "right of")   # as tasks/relation.py asks a pair (plugin files do not import each other)
SEPARATOR = ";"            # between the subject's name and the predicate


def triplet_text(subject: str, predicate: str) -> str:
    return f"{subject}{SEPARATOR} {predicate}"


def split_text(text: str) -> tuple:
    """'large red cube; left of' -> ('large red cube', 'left of'); without a separator, a name alone."""
    subject, sep, predicate = text.rpartition(SEPARATOR)
    return (subject.strip(), predicate.strip()) if sep else (text.strip(), "")


@register_task
class Relations(BoxListAnswer):
    name = "relations"
    prompts = ["List the relationships in the image.", "What are the relationships between the objects?",
               "Describe how the objects are related."]
    requires = ("image", "objects", "relations")
    headline, also_report = "recall@50", ("recall@20",)
    uses_token_logprobs = True
    stop_by_mass = True

    def __init__(self, max_relations: int = 6, max_name_tokens: int = 8, max_predicate_tokens: int = 6,
                 max_tokens: int = 64, samples: int = 0):
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
            raise ValueError(f"samples is how many sampled lists are pooled with the greedy one, an integer >= 0, "
                             f"got {samples!r}")
        self.max_relations, self.max_name_tokens, self.max_tokens = max_relations, max_name_tokens, max_tokens
        self.pooled_samples = samples
        self.max_subject_tokens = max_name_tokens + max_predicate_tokens   # the name, the separator and the predicate

    def example(self, record, rng) -> Example:
        objects = record["objects"]
        boxed = [(s, p, o) for s, p, o in record["relations"]
                 if objects[int(s)].get("box") is not None and objects[int(o)].get("box") is not None]
        triplets = [(list(objects[s]["box"]), name(objects[s]), p, list(objects[o]["box"]), name(objects[o]))
                    for s, p, o in scene_triplets(boxed, objects, PRIORITY)]
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng), triplets[:self.max_relations])

    def targets(self, examples, mods):
        return [whole_groups([box_to_ids(sbox, mods, ex) + mods.text_ids(triplet_text(sname, p))[:self.max_subject_tokens]
                              + box_to_ids(obox, mods, ex) + mods.text_ids(oname)[:self.max_name_tokens]
                              for sbox, sname, p, obox, oname in ex.target], self.max_tokens) for ex in examples]

    def grammar(self, mods, image_size: int) -> Grammar:
        subject = Segment(mods.prompt_name, 1, self.max_subject_tokens)     # "large red cube; left of"
        name = Segment(mods.prompt_name, 1, self.max_name_tokens)
        return Grammar((Repeat((box_segment(mods), subject, box_segment(mods), name), 0, self.max_relations),))

    def decode(self, ids, mods, example, logprobs=None) -> dict:
        """{boxes, labels, scores, relations: [(subject box, subject, predicate, object box, object, score)]},
        boxes in the model frame; `boxes` and `labels` hold each relationship's subject and object in turn."""
        boxes, groups = box_groups(ids, logprobs, mods, example)
        texts = [mods.text_from_ids(g.label).strip() for g in groups]
        found = []
        for k in range(0, len(groups) - 1, 2):
            subject, predicate = split_text(texts[k])
            logps = groups[k].logprobs + groups[k + 1].logprobs
            score = float(np.exp(np.mean(logps))) if logps else 1.0
            found.append([boxes[k], subject, predicate, boxes[k + 1], texts[k + 1], score])
        return relations_prediction(found)

    def pool(self, predictions: list) -> dict:
        """The greedy list and the sampled ones -> one list. First each object's box is agreed over the lists:
        every box they mention joins the first cluster whose first box it overlaps at IoU >= 0.5 and is
        replaced by its cluster's median (`fused_boxes`; names play no part, so two objects whose boxes overlap
        that much share one box). Then a relationship said in several lists (the same names and predicate,
        both boxes at IoU >= 0.5) is kept once, at its first saying's fused boxes, scored by the share of
        lists that say it ((lists saying it - 1 + its best token score) / lists)."""
        kept = []                                               # [relationship, lists saying it, best score]
        for found in fused_lists([p["relations"] for p in predictions]):
            said = set()
            for relationship in found:
                k = next((k for k, (known, _, _) in enumerate(kept) if same_relationship(known, relationship)), None)
                if k is None:
                    kept.append([relationship, 0, 0.0])
                    k = len(kept) - 1
                kept[k][1] += k not in said
                kept[k][2] = max(kept[k][2], relationship[5])
                said.add(k)
        lists = len(predictions)
        return relations_prediction([list(r[:5]) + [(count - 1 + best) / lists] for r, count, best in kept])

    def to_original(self, prediction, frame) -> dict:
        found = [[frame.box_to_original(t[0]), t[1], t[2], frame.box_to_original(t[3]), t[4], t[5]]
                 for t in prediction["relations"]]
        return relations_prediction(found)

    def gold(self, example) -> list:
        """The example's triplets in the original image's pixels."""
        if example.frame is None:
            return list(example.target)
        return [(example.frame.box_to_original(s), sn, p, example.frame.box_to_original(o), on)
                for s, sn, p, o, on in example.target]

    def evaluate(self, predictions, examples) -> dict:
        gold, found = [self.gold(ex) for ex in examples], [p["relations"] for p in predictions]
        metrics = triplet_recall(gold, found)
        metrics["recall@50_without_names"] = triplet_recall(gold, found, ks=(50,), names=False)["recall@50"]
        metrics["recall@50_without_boxes"] = triplet_recall(gold, found, ks=(50,), boxes=False)["recall@50"]
        metrics["relations_per_image"] = float(np.mean([len(p["relations"]) for p in predictions])) if predictions else 0.0
        return metrics

    def training_texts(self, example) -> list:
        return [example.prompt] + [text for s, sn, p, o, on in example.target for text in (triplet_text(sn, p), on)]

    def baselines(self):
        return {"prior": _Prior, "token_ceiling": baseline(through_tokens(self))}


def same_relationship(a, b, iou: float = 0.5) -> bool:
    """Two relationships (subject box, subject, predicate, object box, object, ...) name the same triplet."""
    return tuple(a[1:3]) + (a[4],) == tuple(b[1:3]) + (b[4],) and box_iou(a[0], b[0]) >= iou and box_iou(a[3], b[3]) >= iou


def fused_lists(lists: list) -> list:
    """Relationship lists with every subject and object box fused over all the lists (`fused_boxes`)."""
    fused = iter(fused_boxes([t[k] for found in lists for t in found for k in (0, 3)]))
    out = []
    for found in lists:
        out.append([])
        for t in found:
            subject_box, object_box = next(fused), next(fused)
            out[-1].append([subject_box, t[1], t[2], object_box, *t[4:]])
    return out


def name(obj) -> str:
    return str(obj.get("category", "object"))


def relations_prediction(found: list) -> dict:
    """Triplets [(subject box, subject, predicate, object box, object, score)] as a prediction, with the
    boxes and labels a drawing shows (subject, then object, each labelled)."""
    return {"relations": found, "boxes": [b for t in found for b in (t[0], t[3])],
            "labels": [label for t in found for label in (f"{t[1]} ({t[2]})", t[4])],
            "scores": [t[5] for t in found for _ in (0, 1)]}


class _Prior:
    """The most frequent training triplet, between the mean subject box and the mean object box (none where
    training held none)."""

    def __init__(self, train_examples, mods=None):
        triplets = [t for ex in train_examples for t in ex.target]
        self.names = Counter((t[1], t[2], t[4]) for t in triplets).most_common(1)[0][0] if triplets else None
        self.boxes = [np.mean([t[k] for t in triplets], axis=0).tolist() for k in (0, 3)] if triplets else None

    def __call__(self, example):
        if self.names is None:            # training held no relationship: predict none
            return relations_prediction([])
        (sname, predicate, oname), (sbox, obox) = self.names, self.boxes
        return relations_prediction([[list(sbox), sname, predicate, list(obox), oname, 1.0]])

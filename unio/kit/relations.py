"""Relations between objects, for the tasks that ask about them: which predicate a pair is asked with,
which triplets a scene's relationship list holds, and the scene-graph metric (triplet recall@K).

A record's `relations` are [subject index, predicate, object index] into its `objects`. A pair may hold
several predicates (the world: "left of", "in front of" and "larger than" at once): a task asks for one,
the first in its `priority` order (predicates it does not list come after, in the record's order), so an
answer is a function of the pair.
"""
from __future__ import annotations

import numpy as np

from unio.kit.metrics import box_iou


def rank(predicate: str, priority) -> int:
    return priority.index(predicate) if predicate in priority else len(priority)


def pair_predicate(relations, subject: int, obj: int, priority=()) -> str | None:
    """The predicate a pair is asked with: the first of its predicates in `priority` order (None: no relation)."""
    found = [p for s, p, o in relations if (int(s), int(o)) == (subject, obj)]
    return min(found, key=lambda p: rank(p, priority)) if found else None


def scene_triplets(relations, objects, priority=()) -> list:
    """One (subject index, predicate, object index) per related pair of objects, either way round: the
    first by `priority`, then with the subject left of the object; listed by the subject's left edge."""
    best: dict = {}
    for s, p, o in relations:
        s, o = int(s), int(o)
        key = (rank(p, priority), objects[s]["box"][0], objects[o]["box"][0])
        pair = (min(s, o), max(s, o))
        if pair not in best or key < best[pair][0]:
            best[pair] = (key, (s, p, o))
    return sorted((t for _, t in best.values()), key=lambda t: (objects[t[0]]["box"][0], objects[t[2]]["box"][0]))


def triplet_recall(gold: list, predicted: list, ks=(20, 50), iou: float = 0.5, names: bool = True,
                   boxes: bool = True) -> dict:
    """Scene-graph detection recall@K as the Visual Genome papers report it (Xu et al. 2017; Zellers et al.
    2018): per image, the share of gold triplets matched by one of the K best-scored predictions (subject,
    predicate and object names equal, both boxes at IoU >= `iou`), averaged over images with a gold triplet.
    `gold`: per image [(subject box, subject name, predicate, object box, object name)]; `predicted`: the same
    with a score last. `names=False` or `boxes=False` leave the names or the boxes out of a match (what the
    rest alone finds: a diagnosis, not a paper's metric)."""
    out = {}
    for k in ks:
        recalls = []
        for truth, guesses in zip(gold, predicted):
            if not truth:
                continue
            top = sorted(guesses, key=lambda t: -t[5])[:k]
            hit = [any(_matches(g, t, iou, names, boxes) for t in top) for g in truth]
            recalls.append(float(np.mean(hit)))
        out[f"recall@{k}"] = float(np.mean(recalls)) if recalls else 0.0
    return out


def _matches(gold, guess, iou: float, names: bool = True, boxes: bool = True) -> bool:
    named = not names or (gold[1], gold[4]) == (guess[1], guess[4])
    placed = not boxes or (box_iou(gold[0], guess[0]) >= iou and box_iou(gold[3], guess[3]) >= iou)
    return gold[2] == guess[2] and named and placed


def box_pair_features(example) -> np.ndarray:
    """The two regions of a pair question as numbers: each box's corners, width and height over the image's
    sides, and the differences of their centres, bottoms and areas; nothing else of the image."""
    height, width = np.asarray(example.image).shape[:2] if example.image is not None else (1, 1)
    boxes = np.asarray(example.region, dtype=float) / [width, height, width, height]
    sizes = boxes[:, 2:] - boxes[:, :2]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return np.concatenate([boxes.ravel(), sizes.ravel(), centres[0] - centres[1],
                           [boxes[0, 3] - boxes[1, 3], np.prod(sizes[0]) - np.prod(sizes[1])]])


class BoxesOnly:
    """A baseline for pair questions that reads the two boxes alone, never the pixels inside them: the most
    frequent answer among the k training pairs nearest in `box_pair_features` (standardised). What it gets
    right can be read off the boxes' geometry (left of, larger than, nearer); what needs the objects' looks
    (same colour, same shape) it can only guess."""

    def __init__(self, train_examples, mods=None, k: int = 15):
        self.features = np.stack([box_pair_features(ex) for ex in train_examples])
        self.mean, self.scale = self.features.mean(0), self.features.std(0) + 1e-9
        self.features = (self.features - self.mean) / self.scale
        self.targets, self.k = [ex.target for ex in train_examples], k

    def __call__(self, example) -> str:
        distances = np.linalg.norm(self.features - (box_pair_features(example) - self.mean) / self.scale, axis=1)
        nearest = [self.targets[i] for i in np.argsort(distances, kind="stable")[:self.k]]
        return max(dict.fromkeys(nearest), key=nearest.count)     # ties: the nearest first

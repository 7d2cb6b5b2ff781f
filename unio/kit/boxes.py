"""Lists of labelled boxes, shared by task plugins that answer with them: generated ids -> (box, label,
score) groups, non-maximum suppression, box fusion, COCO AP through pycocotools, and set matching at an IoU."""
from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field

import numpy as np

from unio.kit.metrics import box_iou


@dataclass
class Group:
    """One (box, label) group of an answer: local location ids, label ids, each id's log-probability."""
    location: list = field(default_factory=list)
    label: list = field(default_factory=list)
    logprobs: list = field(default_factory=list)

    @property
    def score(self) -> float:
        """The geometric mean of its tokens' probabilities (1 where they are unknown)."""
        return math.exp(sum(self.logprobs) / len(self.logprobs)) if self.logprobs else 1.0


def split_groups(ids, logprobs, vocab, location_range: str, size: int = 4, labelled: bool = True) -> list:
    """Global ids of repeated (`size` location tokens, label tokens) groups -> complete [Group]
    (`labelled=False`: groups of location tokens alone)."""
    start, stop = vocab.range(location_range).start, vocab.range(location_range).stop
    logprobs = list(logprobs) if logprobs is not None else [None] * len(ids)
    groups: list = []
    for token, logp in zip(ids, logprobs):
        is_location = start <= token < stop
        if is_location and (not groups or groups[-1].label or len(groups[-1].location) == size):
            groups.append(Group())
        if not groups:
            continue                                  # label tokens before any box: not a group
        group = groups[-1]
        (group.location if is_location else group.label).append(token - start if is_location else token)
        if logp is not None:
            group.logprobs.append(logp)
    return [g for g in groups if len(g.location) == size and (g.label or not labelled)]


def nms(boxes, scores, labels=None, iou: float = 0.5) -> list:
    """Indices kept by greedy non-maximum suppression, best score first; per label when `labels` is given."""
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    kept: list = []
    for i in order:
        if all(box_iou(boxes[i], boxes[j]) <= iou for j in kept if labels is None or labels[i] == labels[j]):
            kept.append(i)
    return kept


def fused_boxes(boxes: list, iou: float = 0.5) -> list:
    """Each box replaced by the median of its cluster, for boxes that several answers (samples, an ensemble)
    give the same objects: a box joins the first cluster whose first box it overlaps at IoU >= `iou`, in
    order (box fusion, as Weighted Boxes Fusion does with a weighted mean)."""
    firsts: list = []
    members: list = []
    cluster = []
    for box in boxes:
        k = next((k for k, first in enumerate(firsts) if box_iou(first, box) >= iou), len(firsts))
        if k == len(firsts):
            firsts.append(box)
            members.append([])
        members[k].append(box)
        cluster.append(k)
    medians = [np.median(np.asarray(m, dtype=float), axis=0).tolist() for m in members]
    return [medians[k] for k in cluster]


def coco_ap(gold: list, predicted: list) -> dict:
    """COCO AP, AP50, AP75 and AR@100 by pycocotools' COCOeval. `gold`: per image [(box, label)];
    `predicted`: per image [(box, label, score)]; boxes (x1, y1, x2, y2) in pixels. Predicted labels
    that no gold box has are categories without gold, which COCOeval leaves out of its means."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    names = sorted({label for boxes in gold for _, label in boxes} | {label for boxes in predicted for _, label, _ in boxes})
    cat = {name: i + 1 for i, name in enumerate(names)}
    annotations = [dict(image_id=i, category_id=cat[label], bbox=_xywh(box), area=_area(box), iscrowd=0)
                   for i, boxes in enumerate(gold) for box, label in boxes]
    for n, annotation in enumerate(annotations):
        annotation["id"] = n + 1
    results = [dict(image_id=i, category_id=cat[label], bbox=_xywh(box), score=float(score))
               for i, boxes in enumerate(predicted) for box, label, score in boxes]
    if not annotations or not results:
        return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0, "ar100": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {"images": [{"id": i} for i in range(len(gold))], "annotations": annotations,
                         "categories": [{"id": c, "name": n} for n, c in cat.items()]}
        truth.createIndex()
        evaluator = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [max(0.0, float(s)) for s in evaluator.stats]
    return {"ap": stats[0], "ap50": stats[1], "ap75": stats[2], "ar100": stats[8]}


def match(gold: list, predicted: list, iou: float = 0.5) -> int:
    """How many predicted boxes match a distinct gold box at IoU >= `iou` (greedy, best IoU first)."""
    pairs = sorted(((box_iou(p, g), i, j) for i, p in enumerate(predicted) for j, g in enumerate(gold)), reverse=True)
    used_p, used_g = set(), set()
    for value, i, j in pairs:
        if value >= iou and i not in used_p and j not in used_g:
            used_p.add(i)
            used_g.add(j)
    return len(used_p)


def _xywh(box) -> list:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def _area(box) -> float:
    return max(0.0, float(box[2]) - float(box[0])) * max(0.0, float(box[3]) - float(box[1]))

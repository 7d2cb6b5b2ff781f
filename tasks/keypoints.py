"""Top-down keypoint estimation: 'Find the keypoints of the object in the region.' with the object's box
as `region=` -> K keypoints, each 3 tokens: y bin, x bin, visibility (COCO: 0 not labelled, 1 labelled
but hidden, 2 visible), always K of them (a fixed grammar, no EOS decisions).

Each layout fixes K, the points' names, the skeleton and (for OKS) the per-point sigmas; one task per
layout, both in this file, because a grammar is fixed per task:

    keypoints          the world's objects: K = 5, centre first, then the corners (cube, cylinder) or
                       vertices (sphere: top, right, bottom, left; cone: apex, right, left). A cone has 4
                       points; its 5th is padding, emitted with visibility 0 like any point without a label.
    person_keypoints   COCO-format sources: the 17 person keypoints with COCO's skeleton and sigmas.

A point without a label (v = 0: padding, outside the image, not annotated) is emitted as bins (0, 0) and
visibility 0, as COCO writes it (0, 0, 0), and trained like any other: leaving its bins out of the loss
made the model emit bins it never saw before the visibility token, which then came out wrong.
Metrics, in original pixels: PCK@0.1 and @0.05 (a labelled point within that fraction of its object's
longer box side), visibility accuracy; OKS AP / AP50 / AP75 by pycocotools' COCOeval (iouType
'keypoints', the layout's sigmas) where the layout has sigmas.
"""
from __future__ import annotations

import contextlib
import io
import math

import numpy as np
from PIL import ImageDraw

from unio.kit.answers import LocationAnswer, baseline, location_tokenizer, through_tokens
from unio.kit.metrics import pck
from unio.registries import register_task
from unio.task import Example, Grammar, Segment, choose_prompt, pick

COCO_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
              "right_knee", "left_ankle", "right_ankle")
COCO_SKELETON = ((16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
                 (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7))   # 1-based, as COCO's
COCO_SIGMAS = tuple(s / 10 for s in (.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87,
                                     .89, .89))
WORLD_NAMES = ("centre", "corner 1", "corner 2", "corner 3", "corner 4")
WORLD_SKELETON = ((2, 3), (3, 4), (4, 5), (5, 2))       # the outline through the corners / vertices


DECODINGS = ("likeliest", "expected")
EXPECTED_WINDOW = 2   # bins either side of the decoded one that "expected" reads (chosen on validation, session 53)


class Keypoints(LocationAnswer):
    output = "keypoints"
    requires = ("image", "objects")
    photometric = ("brightness", "contrast", "saturation", "hue")   # no answer names a colour
    headline = "pck@0.1"
    hub_task = "keypoint-detection"
    uses_token_logprobs = True          # an answer's score (for OKS AP) is its tokens' geometric mean probability

    def __init__(self, name: str, prompts, names, skeleton=(), sigmas=None, thing: str = "object",
                 decoding: str = "likeliest"):
        if decoding not in DECODINGS:
            raise ValueError(f"keypoints decoding must be one of {', '.join(DECODINGS)}, got {decoding!r}")
        self.decoding = decoding                # "expected": each coordinate read below its bin (decode)
        self.uses_step_distributions = decoding == "expected"
        self.name, self.prompts, self.names = name, list(prompts), tuple(names)
        self.region_prompts = self.prompts     # every prompt asks about the object's box given as region=
        self.num_keypoints, self.skeleton = len(self.names), tuple(skeleton)
        self.sigmas = None if sigmas is None else np.asarray(sigmas, np.float64)
        if self.sigmas is not None and len(self.sigmas) != self.num_keypoints:
            raise ValueError(f"{len(self.sigmas)} sigmas for {self.num_keypoints} keypoints")
        self.thing = thing
        self.also_report = ("oks_ap",) if self.sigmas is not None else ("pck@0.05",)

    # -- examples and targets -------------------------------------------------------------------
    def example(self, record, rng) -> Example:
        candidates = [i for i, o in enumerate(record["objects"]) if self._labelled(o, record)]
        index = pick(candidates, rng, record, f"{self.thing} with labelled keypoints and a box")
        obj = record["objects"][index]
        points = [[float(x), float(y), int(v)] for x, y, v in obj["keypoints"]]
        points += [[0.0, 0.0, 0]] * (self.num_keypoints - len(points))
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng), points,
                       meta={"object": index, "box": list(obj["box"]), "shape": (obj.get("attributes") or {}).get("shape")},
                       region=list(obj["box"]))

    def _labelled(self, obj, record) -> bool:
        """Whether `obj` is a `thing` (any object, or a person: an object whose category is another is
        not asked about) with a box and at least one labelled keypoint."""
        points = obj.get("keypoints")
        if points is None or obj.get("box") is None or not any(int(p[2]) > 0 for p in points):
            return False
        if self.thing != "object" and obj.get("category", self.thing) != self.thing:
            return False
        if len(points) > self.num_keypoints:
            raise ValueError(f"an object of record {record.get('id', '?')!r} has {len(points)} keypoints; task "
                             f"{self.name!r} answers with {self.num_keypoints} ({', '.join(self.names)})")
        return True

    def point_ids(self, points, coords, width: float, height: float) -> list:
        """K points [x, y, v] -> 3K local ids: y bin, x bin, visibility ((0, 0, 0) for a point without a label)."""
        ids = []
        for k, (x, y, v) in enumerate(points):
            if v and not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(f"keypoint {k} ({x}, {y}, {v}) has a NaN or infinite coordinate")
            ids += [coords.quantise(y, height) if v else 0, coords.quantise(x, width) if v else 0,
                    coords.visibility_id(int(v))]
        return ids

    def targets(self, examples, mods):
        name = location_tokenizer(mods)
        out = []
        for ex in examples:
            h, w = ex.image.shape[:2]
            out.append(mods.vocab.to_global(name, self.point_ids(ex.target, mods[name], w, h)))
        return out

    def grammar(self, mods, image_size: int) -> Grammar:
        name = location_tokenizer(mods)
        bins = mods[name].num_bins
        point = (Segment(name, 2, 2, local=(0, bins)), Segment(name, 1, 1, local=(bins, bins + 3)))
        return Grammar(point * self.num_keypoints)

    # -- answers -----------------------------------------------------------------------------
    def decode(self, ids, mods, example, logprobs=None, distributions=None) -> dict:
        """{keypoints: K [x, y, v] in the model's frame, score}; a point given visibility 0 keeps its position.
        With `decoding="expected"` and each step's distribution (L, V), a labelled point's coordinates are the
        mean bin near the decoded one (CoordinateTokenizer.dequantise_expected)."""
        name, (h, w) = location_tokenizer(mods), example.image.shape[:2]
        coords, local = mods[name], mods.vocab.to_local(name, ids)
        bins = mods.vocab.to_global(name, list(range(coords.num_bins))) if distributions is not None else None
        points = []
        for k in range(self.num_keypoints):
            y, x, v = (local[3 * k: 3 * k + 3] + [0, 0, coords.num_bins])[:3]
            v = v - coords.num_bins if v >= coords.num_bins else 0
            y, x = min(y, coords.num_bins - 1), min(x, coords.num_bins - 1)
            if bins is not None and v and len(distributions) > 3 * k + 1:
                points.append([coords.dequantise_expected(distributions[3 * k + 1][bins], w, x, EXPECTED_WINDOW),
                               coords.dequantise_expected(distributions[3 * k][bins], h, y, EXPECTED_WINDOW), int(v)])
                continue
            points.append([coords.dequantise(x, w), coords.dequantise(y, h), int(v)])
        score = math.exp(sum(logprobs) / len(logprobs)) if logprobs else 1.0
        return {"keypoints": points, "score": score}

    def to_original(self, prediction, frame) -> dict:
        return {**prediction, "keypoints": [list(frame.point_to_original(p)) for p in prediction["keypoints"]]}

    def to_result(self, prediction) -> dict:
        return {"keypoints": prediction["keypoints"], "names": list(self.names), "skeleton": list(self.skeleton)}

    def draw(self, result):
        """Keypoints and skeleton over the image: visible points filled, hidden ones hollow."""
        from unio.kit.drawing import draw_result
        image = draw_result(result)
        draw, points = ImageDraw.Draw(image), result.keypoints or []
        r = max(1.5, image.width / 40)
        for a, b in self.skeleton:
            if max(a, b) <= len(points) and points[a - 1][2] and points[b - 1][2]:
                draw.line([tuple(points[a - 1][:2]), tuple(points[b - 1][:2])], fill=(0, 255, 255), width=1)
        for x, y, v in points:
            if v:
                draw.ellipse([x - r, y - r, x + r, y + r], outline=(255, 0, 255),
                             fill=(255, 0, 255) if v == 2 else None)
        return image

    # -- metrics -----------------------------------------------------------------------------
    def gold(self, example) -> tuple:
        """(K [x, y, v], box, area) in the original image's pixels."""
        if example.record is not None and example.record.get("objects"):
            obj = example.record["objects"][example.meta["object"]]
            points = [[float(x), float(y), int(v)] for x, y, v in obj["keypoints"]]
            points += [[0.0, 0.0, 0]] * (self.num_keypoints - len(points))
            area = (obj.get("attributes") or {}).get("area")
            if area is None and obj.get("mask") is not None:
                area = float(np.asarray(obj["mask"], bool).sum())
            box = list(obj["box"])
        else:
            frame = example.frame
            points = [list(frame.point_to_original(p)) if frame else p for p in example.target]
            box = frame.box_to_original(example.meta["box"]) if frame else example.meta["box"]
            area = None
        return points, box, float(area if area is not None else (box[2] - box[0]) * (box[3] - box[1]))

    def evaluate(self, predictions, examples) -> dict:
        gold = [self.gold(ex) for ex in examples]
        predicted = [p["keypoints"] for p in predictions]
        metrics = {"pck@0.1": pck(predicted, gold, 0.1), "pck@0.05": pck(predicted, gold, 0.05),
                   "visibility_acc": float(np.mean([int(p[2]) == int(g[2]) for ps, (gs, _, _) in zip(predicted, gold)
                                                    for p, g in zip(ps, gs)]))}
        shapes = sorted({ex.meta.get("shape") for ex in examples} - {None})
        for shape in shapes:
            idx = [i for i, ex in enumerate(examples) if ex.meta.get("shape") == shape]
            metrics[f"pck@0.1_{shape}"] = pck([predicted[i] for i in idx], [gold[i] for i in idx], 0.1)
        if self.sigmas is not None:
            metrics.update(oks_ap(gold, [(p["keypoints"], p.get("score", 1.0)) for p in predictions], self.sigmas))
        return metrics

    def baselines(self):
        return {"mean_relative": _MeanRelative, "token_ceiling": baseline(through_tokens(self))}   # the bins' ceiling


def oks_ap(gold, predicted, sigmas) -> dict:
    """OKS AP, AP50, AP75 by pycocotools' COCOeval (iouType 'keypoints') with `sigmas`. One "image" per
    object (top-down: each object is asked for with its box). `gold`: [(K [x, y, v], box, area)];
    `predicted`: [(K [x, y, v], score)]; pixels."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    annotations, results = [], []
    for i, ((points, box, area), (guess, score)) in enumerate(zip(gold, predicted)):
        x1, y1, x2, y2 = box
        annotations.append(dict(id=i + 1, image_id=i, category_id=1, iscrowd=0, area=float(area),
                                bbox=[x1, y1, x2 - x1, y2 - y1], keypoints=[float(c) for p in points for c in p],
                                num_keypoints=int(sum(p[2] > 0 for p in points))))
        results.append(dict(image_id=i, category_id=1, score=float(score),
                            keypoints=[float(c) for p in guess for c in (p[0], p[1], 1)]))
    if not any(a["num_keypoints"] for a in annotations):
        return {"oks_ap": 0.0, "oks_ap50": 0.0, "oks_ap75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {"images": [{"id": i} for i in range(len(gold))], "annotations": annotations,
                         "categories": [{"id": 1, "name": "object", "keypoints": [str(k) for k in range(len(sigmas))]}]}
        truth.createIndex()
        evaluator = COCOeval(truth, truth.loadRes(results), "keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [max(0.0, float(s)) for s in evaluator.stats]
    return {"oks_ap": stats[0], "oks_ap50": stats[1], "oks_ap75": stats[2]}


class _MeanRelative:
    """Each keypoint at its mean position relative to the box (over labelled training points), with its
    most frequent visibility."""

    def __init__(self, train_examples, mods=None):
        k = len(train_examples[0].target)
        offsets, seen = [[] for _ in range(k)], [[] for _ in range(k)]
        for ex in train_examples:
            x1, y1, x2, y2 = ex.meta["box"]
            for j, (x, y, v) in enumerate(ex.target):
                seen[j].append(int(v))
                if v:
                    offsets[j].append(((x - x1) / max(x2 - x1, 1e-6), (y - y1) / max(y2 - y1, 1e-6)))
        self.offsets = [np.mean(o, axis=0) if o else np.array([0.5, 0.5]) for o in offsets]
        self.visibility = [int(np.bincount(s, minlength=3).argmax()) for s in seen]

    def __call__(self, example):
        x1, y1, x2, y2 = example.meta["box"]
        points = [[x1 + fx * (x2 - x1), y1 + fy * (y2 - y1), v] for (fx, fy), v in zip(self.offsets, self.visibility)]
        return {"keypoints": points, "score": 1.0}


class WorldKeypoints(Keypoints):
    """The world's objects' 5 points. Option `decoding` ("likeliest": each coordinate its decoded bin's
    centre; "expected": read below the bin, from the step's distribution near it)."""

    def __init__(self, decoding: str = "likeliest"):
        super().__init__("keypoints", ["Find the keypoints of the object in the region.",
                                       "Locate the keypoints of the object in the region.",
                                       "Where are the keypoints of the object in the region?"],
                         WORLD_NAMES, WORLD_SKELETON, decoding=decoding)


class PersonKeypoints(Keypoints):
    """COCO's 17 person keypoints, with its skeleton and OKS sigmas. Option `decoding`, as WorldKeypoints'."""

    def __init__(self, decoding: str = "likeliest"):
        super().__init__("person_keypoints", ["Find the keypoints of the person in the region.",
                                              "Locate the keypoints of the person in the region.",
                                              "Where are the keypoints of the person in the region?"],
                         COCO_NAMES, COCO_SKELETON, COCO_SIGMAS, thing="person", decoding=decoding)


register_task(WorldKeypoints())
register_task(PersonKeypoints())


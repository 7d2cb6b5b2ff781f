"""Detection and class-conditioned detection: targets, the repeated-group grammar, scores, NMS, empty
answers, COCO AP against pycocotools' own, and a tiny model that overfits a batch of boxes."""
import contextlib
import io

import numpy as np
import pytest
import torch
from conftest import overfit, world_examples

from unio.data.batching import Collator
from unio.data.records import make_example
from unio.infer.pipeline import generate_answers
from unio.kit.boxes import coco_ap, match, nms, split_groups
from unio.kit.images import Frame
from unio.model import UnioModel
from unio.model.decoding import generate_constrained, strip_answer
from unio.registries import TASKS
from unio.vocab import EOS


def detection_examples(n=6, split="train"):
    return world_examples(TASKS.get("detection"), split, n, 32)


def empty_example():
    """A record with nothing in it: a blank image, no objects."""
    record = {"image": np.full((32, 32, 3), 90, np.uint8), "objects": [], "id": "empty"}
    return make_example(TASKS.get("detection"), record, 32, np.random.default_rng(0))


def test_targets_parse_and_decode_to_the_gold_objects(modalities):
    task = TASKS.get("detection")
    exs = detection_examples() + [empty_example()]
    half_bin = 32 / (2 * modalities["coordinates"].num_bins)
    grammar = task.grammar(modalities, 32)
    for ex, ids in zip(exs, task.targets(exs, modalities)):
        assert grammar.accepts(ids + [EOS], modalities.vocab)
        decoded = task.decode(ids, modalities, ex)
        gold = sorted(ex.target, key=lambda o: o[0])
        got = sorted(zip(decoded["boxes"], decoded["labels"]), key=lambda o: o[0])
        assert [label for _, label in got] == [label for _, label in gold]
        for (box, _), (gold_box, _) in zip(got, gold):
            assert np.abs(np.array(box) - gold_box).max() <= half_bin + 1e-9


def test_empty_image_gives_an_empty_list(modalities):
    task = TASKS.get("detection")
    ex = empty_example()
    assert ex.target == [] and task.targets([ex], modalities) == [[]]
    assert task.grammar(modalities, 32).accepts([EOS], modalities.vocab)
    assert task.decode([], modalities, ex) == {"boxes": [], "labels": [], "scores": []}


def test_training_order_is_left_to_right_by_default_and_random_when_asked():
    other, task = TASKS.get("detection"), type(TASKS.get("detection"))(order="random")
    objects = [([x, 0, x + 5, 5], f"o{x}") for x in (20, 0, 10)]
    orders = {tuple(label for _, label in task.ordered(objects, np.random.default_rng(s))) for s in range(20)}
    assert len(orders) > 1
    assert [label for _, label in other.ordered(objects, np.random.default_rng(0))] == ["o0", "o10", "o20"]
    with pytest.raises(ValueError, match="order"):
        type(task)(order="alphabetical")


@pytest.mark.parametrize("name", ["detection", "find_all"])
def test_every_generated_answer_parses(modalities, tiny_config, name):
    """Untrained weights, greedy / sampling / beams: every answer is whole (box, label) groups."""
    torch.manual_seed(0)
    task = TASKS.get(name)
    model = UnioModel(tiny_config).eval()
    exs = world_examples(task, "test", 3, 32)
    inputs = {k: v for k, v in Collator({name: task}, modalities, 48, 40)(exs).items() if k != "labels"}
    grammar = task.grammar(modalities, 32)
    for options in ({}, {"do_sample": True, "top_k": 50}, {"num_beams": 2}):
        for row, ex in zip(generate_constrained(model, inputs, grammar, modalities.vocab, **options).tolist(), exs):
            ids = strip_answer(row)
            assert grammar.accepts(ids + [EOS], modalities.vocab), row
            group = 4 + (name == "detection")        # at least a box and one label token
            assert len(task.decode(ids, modalities, ex)["boxes"]) <= len(ids) // group


def test_scores_come_from_the_tokens_probabilities(modalities, tiny_config):
    torch.manual_seed(0)
    task = TASKS.get("detection")
    answers = generate_answers(UnioModel(tiny_config), modalities, task, detection_examples(2, "test"))
    for answer in answers:
        assert len(answer.token_logprobs) == len(answer.ids) and all(p <= 0 for p in answer.token_logprobs)
        groups = split_groups(answer.ids, answer.token_logprobs, modalities.vocab, "coordinates")
        assert sorted(answer.prediction["scores"]) <= sorted(g.score for g in groups)
        assert all(0 < s <= 1 for s in answer.prediction["scores"])


def test_split_groups_keeps_whole_groups_only(modalities):
    vocab = modalities.vocab
    loc, text = vocab.range("coordinates").start, vocab.range("text").start
    ids = [loc + 1, loc + 2, loc + 3, loc + 4, text + 7, text + 8, loc + 5, loc + 6]    # a group, then half a box
    groups = split_groups(ids, [-0.1] * len(ids), vocab, "coordinates")
    assert len(groups) == 1 and groups[0].location == [1, 2, 3, 4] and groups[0].label == [text + 7, text + 8]
    assert groups[0].score == pytest.approx(np.exp(-0.1))
    boxes = split_groups([loc + i for i in range(9)], None, vocab, "coordinates", labelled=False)
    assert [g.location for g in boxes] == [[0, 1, 2, 3], [4, 5, 6, 7]] and boxes[0].score == 1.0


def test_nms_by_hand():
    boxes = [[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 9]]
    scores = [0.5, 0.9, 0.4, 0.3]
    assert nms(boxes, scores, iou=0.5) == [1, 2]                 # 0 and 3 overlap the best box
    assert nms(boxes, scores, ["a", "b", "a", "a"], iou=0.5) == [1, 0, 2]   # per label: 0 is not b
    assert nms(boxes, scores, iou=0.95) == [1, 0, 2, 3]


def pycocotools_reference(gold, predicted):
    """The same evaluation written straight against pycocotools' JSON API, category ids by hand."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    cats = {"cube": 1, "cone": 2}
    anns = [{"id": k + 1, "image_id": i, "category_id": cats[c], "bbox": [x1, y1, x2 - x1, y2 - y1],
             "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
            for k, (i, (x1, y1, x2, y2), c) in enumerate((i, b, c) for i, g in enumerate(gold) for b, c in g)]
    dets = [{"image_id": i, "category_id": cats[c], "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s}
            for i, p in enumerate(predicted) for (x1, y1, x2, y2), c, s in p]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": [{"id": i} for i in range(len(gold))], "annotations": anns,
                      "categories": [{"id": v, "name": k} for k, v in cats.items()]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return ev.stats


def test_coco_ap_equals_pycocotools_on_a_hand_made_case():
    gold = [[([0, 0, 10, 10], "cube"), ([20, 20, 40, 40], "cone")], [([5, 5, 25, 25], "cube")]]
    predicted = [[([0, 0, 10, 10], "cube", 0.9), ([21, 21, 40, 42], "cone", 0.8), ([50, 50, 60, 60], "cube", 0.95)],
                 [([6, 5, 25, 28], "cube", 0.7)]]
    ours, theirs = coco_ap(gold, predicted), pycocotools_reference(gold, predicted)
    assert ours["ap"] == pytest.approx(theirs[0]) and ours["ap50"] == pytest.approx(theirs[1])
    assert ours["ap75"] == pytest.approx(theirs[2]) and ours["ar100"] == pytest.approx(theirs[8])
    # by hand: one gold box of two found, exactly -> precision 1 up to recall 0.5 on COCO's 101 points
    half = coco_ap([[([0, 0, 10, 10], "cube"), ([20, 20, 30, 30], "cube")]], [[([0, 0, 10, 10], "cube", 1.0)]])
    assert half["ap50"] == pytest.approx(51 / 101) and half["ar100"] == pytest.approx(0.5)
    assert coco_ap(gold, [[], []])["ap"] == 0.0


def test_detection_metrics_and_prior_baseline(modalities):
    task = TASKS.get("detection")
    exs = detection_examples(8, "test")
    perfect = [task.to_original(task.decode(ids, modalities, ex), ex.frame)
               for ex, ids in zip(exs, task.targets(exs, modalities))]
    assert task.evaluate(perfect, exs)["ap50"] == pytest.approx(1.0)
    prior = task.baselines()["prior"](detection_examples(50), modalities)
    assert task.evaluate([prior(ex) for ex in exs], exs)["ap50"] < 0.3


def test_tiny_model_overfits_a_batch_of_detection_targets(modalities, tiny_config):
    """Lists of (box, label) groups, and an empty image, learnt: greedy decoding gives them back."""
    torch.manual_seed(0)
    task = TASKS.get("detection")
    exs = detection_examples(3) + [empty_example()]
    model = UnioModel(tiny_config)
    batch = Collator({"detection": task}, modalities, 48, 40)(exs)
    loss = overfit(model, batch, 200)
    assert loss < 0.05, loss
    predictions = [a.prediction for a in generate_answers(model, modalities, task, exs)]
    assert predictions[-1]["boxes"] == []
    for ex, pred in zip(exs[:-1], predictions):
        assert sorted(pred["labels"]) == sorted(label for _, label in ex.target)
        assert match([b for b, _ in ex.target], pred["boxes"], iou=0.5) == len(ex.target)   # half-bin shifts


# -- class-conditioned detection ---------------------------------------------------------------
def scene(*objects):
    """A record of objects given as (size, color, shape, box)."""
    return {"image": np.zeros((32, 32, 3), np.uint8), "id": "hand", "objects": [
        {"box": box, "category": f"{s} {c} {sh}", "attributes": {"size": s, "color": c, "shape": sh}}
        for s, c, sh, box in objects]}


@pytest.mark.parametrize("query,expected", [({"color": "green", "shape": "cone"}, 0),
                                            ({"color": "blue", "shape": "sphere"}, 1),
                                            ({"color": "red", "shape": "cube"}, 2), ({"color": "red"}, 2),
                                            ({"category": "small red cube"}, 1)])
def test_find_all_returns_every_match_or_none(modalities, query, expected):
    task = TASKS.get("find_all")
    record = scene(("small", "red", "cube", [20, 2, 28, 10]), ("large", "red", "cube", [2, 2, 12, 12]),
                   ("small", "blue", "sphere", [14, 14, 20, 20]))
    ex = task.for_query(record, query, np.random.default_rng(0))
    assert len(ex.target) == expected == ex.meta["matches"]
    assert ex.target == sorted(ex.target)                    # left to right
    ids = task.targets([ex], modalities)[0]
    assert len(ids) == 4 * expected and task.grammar(modalities, 32).accepts(ids + [EOS], modalities.vocab)
    assert len(task.decode(ids, modalities, ex)["boxes"]) == expected


def test_find_all_asks_for_absent_things_too():
    task = TASKS.get("find_all")
    exs = world_examples(task, "test", 60, 32)
    absent = [ex for ex in exs if ex.meta["matches"] == 0]
    assert 0.1 < len(absent) / len(exs) < 0.5 and any(ex.meta["matches"] > 1 for ex in exs)


def test_find_all_metrics_by_hand():
    task = TASKS.get("find_all")
    frame = Frame(32, 32, 32)
    exs = [make_example(task, scene(("small", "red", "cube", [0, 0, 10, 10]), ("large", "red", "cube", [20, 20, 30, 30])),
                        32, np.random.default_rng(0)) for _ in range(3)]
    exs[0].target, exs[1].target, exs[2].target = [[0, 0, 10, 10], [20, 20, 30, 30]], [[0, 0, 10, 10]], []
    for ex in exs:
        ex.frame = frame
    predictions = [{"boxes": [[0, 0, 10, 10], [5, 5, 8, 8]]}, {"boxes": [[1, 0, 10, 10]]}, {"boxes": [[0, 0, 4, 4]]}]
    result = task.evaluate(predictions, exs)
    assert result["precision"] == pytest.approx(2 / 3) and result["recall"] == pytest.approx(2 / 3)
    assert result["recall_one"] == 1.0 and result["recall_several"] == 0.5 and result["fp_rate_absent"] == 1.0
    assert result[f"fp_rate_absent_{exs[2].meta['form']}"] == 1.0


def test_find_all_false_positives_by_the_form_of_the_query():
    """fp_rate_absent for each form of absent query: which attributes it names."""
    task = TASKS.get("find_all")
    record = scene(("small", "red", "cube", [0, 0, 10, 10]))
    queries = [{"shape": "cone"}, {"shape": "sphere"}, {"color": "blue"}, {"size": "large", "shape": "cube"}]
    exs = [task.for_query(record, q, np.random.default_rng(0)) for q in queries]
    assert [ex.meta["form"] for ex in exs] == ["shape", "shape", "color", "size_shape"] and not any(ex.target for ex in exs)
    result = task.evaluate([{"boxes": [[0, 0, 10, 10]]}, {"boxes": []}, {"boxes": []}, {"boxes": [[0, 0, 10, 10]]}], exs)
    assert result["fp_rate_absent"] == 0.5 and result["fp_rate_absent_shape"] == 0.5
    assert result["fp_rate_absent_color"] == 0.0 and result["fp_rate_absent_size_shape"] == 1.0


def test_stop_by_mass_weighs_eos_against_every_continuation():
    from unio.infer.pipeline import StopByMass
    lowest = torch.finfo(torch.float32).min
    # row 0: EOS 0.3 beats each of 7 boxes' 0.1 but not all of them together -> goes on
    # row 1: EOS 0.65 -> ends; row 2: EOS not allowed (masked) -> untouched
    probs = torch.tensor([[0.3] + [0.1] * 7, [0.65] + [0.05] * 7, [0.0] + [1 / 7] * 7])
    scores = probs.log()
    scores[2, EOS] = lowest
    perm = list(range(8))
    perm[0], perm[EOS] = perm[EOS], perm[0]          # put column 0 at the EOS id
    scores = scores[:, perm]
    out = StopByMass()(None, scores)
    assert out[0, EOS] == lowest and (out[0] > lowest).sum() == 7
    assert out[1].argmax() == EOS and (out[1] > lowest).sum() == 1
    assert torch.equal(out[2], scores[2])


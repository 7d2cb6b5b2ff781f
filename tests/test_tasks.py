"""Task plugins: gold round trips through tokens, metrics against hand-computed references."""
import sys
from collections import Counter

import numpy as np
import pytest
from conftest import world_examples

from unio.kit.answers import box_to_ids, listed_ids, location_tokenizer
from unio.kit.metrics import box_iou, depth_errors
from unio.registries import TASKS
from unio.task import Grammar, Segment
from unio.vocab import EOS


def examples(name, n=20, resolution=32):
    return list(world_examples(TASKS.get(name), "train", n, resolution))


@pytest.mark.parametrize("name", ["vqa", "caption", "count"])
def test_text_tasks_round_trip(modalities, name):
    task = TASKS.get(name)
    exs = examples(name)
    for ex, ids in zip(exs, task.targets(exs, modalities)):
        assert task.grammar(modalities, 32).accepts(ids + [EOS], modalities.vocab)
        assert task.decode(ids, modalities, ex) == ex.target


def test_refexp_round_trip_within_quantisation(modalities):
    task = TASKS.get("refexp")
    exs = examples("refexp")
    half_bin = 32 / (2 * modalities["coordinates"].num_bins)
    for ex, ids in zip(exs, task.targets(exs, modalities)):
        assert len(ids) == 4 and task.grammar(modalities, 32).accepts(ids + [EOS], modalities.vocab)
        assert np.abs(np.array(task.decode(ids, modalities, ex)) - ex.target).max() <= half_bin + 1e-9


def test_depth_round_trip_equals_vq_ceiling(modalities):
    task = TASKS.get("depth")
    exs = examples("depth", n=4)
    ceiling = task.baselines()["vq_ceiling"](exs, modalities)
    for ex, ids in zip(exs, task.targets(exs, modalities)):
        assert len(ids) == 16 and task.grammar(modalities, 32).accepts(ids + [EOS], modalities.vocab)
        decoded = task.decode(ids, modalities, ex)
        assert decoded.shape == ex.target.shape
        assert np.allclose(decoded, ceiling(ex), atol=1e-4)


def test_vqa_normalisation_and_accuracy():
    from importlib import import_module

    from unio.kit.vqa_metric import normalize_answer
    vqa = import_module(type(TASKS.get("vqa")).__module__)
    assert normalize_answer("Two") == "2"
    assert normalize_answer("the red cube.") == "red cube"
    assert normalize_answer("yes!") == "yes"
    assert normalize_answer("dont") == "don't"
    assert vqa.vqa_accuracy("2", ["two"]) == 1.0
    # several references: the official mean over leave-one-out subsets of min(1, matches / 3)
    assert vqa.vqa_accuracy("red", ["red", "red", "blue", "red"]) == pytest.approx((3 * 2 / 3 + 1) / 4)
    assert vqa.vqa_accuracy("blue", ["red", "red", "blue", "red"]) == pytest.approx(3 * (1 / 3) / 4)
    assert vqa.vqa_accuracy("green", ["red"]) == 0.0


def test_vqa_evaluate_by_type():
    task = TASKS.get("vqa")
    exs = examples("vqa", n=10)
    result = task.evaluate([ex.target for ex in exs], exs)
    assert result["accuracy"] == 1.0
    wrong = task.evaluate(["zebra"] * len(exs), exs)
    assert wrong["accuracy"] == 0.0


def test_vqa_spatial_share_asks_spatial_questions_in_training_only():
    vqa = type(TASKS.get("vqa"))
    plain = examples("vqa", n=40)
    default_rng = np.random.default_rng(0)
    assert all(vqa().for_training(ex, default_rng) is ex for ex in plain)   # the default: unchanged,
    assert default_rng.random() == np.random.default_rng(0).random()       # and no random number drawn
    spatial = list(world_examples(vqa(spatial=1.0), "train", 40, 32))
    assert [ex.prompt for ex in spatial] == [ex.prompt for ex in plain]     # evaluation's examples keep their mix
    having = sum(bool(ex.meta["spatial"]) for ex in spatial)      # images with two objects it can name apart
    rng = np.random.default_rng(1)
    trained = [vqa(spatial=1.0).for_training(ex, rng) for ex in spatial]
    assert sum(ex.meta["type"] == "spatial" for ex in plain) < len(plain) / 4
    asked = [ex for ex in trained if ex.meta["type"] == "spatial"]
    assert len(asked) == having > len(trained) / 2 and all(" left of " in ex.prompt for ex in asked)
    assert all(ex.target == ex.meta["answers"][0] in ("yes", "no") for ex in asked)
    assert all("spatial" not in ex.meta for ex in trained)
    with pytest.raises(ValueError, match="share of training examples that ask a spatial question"):
        vqa(spatial=1.5)


def test_vqa_ground_says_the_two_boxes_before_a_spatial_answer(modalities):
    vqa = type(TASKS.get("vqa"))(ground=True)
    exs = list(world_examples(vqa, "train", 200, 64))
    spatial = [ex for ex in exs if ex.meta["type"] == "spatial"]
    assert spatial and all(len(ex.meta["boxes"]) == 2 for ex in spatial)
    assert all(ex.meta["boxes"] == [] for ex in exs if ex.meta["type"] != "spatial")
    grammar = vqa.grammar(modalities, 64)
    for ex, ids in zip(exs, vqa.targets(exs, modalities)):
        boxes = len(ex.meta["boxes"])
        assert len(ids) == 4 * boxes + len(modalities.text_ids(ex.target))
        assert modalities.vocab.owner(ids[0]) == (location_tokenizer(modalities) if boxes else modalities.prompt_name)
        assert grammar.accepts(ids + [EOS], modalities.vocab) and vqa.decode(ids, modalities, ex) == ex.target
    # the boxes are the named objects': the subject's centre left of the object's where the answer is yes
    left = [(a[0] + a[2]) < (b[0] + b[2]) for a, b in (ex.meta["boxes"] for ex in spatial)]
    agree = np.mean([said == (ex.target == "yes") for said, ex in zip(left, spatial)])
    assert agree >= 0.9     # the world decides by the centre column; an occluded box can shift its visible centre
    plain = type(TASKS.get("vqa"))()
    assert plain.targets(exs, modalities) == [modalities.text_ids(ex.target) for ex in exs]


def test_itm_ground_lists_the_objects_as_detection_does_before_yes_or_no(modalities):
    itm, detection = type(TASKS.get("itm"))(ground="detection"), TASKS.get("detection")
    exs = list(world_examples(itm, "train", 40, 64))
    listed = list(world_examples(detection, "train", 40, 64))
    grammar = itm.grammar(modalities, 64)
    for ex, ids, det, det_ids in zip(exs, itm.targets(exs, modalities), listed, detection.targets(listed, modalities)):
        assert ex.meta["objects"] == det.target       # the same records in the same order: detection's own list
        assert ids == det_ids + modalities.text_ids(ex.target) and ex.target in ("yes", "no")
        assert grammar.accepts(ids + [EOS], modalities.vocab)
        assert itm.decode(modalities.text_ids(ex.target), modalities, ex) == ex.target
    assert grammar.first_range == location_tokenizer(modalities)
    plain = TASKS.get("itm")
    assert plain.targets(exs, modalities) == [modalities.text_ids(ex.target) for ex in exs]
    with pytest.raises(ValueError, match="ground is one of False, 'detection'"):
        type(plain)(ground="refexp")
    with pytest.raises(ValueError, match="not both"):
        type(plain)(ground="detection", via="detection")


def test_itm_verdicts_check_each_caption_object_against_the_list_before_the_answer(modalities):
    """itm.verdicts: after detection's list, each caption object's verdict ("yes" where the list holds one more of
    it), then the answer; the answer is the last word decoded, and the verdicts agree with it."""
    module = sys.modules[type(TASKS.get("itm")).__module__]
    parse, verdict_text = module.parse, module.verdict_text
    itm = type(TASKS.get("itm"))(ground="detection", verdicts=True)
    plain_ground = type(TASKS.get("itm"))(ground="detection")
    exs = [itm.for_training(ex, np.random.default_rng(i)) for i, ex in enumerate(world_examples(itm, "train", 60, 64))]
    grammar = itm.grammar(modalities, 64)
    kinds = set()
    for ex, ids, listed in zip(exs, itm.targets(exs, modalities), plain_ground.targets(exs, modalities)):
        prefix = listed[:-len(modalities.text_ids(ex.target))]
        said = verdict_text(parse(ex.meta["text"]), [label for _, label in ex.meta["objects"]], ex.target)
        assert ids == prefix + modalities.text_ids(said) and grammar.accepts(ids + [EOS], modalities.vocab)
        assert itm.decode(ids, modalities, ex) == ex.target
        verdicts = [part.rsplit(" ", 1)[1] for part in said.split(";")[0].split(", ")]
        if ex.target == "yes":
            assert set(verdicts) == {"yes"}
        elif ex.meta["kind"] in ("size", "color", "shape"):
            assert verdicts.count("no") == 1     # the one changed object
        kinds.add(ex.meta["kind"])
    assert {"positive", "color", "count"} <= kinds and itm.answer_options(exs[0]) is None
    # a repeated object beyond the image's count is a "no"; an object the caption leaves out makes the answer "no"
    assert verdict_text([["large", "red", "cube"]] * 2, ["large red cube"], "no") == "large red cube yes, large red cube no; no"
    assert verdict_text([["large", "red", "cube"]], ["large red cube", "small blue cone"], "no") == "large red cube yes; no"
    assert verdict_text(None, ["large red cube"], "yes") == "yes"
    with pytest.raises(ValueError, match="needs ground='detection'"):
        type(itm)(verdicts=True)


def test_itm_list_noise_misnames_one_listed_object_and_the_answer_follows_the_list(modalities):
    """itm.list_noise: one listed object's label changes; the answer and verdicts are the misnamed list's (a one-object
    attribute negative becomes "yes", a positive "no"); the changed label's tokens are left out of the loss."""
    module = sys.modules[type(TASKS.get("itm")).__module__]
    noisy = type(TASKS.get("itm"))(ground="detection", verdicts=True, list_noise=1.0)
    exs = list(world_examples(noisy, "train", 80, 64))
    gold = [(list(ex.meta["objects"]), ex.target, ex.meta["kind"]) for ex in exs]
    rng, answers = np.random.default_rng(0), Counter()
    out = [noisy.for_training(ex, rng) for ex in exs]
    for ex, (objects, answer, kind), ids in zip(out, gold, noisy.targets(out, modalities)):
        k = ex.meta["misnamed"]
        assert [i for i, (a, b) in enumerate(zip(objects, ex.meta["objects"])) if a != tuple(b)] == [k]
        listed = Counter(label for _, label in ex.meta["objects"])
        assert ex.target == ("yes" if Counter(" ".join(o) for o in module.parse(ex.meta["text"])) == listed else "no")
        if kind in ("positive", "count"):
            assert ex.target == "no"
        answers[kind, ex.target] += 1
        label = modalities.text_ids(ex.meta["objects"][k][1])
        assert [ids[j] for j in ids.ignored] == label
        said = module.verdict_text(module.parse(ex.meta["text"]), list(listed.elements()), ex.target)
        assert ids[len(listed_ids(ex.meta["objects"], modalities, ex)):] == modalities.text_ids(said)
    assert answers["positive", "no"] > 10 and sum(v for (kind, a), v in answers.items() if a == "yes") > 10
    with pytest.raises(ValueError, match="needs ground"):
        type(noisy)(list_noise=0.3)


def test_find_all_ground_lists_the_objects_as_detection_does_before_the_boxes_it_names(modalities):
    find_all, detection = type(TASKS.get("find_all"))(ground="detection"), TASKS.get("detection")
    exs = list(world_examples(find_all, "train", 40, 64))
    listed = list(world_examples(detection, "train", 40, 64))
    grammar, half_bin = find_all.grammar(modalities, 64), 64 / (2 * modalities["coordinates"].num_bins)
    plain = TASKS.get("find_all")
    assert any(not ex.target for ex in exs) and any(ex.target for ex in exs)
    for ex, ids, det, det_ids, own in zip(exs, find_all.targets(exs, modalities), listed,
                                          detection.targets(listed, modalities), plain.targets(exs, modalities)):
        assert ex.meta["objects"] == det.target and ids == det_ids + own
        assert grammar.accepts(ids + [EOS], modalities.vocab)
        decoded = find_all.decode(ids, modalities, ex, [0.0] * len(ids))["boxes"]
        assert len(decoded) == len(ex.target)     # the listed objects are not the answer
        if decoded:
            assert np.abs(np.array(sorted(decoded)) - np.array(sorted(ex.target))).max() <= half_bin + 1e-9
    with pytest.raises(ValueError, match="not both"):
        type(plain)(ground="detection", via="detection")


def test_find_all_list_noise_misnames_one_listed_object_and_the_boxes_follow_the_list(modalities):
    """`list_noise`: one listed object's label changes so its match with the query flips; the target is the boxes the
    changed list names; the changed label's tokens are fed to the decoder but left out of the loss."""
    from unio.kit.labels import query_matches
    noisy = type(TASKS.get("find_all"))(ground="detection", list_noise=1.0)
    exs = list(world_examples(noisy, "train", 80, 64))
    gold = [(list(ex.meta["objects"]), list(ex.target)) for ex in exs]
    rng, flipped = np.random.default_rng(0), Counter()
    out = [noisy.for_training(ex, rng) for ex in exs]
    for ex, (objects, target), ids in zip(out, gold, noisy.targets(out, modalities)):
        k, query = ex.meta["misnamed"], ex.meta["query"]
        changed = [i for i, (a, b) in enumerate(zip(objects, ex.meta["objects"])) if a != tuple(b)]
        assert changed == [k] and ex.meta["objects"][k][0] == objects[k][0]       # one label; its box kept
        before, after = (query_matches(label, query) for label in (objects[k][1], ex.meta["objects"][k][1]))
        assert before != after
        flipped[after] += 1
        assert ex.target == [box for box, label in ex.meta["objects"] if query_matches(label, query)]
        label = modalities.text_ids(ex.meta["objects"][k][1])
        assert [ids[j] for j in ids.ignored] == label and len(ids.ignored) == len(label)
        assert ids[ids.ignored[0] - 4:ids.ignored[0]] == box_to_ids(objects[k][0], modalities, ex)
    assert flipped[True] > 10 and flipped[False] > 10          # absent queries made present, present made absent
    plain = type(TASKS.get("find_all"))(ground="detection")
    ex = world_examples(plain, "train", 1, 64)[0]
    assert plain.for_training(ex, rng) is ex and "misnamed" not in ex.meta
    for bad, match in (({"list_noise": 0.3}, "needs ground"), ({"ground": "detection", "list_noise": 2}, "list_noise")):
        with pytest.raises(ValueError, match=match):
            type(plain)(**bad)


def test_find_all_verdicts_say_each_listed_object_with_its_verdict_and_answer_the_yes_ones(modalities):
    """find_all.verdicts: the answer lists the image's objects itself, each label followed by "yes" where it names
    the query, else "no"; the prediction is the boxes said "yes" (every gold box, within half a bin); nothing is
    asked first."""
    verdicts = type(TASKS.get("find_all"))(ground="detection", verdicts=True)
    exs = list(world_examples(verdicts, "train", 60, 64))
    grammar, half_bin = verdicts.grammar(modalities, 64), 64 / (2 * modalities["coordinates"].num_bins)
    said = Counter()
    for ex, ids in zip(exs, verdicts.targets(exs, modalities)):
        assert grammar.accepts(ids + [EOS], modalities.vocab)
        words = modalities.text_from_ids([i for i in ids if modalities.vocab.owner(i) == modalities.prompt_name])
        said.update(w for w in words.split() if w in ("yes", "no"))
        decoded = verdicts.decode(ids, modalities, ex, [0.0] * len(ids))["boxes"]
        assert len(decoded) == len(ex.target)
        if decoded:
            assert np.abs(np.array(sorted(decoded)) - np.array(sorted(ex.target))).max() <= half_bin + 1e-9
    assert said["yes"] > 10 and said["no"] > 10 and verdicts.ask_first is None and verdicts.answer_prefix(exs[0], modalities) is None
    for bad in ({"verdicts": True}, {"ground": "detection", "verdicts": True, "list_noise": 0.3}):
        with pytest.raises(ValueError, match="verdicts"):
            type(verdicts)(**bad)


def test_vqa_yes_share_for_the_types_answered_yes_or_no():
    task = TASKS.get("vqa")
    exs = examples("vqa", n=60)
    binary = {ex.meta["type"] for ex in exs if ex.target in ("yes", "no")}
    assert binary and binary < {ex.meta["type"] for ex in exs}
    result = task.evaluate(["yes"] * len(exs), exs)
    assert {k for k in result if k.startswith("yes_share_")} == {f"yes_share_{kind}" for kind in binary}
    assert all(result[f"yes_share_{kind}"] == 1.0 for kind in binary)
    assert all(v == 0.0 for k, v in task.evaluate([" No"] * len(exs), exs).items() if k.startswith("yes_share_"))


def test_box_iou_by_hand():
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0


def test_refexp_metrics_by_hand():
    task = TASKS.get("refexp")
    exs = examples("refexp", n=2)
    preds = [exs[0].target, [0, 0, 1, 1]]
    result = task.evaluate(preds, exs)
    assert result["acc@0.5"] == 0.5
    assert result["miou"] == pytest.approx((1 + box_iou([0, 0, 1, 1], exs[1].target)) / 2)


def test_refexp_accuracy_per_phrase_naming_the_shape_or_not():
    """World phrases name the shape only where the colour is shared: Acc@0.5 is split by that."""
    task = TASKS.get("refexp")
    exs = examples("refexp", n=60)
    kinds = [ex.meta["phrase"] for ex in exs]
    for ex, kind in zip(exs, kinds):
        shape = ex.record["objects"][[o["box"] for o in ex.record["objects"]].index(ex.target)]["attributes"]["shape"]
        assert kind == ("names_shape" if shape in ex.meta["expression"] else "no_shape")
    assert set(kinds) == {"names_shape", "no_shape"}
    right_where_named = [ex.target if kind == "names_shape" else [0, 0, 1, 1] for ex, kind in zip(exs, kinds)]
    result = task.evaluate(right_where_named, exs)
    assert (result["acc@0.5_names_shape"], result["acc@0.5_no_shape"]) == (1.0, 0.0)
    assert result["acc@0.5"] == pytest.approx(kinds.count("names_shape") / len(exs))


def test_depth_metrics_by_hand():
    gold = np.array([[1.0, 2.0], [4.0, 8.0]])
    pred = np.array([[1.0, 2.0], [5.0, 4.0]])
    errors = depth_errors(pred, gold)
    assert errors["rmse"] == pytest.approx(np.sqrt((1 + 16) / 4))
    assert errors["absrel"] == pytest.approx((0.25 + 0.5) / 4)
    assert errors["delta1"] == pytest.approx(2 / 4)


def test_caption_metrics_match_pycocoevalcap():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    task = TASKS.get("caption")
    exs = examples("caption", n=6)
    preds = [ex.target if i % 2 else "a red cube." for i, ex in enumerate(exs)]
    ours = task.evaluate(preds, exs)
    # pycocoevalcap directly, on the same (already lower-case, space-separated) tokens
    def tok(s):
        return s.replace(".", " .").replace(",", " ,").split()
    gts = {i: [" ".join(tok(ex.target)).replace(" .", "").replace(" ,", "")] for i, ex in enumerate(exs)}
    res = {i: [" ".join(tok(p)).replace(" .", "").replace(" ,", "")] for i, p in enumerate(preds)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    assert ours["bleu4"] == pytest.approx(bleu[3], abs=1e-6)
    assert ours["cider"] == pytest.approx(cider, abs=1e-6)
    assert task.evaluate([ex.target for ex in exs], exs)["bleu4"] > 0.99


def test_grammar_table(modalities):
    g = Grammar((Segment("coordinates", 4, 4, local=(0, 32)),))
    table = g.allowed(modalities.vocab)
    start = modalities.vocab.range("coordinates").start
    assert table.shape == (5, modalities.vocab.size)
    assert table[:4, start:start + 32].all() and not table[:4, EOS].any() and table[4, EOS]
    assert table[0].sum() == 32
    inner = Grammar((Segment("text", 1, 3), Segment("vq", 2, 2)))   # an inner variable segment: no table
    with pytest.raises(ValueError, match="no position table"):
        inner.allowed(modalities.vocab)
    assert not inner.static and inner.accepts(_ids(modalities, "text", 2) + _ids(modalities, "vq", 2) + [EOS], modalities.vocab)


def _ids(mods, name, n):
    return [mods.vocab.range(name).start + i for i in range(n)]


def test_count_example_plugin_by_path(modalities):
    from conftest import ROOT, world_examples

    from unio import plugins
    plugins.load(f"{ROOT}/tasks/count.py")
    task = TASKS.get("count")
    ex = examples("count", n=1)[0]
    ids = task.targets([ex], modalities)[0]
    assert task.decode(ids, modalities, ex) == ex.target
    assert task.evaluate([ex.target], [ex]) == {"accuracy": 1.0}


def test_caption_content_metric_judges_the_objects_named():
    """Gold captions name every object right; a caption with one colour wrong loses that object in
    precision and recall, though its CIDEr-D hardly moves; a source without objects gets no content score."""
    task = TASKS.get("caption")
    exs = examples("caption", n=30)
    gold = task.evaluate([ex.target for ex in exs], exs)
    assert gold["content_precision"] == gold["content_recall"] == gold["content_f1"] == 1.0
    one = exs[0]
    first = one.record["objects"][0]["attributes"]["color"]
    other = "purple" if first != "purple" else "green"
    wrong = one.target.replace(first, other, 1)
    score = task.evaluate([wrong], [one])
    n = len(one.record["objects"])
    assert score["content_recall"] == pytest.approx((n - 1) / n)
    bare = [type(ex)(ex.task, ex.image, ex.prompt, ex.target, ex.meta) for ex in exs[:3]]   # no record
    assert "content_f1" not in task.evaluate([ex.target for ex in bare], bare)

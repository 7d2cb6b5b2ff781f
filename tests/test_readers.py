"""The readers of the official formats (unio/data/readers/) on tiny datasets written in those formats
(tests/official_formats.py), the papers' metrics against the official implementations, and a toy run
over a mixture of all four sources through the real script."""
import json
import pickle

import numpy as np
import pytest
from conftest import run_script, run_script_here
from official_formats import write_coco, write_nyu, write_refcoco, write_vqav2

from unio.data.readers.common import BadRecord
from unio.data.sources import build_source
from unio.registries import TASKS


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    return {"root": root, "coco": write_coco(root / "coco"), "vqav2": write_vqav2(root / "vqav2"),
            "refcoco": write_refcoco(root), "nyu": write_nyu(root / "nyu")}


def source(kind, spec):
    return build_source(kind, f"{kind}:{spec}", 64)


# COCO

def test_coco_records_follow_the_files(data):
    from pycocotools.coco import COCO
    coco = source("coco", data["root"] / "coco")
    assert coco.splits() == ["train2017", "val2017", "train", "validation", "test"]
    official = COCO(str(data["root"] / "coco" / "annotations" / "instances_train2017.json"))
    records = [coco.split("train")[i] for i in range(3)]
    assert [r["image_id"] for r in records] == [139, 285, 632]
    for record in records:
        assert record["captions"] == data["coco"]["captions"][record["image_id"]]     # all 5 references
        anns = official.loadAnns(official.getAnnIds(imgIds=record["image_id"], iscrowd=None))
        assert len(record["objects"]) == len(anns)
        for obj, ann in zip(record["objects"], anns):
            x, y, w, h = ann["bbox"]
            assert obj["box"] == [x, y, x + w, y + h]
            assert obj["category"] == official.loadCats(ann["category_id"])[0]["name"]
            assert obj["attributes"]["iscrowd"] == ann["iscrowd"] and obj["attributes"]["category_id"] == ann["category_id"]
            assert np.array_equal(np.asarray(obj["mask"]), official.annToMask(ann).astype(bool))


def test_coco_masks_polygon_rle_and_crowd(data):
    horse = source("coco", data["root"] / "coco").split("train2017")[1]
    truth = data["coco"]["photos"]["horse_mask"]
    rle, crowd = horse["objects"]
    assert rle["attributes"]["iscrowd"] == 0 and crowd["attributes"]["iscrowd"] == 1
    assert np.array_equal(np.asarray(rle["mask"]), truth) and np.array_equal(np.asarray(crowd["mask"]), truth)
    assert rle["category"] == "horse" and rle["attributes"]["category_id"] == 19     # ids are not contiguous
    cat = source("coco", data["root"] / "coco").split("train2017")[0]["objects"][0]
    mask = np.asarray(cat["mask"])
    assert mask.shape == (300, 451) and mask[100, 200] and mask[250, 200] and not mask[250, 120]


def test_coco_keypoints(data):
    person = source("coco", data["root"] / "coco").split("train2017")[2]["objects"][0]
    points = person["keypoints"]
    assert len(points) == 17 and points[3] == [0.0, 0.0, 0] and points[0] == [60.0, 40.0, 1] and points[1] == [67.0, 49.0, 2]
    assert person["category"] == "person"


def test_coco_keypoint_names_and_skeleton_0_based(data):
    """Each person keeps its category's keypoint names and skeleton, the file's 1-based pairs made 0-based."""
    from pycocotools.coco import COCO

    from unio.data.records import frame_record
    official = COCO(str(data["root"] / "coco" / "annotations" / "person_keypoints_train2017.json")).loadCats(1)[0]
    record = source("coco", data["root"] / "coco").split("train2017")[2]
    person = record["objects"][0]
    assert person["keypoint_names"] == official["keypoints"] and len(person["keypoint_names"]) == len(person["keypoints"])
    assert person["skeleton"] == [[a - 1, b - 1] for a, b in official["skeleton"]]
    first = person["skeleton"][0]                                       # the file's [16, 14]
    assert [person["keypoint_names"][i] for i in first] == ["left_ankle", "left_knee"]
    framed = frame_record(record, 64)[0]["objects"][0]
    assert framed["skeleton"] == person["skeleton"] and framed["keypoint_names"] == person["keypoint_names"]
    cat = source("coco", data["root"] / "coco").split("train2017")[0]["objects"][0]
    assert "skeleton" not in cat and "keypoint_names" not in cat      # only objects with keypoints


def test_images_without_a_person_are_passed_over_not_fatal(data):
    """person_keypoints on COCO: training draws another record for an image without a person, evaluation
    reads on; neither counts it as a bad record. A source with nothing to ask at all is named."""
    from unio.data.bad_records import BadRecords
    from unio.data.mixture import Mixture
    from unio.data.records import make_example
    from unio.infer.evaluation import split_examples
    from unio.task import NothingToAsk
    task, coco = TASKS.get("person_keypoints"), source("coco", data["root"] / "coco")
    with pytest.raises(NothingToAsk, match="000000000139|139.*no person"):
        make_example(task, coco.split("train2017")[0], 64, np.random.default_rng(0))
    bad = BadRecords(skip=True)
    batch = Mixture({"person_keypoints": task}, {"coco": coco}, {("person_keypoints", "coco"): 1.0}, 64,
                    bad=bad).megabatch(0, 12)
    astronaut = "coco/train2017/632"
    assert len(batch) == 12 and {ex.meta["id"] for ex in batch} == {astronaut} and not bad.counts()
    assert [ex.meta["id"] for ex in split_examples(task, coco, "train2017", 5, 64, bad=bad)] == [astronaut]
    assert split_examples(task, coco, "val2017", 5, 64) == []          # no person in val2017

    class ValOnly:                  # a source whose train split holds no person
        def split(self, name):
            return coco.split("val2017")
    nobody = Mixture({"person_keypoints": task}, {"coco": ValOnly()}, {("person_keypoints", "coco"): 1.0}, 64)
    with pytest.raises(ValueError, match="person_keypoints.*nothing to ask in 1000 records of source 'coco'"):
        nobody.megabatch(0, 1)


def test_masks_are_decoded_and_framed_only_when_read(data, monkeypatch):
    """Framing a record decodes no mask (a caption never pays for them); a mask that is read equals the
    eager framing's (the original mask decoded, then mapped to the model's frame)."""
    from unio.data.readers import common
    from unio.data.records import frame_record, make_example
    decoded = []
    real = common.decode_segmentation
    monkeypatch.setattr(common, "decode_segmentation", lambda *args: decoded.append(args) or real(*args))
    coco = source("coco", data["root"] / "coco")
    for i in range(3):
        record = coco.split("train2017")[i]
        make_example(TASKS.get("caption"), record, 64, np.random.default_rng(0))
        framed, frame = frame_record(record, 64)
        assert not decoded and all("mask" in o for o in framed["objects"])
        for obj, original in zip(framed["objects"], record["objects"]):
            eager = frame.mask_to_model(np.asarray(original["mask"], bool))
            assert obj["mask"].dtype == bool and obj["mask"].shape == (64, 64) and np.array_equal(obj["mask"], eager)
            assert obj.get("mask") is obj["mask"] and np.array_equal(dict(obj)["mask"], eager)   # mapped once
            assert obj["box"] == [v * frame.scale for v in original["box"]]
        decoded.clear()


def test_coco_reads_images_and_masks_only_when_asked(data, tmp_path):
    import shutil
    root = tmp_path / "coco"
    shutil.copytree(data["root"] / "coco", root)
    (root / "val2017" / "000000000776.jpg").unlink()
    split = source("coco", root).split("test")                    # indexing opens no image
    assert isinstance(split[0]["image"], type(root)) and type(split[0]["objects"][0]["mask"]).__name__ == "LazyMask"
    with pytest.raises(BadRecord, match=r"000000000776\.jpg: record coco/val2017/776: image file not found"):
        split[1]


def test_coco_bad_annotations_are_named(data, tmp_path):
    import shutil
    for n, (change, message) in enumerate((
            (lambda a: a.update(image_id=999), r"annotation 2724: image_id 999 is not among"),
            (lambda a: a.update(bbox=[1.0, 1.0, 0.0, 5.0]), r"annotation 2724: bbox .* has no area"))):
        root = tmp_path / str(n)
        shutil.copytree(data["root"] / "coco", root)
        path = root / "annotations" / "instances_val2017.json"
        instances = json.loads(path.read_text())
        change(instances["annotations"][0])
        path.write_text(json.dumps(instances))
        with pytest.raises(BadRecord, match="instances_val2017.json: record " + message):
            source("coco", root).split("val2017")[0]


def test_coco_split_roles_and_choices(data):
    coco = build_source("coco", f"coco:{data['root'] / 'coco'},train=val2017", 64)
    assert len(coco.split("train")) == 2 and len(coco.split("test")) == 2
    with pytest.raises(KeyError, match="no split 'val2014'"):
        coco.split("val2014")


def test_a_big_annotation_file_is_parsed_once(data, monkeypatch):
    from unio.data.readers import coco, json_items
    monkeypatch.setattr(coco, "_INDEXES", {})
    calls = []
    real = json_items.scan
    monkeypatch.setattr(json_items, "scan", lambda text, values, path: calls.append(path) or real(text, values, path))
    for _ in range(2):
        source("coco", data["root"] / "coco").split("train2017")[0]
    assert len(calls) == len(set(calls)) == 3          # captions, instances, person_keypoints: once each


def test_json_items_index_a_file_by_spans_and_parse_each_item_as_json_does(tmp_path):
    """Items read back from their spans equal json.load's, non-ASCII text included; bad JSON names the file."""
    import json

    from unio.data.readers.json_items import JsonItems
    data = {"info": {"year": 2017, "note": "ça"}, "images": [{"id": 1, "file_name": "é.jpg"}, {"id": 2}],
            "empty": [], "annotations": [{"id": 7, "caption": "a café — 2 cats", "bbox": [1.5, 2, 3e2, 4]}]}
    path = tmp_path / "a.json"
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    seen = []
    items = JsonItems(path, lambda key, item: seen.append((key, item.get("id"))))
    assert items.values == {"info": data["info"]} and seen == [("images", 1), ("images", 2), ("annotations", 7)]
    assert {k: [items.item(s) for s in spans] for k, spans in items.lists.items()} == \
        {k: v for k, v in data.items() if isinstance(v, list) and v}
    path.write_text('{"images": [{"id": 1}, {"id": 2]}')
    with pytest.raises(ValueError, match=r"a\.json: not valid JSON"):
        JsonItems(path)


# VQAv2

def test_vqav2_records(data):
    vqa = source("vqav2", data["root"] / "vqav2")
    assert vqa.splits() == ["train2014", "val2014", "train", "validation", "test"]
    assert len(vqa.split("train")) == 6 and len(vqa.split("test")) == 9      # one record per question
    record = vqa.split("val2014")[4]
    question, answers, answer_type = record["questions"][0]
    truth = data["vqav2"][record["question_id"]]
    assert question == truth[0] and answer_type == truth[3] == "yes/no"
    assert answers[0] == truth[2] == "no" and sorted(answers) == sorted(truth[1]) and len(answers) == 10
    assert record["image"].name == f"COCO_val2014_{record['image_id']:012d}.jpg" and record["image"].is_file()


def official_vqa_accuracy(prediction, answers):
    """The official evaluation's loop for one question (GT-Vision-Lab/VQA vqaEval.py), on answer dicts."""
    from unio.kit import vqa_metric as module
    res = module.process_digit_article(module.process_punctuation(prediction.replace("\n", " ").replace("\t", " ").strip()))
    gts = [{"answer": a, "answer_id": i} for i, a in enumerate(answers)]
    if len(set(answers)) > 1:
        for g in gts:
            g["answer"] = module.process_punctuation(g["answer"])
    accs = [min(1, len([o for o in gts if o != g and o["answer"] == res]) / 3) for g in gts]
    return sum(accs) / len(accs)


def test_vqa_accuracy_is_the_official_one():
    vqa = TASKS.get("vqa")
    accuracy = __import__(type(vqa).__module__, fromlist=["x"]).vqa_accuracy
    others = ["x"] * 10
    for k, expected in ((0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)):
        assert accuracy("cat", ["cat"] * k + others[k:]) == pytest.approx(expected)
    cases = [("Two", ["2"] * 3 + ["two"] * 7), ("yes!", ["yes"] * 10), ("a dog", ["dog", "dog!", "the dog"] + ["cat"] * 7),
             ("1,000", ["1000", "1,000", "1,000"] + ["x"] * 7), ("dont know", ["don't know"] * 2 + ["no"] * 8),
             ("hot-dog", ["hot dog", "hot-dog", "hotdog"] + ["food"] * 7), ("3.5", ["3.5"] * 5 + ["35"] * 5)]
    for prediction, answers in cases:
        assert accuracy(prediction, answers) == pytest.approx(official_vqa_accuracy(prediction, answers)), prediction
    assert accuracy("Red.", ["red"]) == 1.0 and accuracy("blue", ["red"]) == 0.0     # one reference: exact agreement


def test_vqa_evaluate_per_answer_type(data):
    from unio.infer.evaluation import score, split_examples
    vqa = TASKS.get("vqa")
    examples = split_examples(vqa, source("vqav2", data["root"] / "vqav2"), "test", 9, 32)
    predictions = [ex.meta["answers"][0] for ex in examples]          # the multiple-choice answers
    metrics = score(vqa, predictions, examples)
    expected = [official_vqa_accuracy(p, ex.meta["answers"]) for p, ex in zip(predictions, examples)]
    assert metrics["accuracy"] == pytest.approx(np.mean(expected))
    assert set(metrics) == {"accuracy", "accuracy_other", "accuracy_yes/no", "accuracy_number", "yes_share_yes/no"}
    assert metrics["accuracy_yes/no"] == pytest.approx(1.0) and metrics["accuracy_number"] == pytest.approx(1.0)
    binary = [p for p, ex in zip(predictions, examples) if ex.meta["type"] == "yes/no"]
    assert metrics["yes_share_yes/no"] == pytest.approx(sum(p == "yes" for p in binary) / len(binary))


# RefCOCO

def test_refcoco_records_from_the_refer_files(data):
    ref = source("refcoco", data["refcoco"]["folder"])
    assert ref.splits() == ["testA", "testB", "train", "val", "validation", "test"]
    assert len(ref.split("test")) == len(ref.split("testA")) + len(ref.split("testB")) == 4
    assert [ref.split("test")[i]["split"] for i in range(4)] == ["testA", "testB", "testA", "testB"]   # interleaved
    anns = data["refcoco"]["annotations"]
    for split in ("train", "val", "testA", "testB"):
        for record in (ref.split(split)[i] for i in range(2)):
            text, target = record["refexps"][0]
            truth = next(r for r in data["refcoco"]["refs"] if r["ref_id"] == record["ref_id"])
            assert truth["split"] == split and text in [s["sent"] for s in truth["sentences"]]
            x, y, w, h = anns[truth["ann_id"]]["bbox"]
            assert record["objects"][target]["box"] == pytest.approx([x, y, x + w, y + h])
            assert len(record["objects"]) == 2 and record["image"].is_file()


def test_refs_pickle_of_python2_protocol_0(tmp_path):
    """refer's pickles were written by Python 2 (cPickle's default protocol 0: byte strings, UTF-8 inside)."""
    from unio.data.readers.refcoco import read_refs
    path = tmp_path / "refs(unc).p"
    path.write_bytes(b"(lp0\n(dp1\nS'split'\np2\nS'testA'\np3\nsS'ref_id'\np4\nI7\nsS'sentences'\np5\n(lp6\n"
                     b"(dp7\nS'sent'\np8\nS'caf\\xc3\\xa9 on the left'\np9\nsasa.")
    assert read_refs(path) == [{"split": "testA", "ref_id": 7, "sentences": [{"sent": "café on the left"}]}]


def test_refs_pickle_that_names_a_global_is_refused(data, tmp_path):
    import shutil

    class Exploit:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    folder = tmp_path / "refcoco"
    shutil.copytree(data["refcoco"]["folder"], folder)
    (folder / "refs(unc).p").write_bytes(pickle.dumps([Exploit()], protocol=2))
    with pytest.raises(ValueError, match=r"refused to load the global .*open"):
        source("refcoco", folder)
    assert not (tmp_path / "pwned").exists()


def test_refcoco_parquet_conversion(tmp_path):
    import datasets
    from PIL import Image
    images = [Image.fromarray(np.full((40 + 10 * i, 60, 3), 30 * i, np.uint8)) for i in range(3)]
    for split in ("train", "val"):
        datasets.Dataset.from_dict({"image": images, "bbox": [[5, 6, 20, 10], [1, 2, 3, 4], [10, 10, 30, 20]],
                                    "sentences": [["left thing", "the left one"], ["tiny"], ["a box"]]}) \
            .to_parquet(str(tmp_path / f"{split}-00000-of-00001.parquet"))
    ref = source("refcoco", tmp_path)
    assert ref.splits() == ["train", "val", "validation", "test"]
    record = ref.split("validation")[0]
    assert record["objects"][0]["box"] == [5, 6, 25, 16] and record["refexps"] == [["left thing", 0], ["the left one", 0]]
    assert record["image"].size == (60, 40)


def test_refexp_targets_round_trip_and_acc_per_split(data, modalities):
    """A RefCOCO box -> target tokens -> decoded -> original pixels is within a location bin; Acc@0.5 per
    split is 1 for the gold boxes and 0 for boxes moved off them."""
    from unio.infer.evaluation import score, split_examples
    refexp, ref = TASKS.get("refexp"), source("refcoco", data["refcoco"]["folder"])
    for split in ("val", "testA", "testB"):
        examples = split_examples(refexp, ref, split, 10, 32)
        targets = refexp.targets(examples, modalities)
        decoded = [refexp.to_original(refexp.decode(t, modalities, ex), ex.frame) for t, ex in zip(targets, examples)]
        for box, ex in zip(decoded, examples):
            record = ex.record
            gold = record["objects"][record["refexps"][0][1]]["box"]
            bin_px = 32 / modalities["coordinates"].num_bins / ex.frame.scale
            assert np.allclose(box, gold, atol=bin_px / 2 + 1e-6)
        assert score(refexp, [ex.target for ex in examples], examples)["acc@0.5"] == 1.0
        moved = [[b[0] + 31, b[1] + 31, b[2] + 31, b[3] + 31] for b in (ex.target for ex in examples)]
        assert score(refexp, moved, examples)["acc@0.5"] == 0.0


# NYU Depth v2

def test_nyu_mat_in_matlab_axis_order(data):
    nyu, truth = source("nyu", data["nyu"]["path"]), data["nyu"]
    assert nyu.splits() == ["train", "test", "validation"] and len(nyu.split("test")) == len(truth["test"])
    for position, frame in enumerate(truth["test"]):
        record = nyu.split("test")[position]
        assert np.array_equal(record["image"], truth["images"][frame])              # (H, W, 3)
        depth, valid = record["depth"], record["depth_valid"]
        assert depth.shape == (48, 64) and np.allclose(depth[valid], truth["depths"][frame][valid])
        gold = truth["depths"][frame]
        assert np.array_equal(valid, (gold >= 1e-3) & (gold <= 10)) and not valid[:2, :3].any()
        assert record["max_depth"] == 10.0
    if 0 in truth["train"]:
        assert not nyu.split("train")[truth["train"].index(0)]["depth_valid"][5, 5]    # 12 m: out of range


def test_nyu_png_pairs_and_parquet_arrays(tmp_path):
    import datasets
    from PIL import Image
    depth = np.linspace(0.5, 8, 48 * 64).reshape(48, 64).astype(np.float32)
    depth[0, 0] = 0
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)
    for split in ("train", "test"):
        (tmp_path / "pairs" / split / "kitchen").mkdir(parents=True)
        Image.fromarray(image).save(tmp_path / "pairs" / split / "kitchen" / "rgb_00045.jpg")
        Image.fromarray((depth * 1000).round().astype(np.uint16)).save(tmp_path / "pairs" / split / "kitchen" / "sync_depth_00045.png")
    record = source("nyu", tmp_path / "pairs").split("test")[0]
    assert np.allclose(record["depth"], depth, atol=1e-3) and not record["depth_valid"][0, 0]
    datasets.Dataset.from_dict({"image": [Image.fromarray(image)], "depth": [depth.tolist()]}) \
        .to_parquet(str(tmp_path / "table" / "train-00000-of-00001.parquet"))
    record = source("nyu", tmp_path / "table").split("train")[0]
    assert np.allclose(record["depth"][1:], depth[1:]) and record["depth_valid"].sum() == 48 * 64 - 1


def test_depth_errors_nyu_metrics():
    from unio.kit.metrics import depth_errors
    gold = np.array([[1.0, 2.0], [4.0, 12.0]])
    pred = np.array([[1.1, 3.0], [2.0, 12.0]])
    errors = depth_errors(pred, gold, np.array([[True, True], [True, False]]))
    ratios = np.array([1.1, 1.5, 2.0])
    assert errors["log10"] == pytest.approx(np.mean(np.log10(ratios)))
    assert (errors["delta1"], errors["delta2"], errors["delta3"]) == pytest.approx((1 / 3, 2 / 3, 2 / 3))
    ranged = depth_errors(np.array([[1.1, 3.0], [2.0, 15.0]]), gold, max_depth=10.0)
    assert ranged == pytest.approx(errors)                       # 12 m gold is out of the 0.001-10 m range


# metrics against pycocoevalcap's COCO caption evaluation

def test_caption_scores_match_coco_eval_cap(data, monkeypatch):
    """The caption task's metrics on COCO records equal COCOEvalCap's on the same captions file and results
    (SPICE left out: it downloads Stanford CoreNLP)."""
    import pycocoevalcap.eval as coco_eval
    from pycocotools.coco import COCO

    from unio.infer.evaluation import score, split_examples
    caption = TASKS.get("caption")
    examples = split_examples(caption, source("coco", data["root"] / "coco"), "train", 3, 32)
    predictions = ["a photo of a cat.", "a horse number 2 in a photo", "an astronaut"]
    ours = score(caption, predictions, examples)

    class NoSpice:
        def method(self):
            return "SPICE"

        def compute_score(self, gts, res):
            return 0.0, [0.0] * len(gts)

    monkeypatch.setattr(coco_eval, "Spice", NoSpice)
    gold = COCO(str(data["root"] / "coco" / "annotations" / "captions_train2017.json"))
    results = gold.loadRes([{"image_id": ex.record["image_id"], "caption": p} for ex, p in zip(examples, predictions)])
    official = coco_eval.COCOEvalCap(gold, results)
    official.params["image_id"] = results.getImgIds()
    official.evaluate()
    expected = {"bleu4": "Bleu_4", "meteor": "METEOR", "rougeL": "ROUGE_L", "cider": "CIDEr"}
    for ours_key, key in expected.items():
        assert ours[ours_key] == pytest.approx(official.eval[key], abs=1e-9), key


# the world in the official formats, and a toy run over all four readers

def test_make_world_writes_every_format_the_readers_read(tmp_path):
    from unio.data.world import World
    from unio.data.world.source import scene_record
    specs = {"coco": "coco", "vqav2": "vqav2", "refcoco": "refcoco/refcoco", "nyu": "nyu/nyu_depth_v2_labeled.mat"}
    for kind, where in specs.items():
        proc = run_script_here("scripts/make_world.py", "--format", kind, str(tmp_path / kind), "--n", "3")
        assert proc.returncode == 0, proc.stderr[-2000:]
    world = scene_record(World("test", resolution=64)[1])
    coco = source("coco", tmp_path / "coco").split("test")[1]
    assert coco["captions"] == world["captions"] and len(coco["objects"]) == len(world["objects"])
    assert all(np.allclose(a["box"], b["box"]) and np.array_equal(np.asarray(a["mask"]), b["mask"])
               for a, b in zip(coco["objects"], world["objects"]))
    vqa = source("vqav2", tmp_path / "vqav2").split("test")
    counts = [len(scene_record(World("test", resolution=64)[i])["questions"]) for i in range(3)]
    question = vqa[counts[0] + 1]["questions"][0]                  # scene 1's second question
    assert len(vqa) == sum(counts)
    assert question[0] == world["questions"][1][0] and question[1] == world["questions"][1][1] * 10
    assert len(source("refcoco", tmp_path / specs["refcoco"]).split("train")) > 0
    nyu = source("nyu", tmp_path / specs["nyu"]).split("test")[1]
    valid = nyu["depth_valid"]
    assert np.array_equal(nyu["image"], world["image"]) and np.allclose(nyu["depth"][valid], world["depth"][valid])
    assert np.array_equal(valid, world["depth"] <= 10.0)


def test_make_world_writes_panoptic_and_visual_genome_files_the_readers_read_back(tmp_path):
    """`--format coco_panoptic` and `--format visual_genome`: every scene's class map, and every relation
    with its subject's and object's boxes and names, read back through the project's readers as the world has them."""
    from unio.data.world import World
    from unio.data.world.source import scene_record
    from unio.data.world.surfaces import CLASS_NAMES
    n = 4
    for kind in ("coco_panoptic", "visual_genome"):
        proc = run_script_here("scripts/make_world.py", "--format", kind, str(tmp_path / kind), "--n", str(n))
        assert proc.returncode == 0, proc.stderr[-2000:]
    panoptic = source("coco_panoptic", tmp_path / "coco_panoptic")
    vg = build_source("vg", f"visual_genome:{tmp_path / 'visual_genome'},train_share=0.5", 64)
    assert len(vg.split("train")) == len(vg.split("test")) == len(panoptic.split("test")) == n
    relations = 0
    for world_split, split in (("train", "train"), ("test", "test")):
        for i in range(n):
            world = scene_record(World(world_split, resolution=64)[i])
            read = panoptic.split(split)[i]
            assert read["class_names"] == list(CLASS_NAMES)
            assert np.array_equal(np.asarray(read["classes"]), np.asarray(world["classes"]))
            assert triplets(vg.split(split)[i]) == triplets(world)
            relations += len(world["relations"])
    assert relations > 0


def triplets(record) -> list:
    """(subject box, subject, predicate, object box, object) of each relation, boxes as tuples."""
    objects = record["objects"]
    return [(tuple(objects[s]["box"]), objects[s]["category"], p, tuple(objects[o]["box"]), objects[o]["category"])
            for s, p, o in record["relations"]]


def readme_commands(section: str = "## Train on your data") -> list:
    """The train_mixture.py command lines of a section of docs/data.md, as argument lists."""
    import shlex

    from conftest import ROOT
    text = open(f"{ROOT}/docs/data.md").read().split(section)[1].split("\n## ")[0]
    return [shlex.split(line.split("#")[0]) for line in text.splitlines() if line.startswith("python scripts/train_mixture.py")]


def test_toy_run_over_all_four_readers(data, tmp_path):
    """docs/data.md's command for a mixture of all four sources, on the fixtures (data/ -> their folder)."""
    command = next(c for c in readme_commands() if "caption@coco,refexp@refcoco,vqa@vqav2,depth@nyu" in c)
    args = [a.replace("data/", f"{data['root']}/") for a in command[1:]]
    proc = run_script(*args, "--out", str(tmp_path / "run"), env={"UNIO_CACHE": str(tmp_path / "cache"), "UNIO_METEOR": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluation = json.loads((tmp_path / "run" / "eval.json").read_text())["model"]
    assert set(evaluation) == {"caption@coco", "refexp@refcoco", "vqa@vqav2", "depth@nyu"}
    assert {"bleu4", "meteor", "rougeL", "cider"} <= set(evaluation["caption@coco"])
    assert {"accuracy_yes/no", "accuracy_number"} <= set(evaluation["vqa@vqav2"])
    assert {"rmse", "absrel", "log10", "delta1", "delta2", "delta3"} <= set(evaluation["depth@nyu"])
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl") if '"task_loss"' in line]
    assert set().union(*(r["task_loss"] for r in rows)) == {"caption@coco", "refexp@refcoco", "vqa@vqav2", "depth@nyu"}


def test_the_world_written_by_make_world_trains_and_evaluates_through_the_readers(tmp_path):
    """Issue 15's check: `make_world.py --format coco|refcoco` output, read back by the coco and refcoco
    sources, trains `caption@coco,refexp@refcoco` through the real script and evaluates per split."""
    for kind in ("coco", "refcoco"):
        proc = run_script_here("scripts/make_world.py", "--format", kind, str(tmp_path / kind), "--n", "6")
        assert proc.returncode == 0, proc.stderr[-2000:]
    sources = ["--source", f"coco=coco:{tmp_path / 'coco'}", "--source", f"refcoco=refcoco:{tmp_path / 'refcoco' / 'refcoco'}"]
    env = {"UNIO_CACHE": str(tmp_path / "cache")}
    proc = run_script("scripts/train_mixture.py", "--preset", "toy", "--batch-size", "8", "--vq-steps", "20",
                      "--no-progress", "--no-compile", "--steps", "6", "--eval-n", "4",
                      "--tasks", "caption@coco,refexp@refcoco", *sources, "--out", str(tmp_path / "run"), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluation = json.loads((tmp_path / "run" / "eval.json").read_text())["model"]
    assert "cider" in evaluation["caption@coco"] and "acc@0.5" in evaluation["refexp@refcoco"]
    proc = run_script_here("scripts/evaluate.py", "--model", str(tmp_path / "run"), "--tasks", "refexp@refcoco", *sources,
                      "--split", "testB", "--n", "3", "--json", str(tmp_path / "testB.json"), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "testB.json").read_text())["split"] == "testB"


def test_coco_at_scale_writes_a_coco_set_the_reader_reads_and_measures_it(tmp_path):
    """scripts/coco_at_scale.py at toy size: the set it writes reads back (every object, shared images)."""
    out = tmp_path / "coco"
    proc = run_script_here("scripts/coco_at_scale.py", "write", str(out), "--images", "40", "--objects", "3", "--distinct", "4",
                      "--resolution", "32")
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = json.loads(proc.stdout)
    proc = run_script_here("scripts/coco_at_scale.py", "measure", str(out), "--records", "10", "--json", str(tmp_path / "m.json"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads((tmp_path / "m.json").read_text())
    assert figures["records"] == 40 and figures["objects"] == written["objects"] and figures["startup_s"] >= 0
    record = source("coco", out).split("train")[39]
    assert record["image"].resolve() == (out / "shared" / "0.jpg").resolve() and len(record["captions"]) == 5
    assert all(np.asarray(obj["mask"]).any() for obj in record["objects"])

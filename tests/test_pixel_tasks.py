"""Surface normals and semantic segmentation: round trips through their codes, metrics and baselines by hand,
answers in the original image's pixels, the COCO panoptic reader on files in the official layout, and a
toy run of both tasks (on the world and on the panoptic files) through the real script."""
import json

import numpy as np
import pytest
from conftest import run_script, world_examples
from official_formats import PANOPTIC_CATEGORIES, write_coco_panoptic
from PIL import Image

import unio
from unio.data.readers.common import BadRecord
from unio.data.sources import build_source
from unio.data.world import World
from unio.data.world.surfaces import CLASS_NAMES
from unio.kit.pixel_maps import (
    PALETTE,
    angular_errors,
    class_colours,
    classes_from_image,
    confusion,
    normal_metrics,
    normals_from_image,
    normals_image,
    segmentation_metrics,
)
from unio.registries import TASKS
from unio.task import Example
from unio.vocab import EOS

TASK_NAMES = ["normals", "semantic_segmentation"]


@pytest.fixture(scope="module")
def panoptic(tmp_path_factory):
    root = tmp_path_factory.mktemp("panoptic")
    return root, write_coco_panoptic(root)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_targets_decode_to_the_codebook_round_trip(modalities, name):
    task = TASKS.get(name)
    exs = world_examples(task, "train", 4, 32)
    ceiling = task.baselines()["vq_ceiling"](exs, modalities)
    for ex, ids in zip(exs, task.targets(exs, modalities)):
        assert len(ids) == 16 and task.grammar(modalities, 32).accepts(list(ids) + [EOS], modalities.vocab)
        decoded, expected = task.decode(ids, modalities, ex), ceiling(ex)
        if name == "normals":
            assert decoded.shape == (32, 32, 3) and np.allclose(decoded, expected)
        else:
            assert decoded["class_names"] == list(CLASS_NAMES) and np.array_equal(decoded["classes"], expected["classes"])


def test_maps_survive_their_image_form():
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(8, 8, 3))
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    normals[0] = 0                                                  # no surface: grey, and back to zero
    as_uint8 = np.round(normals_image(normals).numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
    back = normals_from_image(as_uint8)
    assert (back[0] == 0).all() and angular_errors(back, normals).max() < 0.5
    classes = np.arange(len(PALETTE)).reshape(10, -1)
    assert np.array_equal(classes_from_image(class_colours(classes), len(PALETTE)), classes)
    assert (class_colours(np.array([[-1]])) == 0).all()             # unlabelled is black, no class's colour
    with pytest.raises(ValueError, match="beyond the palette"):
        class_colours(np.array([[len(PALETTE)]]))


def test_normal_metrics_by_hand():
    up, toward, zero = [0, 1, 0], [0, 0, 1], [0, 0, 0]
    tilted = [0, np.cos(np.radians(20)), np.sin(np.radians(20))]
    gold = np.array([[up, up, toward, zero, up]], np.float32)
    pred = np.array([[up, tilted, [1, 0, 0], up, zero]], np.float32)   # 0, 20, 90 degrees, unscored, none: 90
    errors = angular_errors(pred, gold)
    assert np.allclose(errors, [0, 20, 90, 90], atol=1e-3)
    metrics = normal_metrics(errors)
    assert metrics["mean_angle"] == pytest.approx(50, abs=1e-3) and metrics["median_angle"] == pytest.approx(55, abs=1e-3)
    assert (metrics["within_11.25"], metrics["within_22.5"], metrics["within_30"]) == (0.25, 0.5, 0.5)


def test_segmentation_metrics_by_hand():
    gold = np.array([[0, 0, 1, 1, 2], [2, 2, -1, 1, 1]])
    pred = np.array([[0, 1, 1, 1, -1], [2, 0, 2, 1, 3]])            # -1 and 3 (of 3 classes): no class, misses
    counts = confusion(pred, gold, 3)
    assert counts.tolist() == [[1, 1, 0, 0], [0, 3, 0, 1], [1, 0, 1, 1]]
    metrics = segmentation_metrics(counts, ["a", "b", "c"])
    assert metrics["iou_a"] == pytest.approx(1 / 3) and metrics["iou_b"] == 0.6 and metrics["iou_c"] == pytest.approx(1 / 3)
    assert metrics["miou"] == pytest.approx((1 / 3 + 0.6 + 1 / 3) / 3) and metrics["pixel_accuracy"] == pytest.approx(5 / 9)
    absent = segmentation_metrics(confusion(np.where(pred == 3, -1, pred), gold, 4), list("abcd"))   # d: nobody holds it
    assert absent["miou"] == metrics["miou"] and "iou_d" not in absent


def test_baselines_by_hand():
    up, toward = np.array([0, 1, 0], np.float32), np.array([0, 0, 1], np.float32)
    a, b = np.zeros((2, 2, 3), np.float32), np.zeros((2, 2, 3), np.float32)
    a[0, 0], b[0, 0], a[1, 1], b[1, 1] = up, toward, up, up          # (0, 1): no surface in either
    mean = TASKS.get("normals").baselines()["mean_normal"]([Example("normals", None, "", a), Example("normals", None, "", b)])
    out = mean(None)
    assert np.allclose(out[0, 0], (up + toward) / np.sqrt(2)) and np.allclose(out[1, 1], up) and (out[0, 1] == 0).all()
    meta = {"class_names": ["x", "y", "z"]}
    maps = [np.array([[0, 1], [2, 2]]), np.array([[0, 2], [2, 1]]), np.array([[1, 2], [2, 1]])]
    majority = TASKS.get("semantic_segmentation").baselines()["majority"](
        [Example("semantic_segmentation", None, "", m, dict(meta)) for m in maps])(None)
    assert majority["classes"].tolist() == [[0, 2], [2, 1]] and majority["class_names"] == ["x", "y", "z"]


def test_helpers_answer_in_the_original_image_pixels(runner):
    image = np.asarray(Image.fromarray(World("test")[0].image).resize((97, 61)))
    normals = unio.normals(image, model=runner)
    assert normals.task == "normals" and normals.prompt == "What are the surface normals of the image?"
    assert normals.normals.shape == (61, 97, 3)
    assert np.allclose(np.linalg.norm(normals.normals, axis=-1)[np.linalg.norm(normals.normals, axis=-1) > 0], 1, atol=1e-5)
    classes = unio.run("Segment the image by class.", image, model=runner)
    assert classes.task == "semantic_segmentation" and classes.classes.shape == (61, 97)
    assert classes.class_names == list(CLASS_NAMES) and 0 <= classes.classes.min() and classes.classes.max() < 6
    for result in (normals, classes):
        assert result.draw().size == (2 * 97, 61)


class HalfWorld:
    """The left 40 columns of world scenes: a 64x40 source."""
    keys = ("image", "id", "normals")

    def splits(self):
        return ["train"]

    def split(self, name):
        world = build_source("world", None, 64).split("train")
        return [{"image": r["image"][:, :40], "normals": np.asarray(r["normals"])[:, :40], "id": f"half/{i}"}
                for i, r in ((i, world[i]) for i in range(3))]


@pytest.mark.parametrize("name", TASK_NAMES)
def test_gold_in_the_model_frame_maps_back_to_the_original(name, panoptic):
    """Non-square sources: the framed gold, mapped back as predictions are, scores near perfect against the
    record's own map (what is lost is the resizing to 32 px and back)."""
    from unio.infer.evaluation import score, split_examples
    task = TASKS.get(name)
    if name == "normals":
        exs = split_examples(task, HalfWorld(), "train", 3, 32)
        assert exs[0].target.shape == (32, 32, 3) and (exs[0].target[:, 21:] == 0).all()     # padding: no surface
        metrics = score(task, [ex.target for ex in exs], exs)
        assert metrics["median_angle"] < 1 and metrics["within_11.25"] > 0.85
    else:
        exs = split_examples(task, build_source("pan", f"coco_panoptic:{panoptic[0]}", 32), "train", 1, 32)
        assert exs[0].target.shape == (32, 32) and exs[0].meta["class_names"][0] == "cat"
        metrics = score(task, [{"classes": ex.target, "class_names": ex.meta["class_names"]} for ex in exs], exs)
        assert metrics["pixel_accuracy"] > 0.9 and metrics["miou"] > 0.7


def test_coco_panoptic_reader_follows_the_files(panoptic, tmp_path):
    root, truth = panoptic
    source = build_source("pan", f"coco_panoptic:{root}", 64)
    assert set(source.splits()) >= {"train2017", "val2017", "train", "test"}
    assert {"classes", "class_names"} <= set(source.keys)
    names = [c["name"] for c in PANOPTIC_CATEGORIES]
    for split, image_id in (("train", 285), ("test", 139)):
        record = source.split(split)[0]
        assert record["id"].endswith(f"/{image_id}") and record["class_names"] == names
        classes = np.asarray(record["classes"])
        assert np.array_equal(classes, truth[image_id])
        assert classes.shape == np.asarray(Image.open(record["image"])).shape[:2]
    horse = np.asarray(source.split("train")[0]["classes"])
    assert set(np.unique(horse)) == {-1, 0, 1, 2, 3} and (horse[:, -10:] == -1).all()   # crowd cats, unlabelled strip
    # a PNG missing, a segment of an unknown category: bad records naming the file and the record
    (root / "annotations" / "panoptic_val2017" / "000000000139.png").rename(tmp_path / "gone.png")
    try:
        with pytest.raises(BadRecord, match="panoptic PNG not found"):
            build_source("pan2", f"coco_panoptic:{root}", 64).split("test")[0]
    finally:
        (tmp_path / "gone.png").rename(root / "annotations" / "panoptic_val2017" / "000000000139.png")
    broken = json.loads((root / "annotations" / "panoptic_val2017.json").read_text())
    broken["annotations"][0]["segments_info"][0]["category_id"] = 999
    (tmp_path / "annotations" / "panoptic_val2017").mkdir(parents=True)
    (tmp_path / "annotations" / "panoptic_val2017.json").write_text(json.dumps(broken))
    with pytest.raises(BadRecord, match=r"categories \[999\]"):
        build_source("pan3", f"coco_panoptic:{tmp_path}", 64).split("val2017")[0]


def test_toy_run_of_both_tasks_on_the_world_and_the_panoptic_files(panoptic, tmp_path):
    out = tmp_path / "run"
    proc = run_script("scripts/train_mixture.py", "--tasks", "normals,semantic_segmentation,semantic_segmentation@pan",
                      "--source", f"pan=coco_panoptic:{panoptic[0]}", "--preset", "toy", "--batch-size", "8",
                      "--vq-steps", "5", "--steps", "4", "--no-compile", "--no-progress", "--eval-n", "4",
                      "--out", str(out), env={"UNIO_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "eval.json").read_text())
    assert {"mean_angle", "median_angle", "within_11.25", "within_22.5", "within_30"} <= set(results["model"]["normals"])
    assert {"miou", "pixel_accuracy"} <= set(results["model"]["semantic_segmentation"])
    assert "iou_grass-merged" in results["model"]["semantic_segmentation@pan"]
    assert set(results["baselines"]["normals"]) == {"mean_normal", "vq_ceiling"}
    assert set(results["baselines"]["semantic_segmentation"]) == {"majority", "vq_ceiling"}
    ranges = {r["name"] for r in json.loads((out / "model" / "vocab.json").read_text())["ranges"]}
    assert {"normal_codes", "class_codes"} <= ranges


def test_the_class_names_of_a_panoptic_source_join_the_options_a_model_saves(panoptic):
    from unio.task_set import with_source_options
    names, tasks = [c["name"] for c in PANOPTIC_CATEGORIES], {"semantic_segmentation": TASKS.get("semantic_segmentation")}
    sources = {"pan": build_source("pan", f"coco_panoptic:{panoptic[0]}", 64), "world": build_source("world", None, 64)}
    on = {source: [("semantic_segmentation", source)] for source in sources}
    assert with_source_options({}, on["pan"], tasks, sources) == {"semantic_segmentation": {"class_names": names}}
    assert with_source_options({}, on["world"], tasks, sources) == {}                 # the task's own already
    with pytest.warns(UserWarning, match="name different classes"):
        assert with_source_options({}, on["pan"] + on["world"], tasks, sources) == {}
    given = {"semantic_segmentation": {"class_names": ["a", "b", "c", "d"]}, "detection": {"order": "x"}}
    assert with_source_options(given, on["pan"], tasks, sources) == given            # the options given win


def test_a_model_trained_on_panoptic_files_names_their_classes_after_loading(panoptic, tmp_path):
    """The toy run's model folder, loaded anew: unio.run's answer names the file's classes, not the world's."""
    out = tmp_path / "run"
    proc = run_script("scripts/train_mixture.py", "--tasks", "semantic_segmentation@pan", "--source",
                      f"pan=coco_panoptic:{panoptic[0]}", "--preset", "toy", "--batch-size", "4", "--vq-steps", "5",
                      "--steps", "2", "--no-compile", "--no-progress", "--eval-n", "2", "--out", str(out),
                      env={"UNIO_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = [c["name"] for c in PANOPTIC_CATEGORIES]
    assert json.loads((out / "model" / "config.json").read_text())["task_options"] == {
        "semantic_segmentation": {"class_names": names}}
    image = np.asarray(Image.open(next((panoptic[0] / "val2017").glob("*.jpg"))))
    result = unio.run("Segment the image by class.", image, model=str(out / "model"))
    assert result.class_names == names and result.classes.shape == image.shape[:2]
    assert 0 <= result.classes.min() and result.classes.max() < len(names)

"""Map to image (tasks/map_to_image.py): the maps as the encoder's image, the agreement metric on known
inputs, its baselines, classifier-free guidance shared with generate, unio.map_to_image in the map's pixels
and its refusals, and a toy run through the real script."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import run_script, world_examples

import unio
from unio.data.sources import build_source
from unio.data.world.constants import COLORS
from unio.data.world.surfaces import CLASS_NAMES
from unio.infer.evaluation import evaluate_baselines, score
from unio.infer.pipeline import generate_answers
from unio.kit.pixel_maps import PALETTE, class_colours, classes_from_image, depth_from_grey, depth_grey
from unio.model import UnioModel
from unio.registries import TASKS
from unio.task import Example
from unio.vocab import EOS

TASK = "map_to_image"
SKY = (150, 190, 235)


def test_depth_grey_values_and_round_trip():
    depth = np.array([[0.0, 2.5, 5.0], [10.0, 15.0, 7.3]], np.float32)
    grey = depth_grey(depth)
    assert grey.shape == (2, 3, 3) and grey.dtype == np.uint8 and (grey == grey[..., :1]).all()
    assert grey[..., 0].tolist() == [[255, 191, 128], [0, 0, 69]]          # 255 * (1 - d / 10 m), clipped
    assert (depth_grey(depth, valid=np.array([[True, False, True], [True, True, True]]))[0, 1] == 0).all()
    near = np.random.default_rng(0).uniform(0, 10, (16, 16))
    assert np.abs(depth_from_grey(depth_grey(near)) - near).max() <= 10 / 510 + 1e-6     # half a grey level
    with pytest.raises(ValueError, match=r"\(H, W\) depth map"):
        depth_grey(np.zeros((2, 2, 3)))


def test_examples_show_the_scene_map_and_answer_with_its_image():
    task = TASKS.get(TASK)
    examples = world_examples(task, "test", 12, 32)
    assert {ex.meta["kind"] for ex in examples} == {"classes", "depth"}
    for ex in examples:
        record = ex.record
        assert np.array_equal(ex.target, record["image"])
        if ex.meta["kind"] == "classes":
            assert ex.prompt in ("Generate an image from the segment map.", "Draw the scene of this segment map.")
            assert np.array_equal(ex.image, class_colours(record["classes"]))
            assert np.array_equal(classes_from_image(ex.image, len(CLASS_NAMES)), np.asarray(record["classes"]))
        else:
            assert ex.prompt in ("Generate an image from the depth map.", "Draw the scene of this depth map.")
            assert np.array_equal(ex.image, depth_grey(record["depth"]))
        assert np.array_equal(task.report_image(ex), ex.image)                # the run's report shows the map
    assert (PALETTE[:len(CLASS_NAMES)] != 0).any(-1).all()                  # no class is painted black


def test_agreement_on_known_inputs():
    task = TASKS.get(TASK)
    examples = world_examples(task, "test", 20, 32)
    perfect = score(task, [ex.target for ex in examples], examples)
    assert perfect["agreement"] == perfect["agreement_classes"] == perfect["agreement_depth"] == 1.0
    assert perfect["n"] == 20
    blank = score(task, [np.zeros((32, 32, 3), np.uint8)] * 20, examples)
    assert blank["agreement"] == 0.0
    gold = np.zeros((8, 8), bool)
    gold[2:6, 2:6] = True                                                   # 16 object pixels
    image = np.full((8, 8, 3), SKY, np.uint8)
    image[4:8, 2:6] = COLORS["red"]                                         # 8 of them read, 8 outside
    made = [Example(TASK, None, "", None, {"kind": kind, "foreground": gold}) for kind in ("classes", "depth")]
    by_hand = task.evaluate([image, np.full((8, 8, 3), SKY, np.uint8)], made)
    assert by_hand == {"agreement": pytest.approx((1 / 3 + 0) / 2), "n": 2, "agreement_classes": pytest.approx(1 / 3),
                       "agreement_depth": 0.0}


def test_baselines_score_the_map_blind_and_the_codebook(modalities):
    world = build_source("world", None, 32)
    results = evaluate_baselines(modalities, [(TASK, "world")], {"world": world}, n=12, resolution=32, n_train=30)
    baselines = results[TASK]
    assert set(baselines) == {"map_blind", "vq_ceiling"}
    assert all({"agreement", "agreement_classes", "agreement_depth"} <= set(m) for m in baselines.values())
    assert 0 <= baselines["map_blind"]["agreement"] < 0.5                  # another scene's objects are elsewhere
    task = TASKS.get(TASK)
    train, test = world_examples(task, "train", 30, 32), world_examples(task, "test", 4, 32)
    blind = task.baselines()["map_blind"](train, modalities)
    assert all(any(blind(ex) is t.target for t in train) and not np.array_equal(blind(ex), ex.target) for ex in test)


def test_guidance_shares_generate_null_prompt():
    task, generate = TASKS.get(TASK), TASKS.get("generate")
    assert task.null_prompt == generate.null_prompt and task.null_prompt not in task.prompts
    rng = np.random.default_rng(0)
    drawn = [task.for_training(replace(ex, meta=dict(ex.meta)), rng) for ex in world_examples(task, "train", 40, 32) * 50]
    nulls = [ex for ex in drawn if ex.prompt == task.null_prompt]
    assert 0.07 < len(nulls) / len(drawn) < 0.13 and all(ex.image is None for ex in nulls)
    twin = task.unconditional(world_examples(task, "test", 1, 32)[0])
    assert twin.prompt == task.null_prompt and twin.image is None
    assert task.null_prompt in task.training_texts(drawn[0])
    with pytest.raises(ValueError, match="null_fraction"):
        type(task)(null_fraction=1.0)
    with pytest.raises(ValueError, match="kinds are one or more of classes, depth"):
        type(task)(kinds=["normals"])
    assert "depth" not in type(task)(kinds="classes").requires


def test_guided_answers_are_a_full_grid_of_rgb_codes(tiny_config, modalities):
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    task = TASKS.get(TASK)
    examples = world_examples(task, "test", 3, 32)
    vq, side = modalities.vocab.range("vq"), 32 // modalities["vq"].downsample
    plain = generate_answers(model, modalities, task, examples)
    guided = generate_answers(model, modalities, task, examples, guidance_scale=10.0)
    for a in plain + guided:
        assert len(a.ids) == side * side and all(vq.start <= t < vq.start + vq.size for t in a.ids)
        assert task.grammar(modalities, 32).accepts(a.ids + [EOS], modalities.vocab)
        assert a.prediction.shape == (32, 32, 3) and a.prediction.dtype == np.uint8
    assert [a.ids for a in guided] != [a.ids for a in plain]                # the null twin does change them
    assert [a.ids for a in generate_answers(model, modalities, task, examples, guidance_scale=0.0)] == \
        [a.ids for a in plain]


def test_helper_answers_in_the_map_pixels(runner):
    classes = np.asarray(build_source("world", None, 32).split("test")[0]["classes"])
    resized = classes[np.linspace(0, 31, 61).round().astype(int)][:, np.linspace(0, 31, 97).round().astype(int)]
    result = unio.map_to_image(resized, model=runner)
    assert result.task == TASK and result.prompt == "Generate an image from the segment map."
    assert result.generated_image.shape == (61, 97, 3) and result.generated_image.dtype == np.uint8
    assert np.array_equal(result.image, class_colours(resized)) and result.draw().size == (2 * 97, 61)
    holes = np.full((61, 97), 4.0)
    holes[:5] = 0
    depth = unio.map_to_image(holes, kind="depth", model=runner, guidance_scale=0.0)
    assert depth.prompt == "Generate an image from the depth map." and depth.generated_image.shape == (61, 97, 3)
    assert (depth.image[5:] == 153).all() and (depth.image[:5] == 0).all()   # 255 * (1 - 4 / 10); no depth black


@pytest.mark.parametrize("given, kind, message", [
    (np.zeros((4, 4), int), "normals", "kind must be one of 'classes', 'depth'"),
    (np.zeros((4, 4, 3), int), "classes", r"a classes map is a non-empty \(H, W\) array; got shape \(4, 4, 3\)"),
    (np.zeros((0, 4)), "depth", r"non-empty \(H, W\) array"),
    (np.zeros((4, 4)), "classes", "integer class indices from -1 .* 0 sky, 1 ground.*got dtype float64"),
    (np.full((4, 4), -2), "classes", r"got values -2\.\.-2"),
    (np.full((4, 4), -1.0), "depth", "finite numbers >= 0"),
    (np.array([[np.nan]]), "depth", "finite numbers >= 0"),
    (np.array([["far"]]), "depth", "real numbers >= 0; got dtype <U3"),
])
def test_helper_refuses_bad_maps_naming_what_is_valid(runner, given, kind, message):
    with pytest.raises(ValueError, match=message):
        unio.map_to_image(given, kind=kind, model=runner)


def test_toy_run_trains_and_evaluates_the_task(tmp_path, toy_cache):
    out = tmp_path / "run"
    proc = run_script("scripts/train_mixture.py", "--tasks", TASK, "--preset", "toy", "--batch-size", "8",
                      "--vq-steps", "5", "--steps", "4", "--no-compile", "--no-progress", "--eval-n", "4",
                      "--out", str(out), env={"UNIO_CACHE": toy_cache})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "eval.json").read_text())
    assert 0 <= results["model"][TASK]["agreement"] <= 1 and results["model"][TASK]["n"] == 4
    assert set(results["baselines"][TASK]) == {"map_blind", "vq_ceiling"}
    ranges = {r["name"] for r in json.loads((out / "model" / "vocab.json").read_text())["ranges"]}
    assert "rgb_codes" in ranges and "class_codes" not in ranges          # the RGB codebook, no map's own
    assert (out / "report.png").is_file()
    answer = unio.map_to_image(np.full((61, 97), 5.0), kind="depth", model=str(out))
    assert answer.generated_image.shape == (61, 97, 3) and answer.generated_image.dtype == np.uint8

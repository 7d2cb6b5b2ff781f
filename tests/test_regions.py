"""Regions as input (mapped through the Frame, read as location tokens after the prompt), region
captioning and classification, image classification with answer options, image-text matching,
unio.detect, and a toy run of the real scripts with these tasks."""
import json
from collections import Counter
import warnings

import numpy as np
import pytest
from conftest import run_script_here, world_examples
from PIL import Image

import unio
from unio.data import encoding
from unio.data.encoding import box_ids, encode_prompts
from unio.data.world import World
from unio.kit.images import Frame
from unio.registries import TASKS

NEW_TASKS = "detection,find_all,region_caption,region_class,itm,classify@world_single"


def test_region_round_trip_through_the_frame(runner, modalities):
    image = np.zeros((60, 90, 3), np.uint8)                      # scale 32/90, padded at the bottom
    region = [9.0, 18.0, 45.0, 54.0]
    frame = Frame(60, 90, 32)
    assert frame.box_to_original(frame.box_to_model(region)) == pytest.approx(region)
    example = runner._job("What does the region describe?", image, None, region)
    assert example.task == "region_caption" and example.region == pytest.approx([3.2, 6.4, 16.0, 19.2])
    ids, _ = encode_prompts([example], modalities, 48)
    location = box_ids(example.region, modalities, 32, 32)
    text = modalities.text_ids(example.prompt)
    assert ids[0].tolist() == text + location
    local = modalities.vocab.to_local("coordinates", location)
    back = frame.box_to_original(modalities["coordinates"].decode_box(local, 32, 32))
    assert np.abs(np.array(back) - region).max() <= 90 / 32 / 2 + 1e-6     # half a bin, in original pixels


def test_prompts_without_a_region_encode_as_before(modalities):
    exs = world_examples(TASKS.get("vqa"), "test", 3, 32)
    ids, mask = encode_prompts(exs, modalities, 48)
    for row, m, ex in zip(ids.tolist(), mask.tolist(), exs):
        assert row[:sum(m)] == modalities.text_ids(ex.prompt)


def test_a_long_prompt_keeps_its_region_and_its_cut_is_reported_once_per_task(modalities):
    ex = world_examples(TASKS.get("region_caption"), "test", 1, 32)[0]
    ex.prompt = "describe " * 60
    encoding._CUT_REPORTED.discard("region_caption")
    with pytest.warns(UserWarning, match="'region_caption': a prompt is longer than the model's max_text_length") as got:
        ids, _ = encode_prompts([ex], modalities, 48)
    assert got[0].filename == __file__          # it points at the caller, not at unio's own code
    assert ids.shape[1] == 48 and ids[0, -4:].tolist() == box_ids(ex.region, modalities, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encode_prompts([ex], modalities, 48)     # reported already: no second warning


def test_run_with_a_region_and_the_helpers(runner):
    image = np.asarray(Image.fromarray(World("test")[0].image).resize((90, 60)))
    result = unio.run("What does the region describe?", image, model=runner, region=[10, 10, 50, 40])
    assert result.task == "region_caption" and isinstance(result.text, str)
    two = unio.run(["What does the region describe?", "What color is the cube?"], [image] * 2, model=runner,
                   region=[[10, 10, 50, 40], None])
    assert [r.task for r in two] == ["region_caption", "vqa"]
    with pytest.raises(ValueError, match="task 'region_caption' asks about a region"):
        unio.run(["What does the region describe?"] * 2, [image] * 2, model=runner, region=[[10, 10, 50, 40], None])
    with pytest.raises(ValueError, match="regions"):
        runner(["a?"], [image], regions=[None, None])
    detected = unio.detect(image, model=runner)
    assert detected.task == "detection" and len(detected.boxes) == len(detected.labels) == len(detected.scores)
    for x1, y1, x2, y2 in detected.boxes:
        assert 0 <= x1 <= x2 <= 90 and 0 <= y1 <= y2 <= 60
    assert detected.draw().size == (90, 60)
    found = unio.find_all(image, "red cube", model=runner)
    assert found.task == "find_all" and len(found.boxes) == len(found.scores)


def test_answer_options_rank_instead_of_generating(runner):
    image = World("test")[0].image
    result = unio.run("What is this?", image, model=runner)
    assert result.task == "classify" and result.text in TASKS.get("classify").categories
    assert unio.run('Does the image match "a red cube."?', image, model=runner).text in ("yes", "no")


def test_itm_hard_negatives_change_one_thing():
    from importlib import import_module
    itm = import_module(type(TASKS.get("itm")).__module__)
    caption = "a large red cube, a small blue sphere and a small green cone."
    objects = itm.parse(caption)
    assert itm.render(objects) == caption and itm.parse("two dogs on a sofa.") is None
    rng = np.random.default_rng(0)
    for kind in itm.KINDS:
        negative = itm.parse(itm.hard_negative(objects, kind, rng))
        if kind == "count":
            assert abs(len(negative) - len(objects)) == 1
        else:
            assert len(negative) == 3 and sum(a != b for o, n in zip(objects, negative) for a, b in zip(o, n)) == 1
    exs = world_examples(TASKS.get("itm"), "test", 80, 32)
    positives = [ex for ex in exs if ex.target == "yes"]
    assert 0.3 < len(positives) / len(exs) < 0.7
    assert all(f'"{World("test")[i].caption}"' in ex.prompt for i, ex in enumerate(exs) if ex.target == "yes")
    assert all(f'"{World("test")[i].caption}"' not in ex.prompt for i, ex in enumerate(exs) if ex.target == "no")


def test_region_and_classification_metrics_by_hand():
    exs = world_examples(TASKS.get("region_caption"), "test", 4, 32)
    assert exs[0].target.startswith("a ") and exs[0].region is not None
    result = TASKS.get("region_caption").evaluate([ex.target for ex in exs[:2]] + ["a thing", "x"], exs)
    assert result["exact_match"] == 0.5 and 0 < result["cider"]
    exs = world_examples(TASKS.get("classify"), "test", 4, 32)
    assert TASKS.get("classify").evaluate([exs[0].target, "no", "no", exs[3].target], exs)["accuracy"] == 0.5
    exs = world_examples(TASKS.get("itm"), "test", 10, 32)
    assert TASKS.get("itm").evaluate([ex.target for ex in exs], exs)["accuracy"] == 1.0


def test_itm_accuracy_by_listed_objects_and_yes_share():
    """Answering "no" to everything: right on every negative, wrong on every positive, yes_share 0; the
    accuracy of each number of listed objects is the share of negatives among those captions."""
    from importlib import import_module
    itm = import_module(type(TASKS.get("itm")).__module__)
    exs = world_examples(TASKS.get("itm"), "test", 60, 32)
    result = TASKS.get("itm").evaluate(["no"] * len(exs), exs)
    assert result["yes_share"] == 0.0 and result["accuracy_positive"] == 0.0
    for n in {len(itm.parse(ex.meta["text"])) for ex in exs}:
        these = [ex for ex in exs if len(itm.parse(ex.meta["text"])) == n]
        assert result[f"accuracy_objects_{n}"] == pytest.approx(sum(ex.target == "no" for ex in these) / len(these))
    assert TASKS.get("itm").evaluate([ex.target for ex in exs], exs)["yes_share"] == pytest.approx(
        sum(ex.target == "yes" for ex in exs) / len(exs))


def test_toy_run_of_the_scripts_with_the_new_tasks(tmp_path, modalities, all_tasks_run):
    """The session's toy run of every task (conftest's ALL_TASKS_RUN: with --task-option detection.order=x,
    generation's guidance among two scales and classify@world_single), then the baselines through evaluate.py."""
    out = all_tasks_run.out
    assert json.loads((out / "options.json").read_text())["task_options"] == {"detection": {"order": "x"},
                                                                              "generate": {"guidance": [0, 2]}}
    results = json.loads((out / "eval.json").read_text())
    assert set(NEW_TASKS.split(",")) <= set(results["model"])
    assert {"ap", "ap50", "ap75", "ar100"} <= set(results["model"]["detection"])
    assert {"precision", "recall", "fp_rate_absent"} <= set(results["model"]["find_all"])
    assert "exact_match" in results["model"]["region_caption"] and "accuracy" in results["model"]["itm"]
    assert set(results["baselines"]["classify@world_single"]) == {"majority"}
    modalities.save(tmp_path / "tok")
    proc = run_script_here("scripts/evaluate.py", "--baseline", "all", "--tasks", NEW_TASKS, "--n", "20", "--resolution", "32",
                      "--tokenizers", str(tmp_path / "tok"), "--json", str(tmp_path / "b.json"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    baselines = json.loads((tmp_path / "b.json").read_text())["results"]
    assert baselines["detection"]["prior"]["ap50"] < 0.5 and baselines["find_all"]["none"]["fp_rate_absent"] == 0.0


def test_itm_easy_negatives_replace_training_negatives_only():
    from unio.task_set import configured_task
    original = TASKS.get("itm")
    exs = world_examples(original, "train", 40, 32)
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert [original.for_training(ex, rng).meta["kind"] for ex in exs] == [ex.meta["kind"] for ex in exs]
    assert rng.bit_generator.state == state            # easy=0 (the default) draws nothing
    easy = configured_task("itm", {"easy": 1.0})
    out = [easy.for_training(ex, rng) for ex in world_examples(easy, "train", 40, 32)]
    kinds = [ex.meta["kind"] for ex in out]
    assert "positive" in kinds and set(kinds) == {"positive", "easy"}
    assert all(ex.target == ("yes" if ex.meta["kind"] == "positive" else "no") for ex in out)
    assert all(f'"{ex.meta["text"]}"' in ex.prompt for ex in out)
    with pytest.raises(ValueError, match="easy must be a share"):
        configured_task("itm", {"easy": 2})
    assert TASKS.get("itm") is original                # the registry's task is untouched


def test_itm_negatives_draw_training_kinds_at_their_weights():
    from importlib import import_module

    from unio.task_set import configured_task
    weighted = configured_task("itm", {"negatives": {"color": 3, "shape": 1}})
    itm = import_module(type(weighted).__module__)
    exs = world_examples(weighted, "train", 400, 32)
    assert {ex.meta["kind"] for ex in exs} == {"positive", "size", "color", "shape", "count"}   # evaluation: even
    rng = np.random.default_rng(0)
    out = [weighted.for_training(ex, rng) for ex in exs]
    kinds = Counter(ex.meta["kind"] for ex in out if ex.target == "no")
    assert set(kinds) == {"color", "shape"} and 2 < kinds["color"] / kinds["shape"] < 4.5
    for ex in out:
        asked, own = itm.parse(ex.meta["text"]), itm.parse(ex.meta["caption"])
        if ex.target == "yes":
            assert asked == own
            continue
        assert f'"{ex.meta["text"]}"' in ex.prompt and len(asked) == len(own)
        changed = [i for i, (a, b) in enumerate(zip(asked, own)) for j in range(3) if a[j] != b[j]]
        slot = ("size", "color", "shape").index(ex.meta["kind"])
        assert len(changed) == 1 and asked[changed[0]][slot] != own[changed[0]][slot]
    for bad in ({"colour": 1}, {"color": -1}, {"color": 0}, [1, 2]):
        with pytest.raises(ValueError, match="negatives"):
            configured_task("itm", {"negatives": bad})


def test_find_all_absent_forms_draw_training_absent_queries_in_those_forms():
    from unio.task_set import configured_task
    weighted = configured_task("find_all", {"absent_forms": {"shape": 1}})
    exs = world_examples(weighted, "train", 300, 32)
    plain = [(ex.prompt, ex.meta["form"]) for ex in world_examples(TASKS.get("find_all"), "train", 300, 32)]
    assert [(ex.prompt, ex.meta["form"]) for ex in exs] == plain          # evaluation's draw is unchanged
    rng = np.random.default_rng(0)
    out = [weighted.for_training(ex, rng) for ex in exs]
    absent = [ex for ex in out if not ex.target]
    assert len(absent) > 50 and Counter(ex.meta["form"] for ex in absent)["shape"] > 0.8 * len(absent)
    for ex in absent:          # still absent: no object of the image has the query's words
        assert f'"{ex.meta["query"]}"' in ex.prompt
        assert not any(set(ex.meta["query"].split()) <= set(a.values()) for a in ex.meta["attributes"])
    assert [ex.prompt for ex in out if ex.target] == [p for (p, _), ex in zip(plain, exs) if ex.target]
    for bad in ({"shapes": 1}, {"shape": -1}, {"shape": 0}):
        with pytest.raises(ValueError, match="absent_forms"):
            configured_task("find_all", {"absent_forms": bad})


def test_find_all_through_detection_keeps_the_labels_that_name_the_query():
    task = TASKS.get("find_all")
    detected = {"boxes": [[0, 0, 4, 4], [5, 5, 9, 9], [10, 10, 14, 14]], "scores": [0.9, 0.8, 0.7],
                "labels": ["large red cube", "small blue sphere", "small red cube"]}

    def kept(query, category=False):
        ex = world_examples(task, "test", 1, 32)[0]
        ex.meta.update(query=query, category=category)
        return task.from_answer(detected, ex)

    assert kept("red cube") == {"boxes": [[0, 0, 4, 4], [10, 10, 14, 14]], "scores": [0.9, 0.7]}
    assert kept("red object")["boxes"] == [[0, 0, 4, 4], [10, 10, 14, 14]]
    assert kept("large cube")["boxes"] == [[0, 0, 4, 4]] and kept("green cone") == {"boxes": [], "scores": []}
    assert kept("small red cube", category=True)["boxes"] == [[10, 10, 14, 14]]
    assert kept("cube", category=True)["boxes"] == []               # a category is the whole label


def test_find_all_via_detection_answers_with_the_detected_boxes(runner):
    """`find_all.via=detection`: unio.run asks detection and keeps the boxes whose label names the query
    ("object" names every one), in the same original pixels; the option is checked."""
    from unio.infer.runner import Runner
    image = np.asarray(Image.fromarray(World("test")[1].image).resize((90, 60)))
    via = Runner(runner.model, runner.mods, task_options={"find_all": {"via": "detection"}})
    detected = unio.detect(image, model=via)
    every = unio.find_all(image, "object", model=via)
    assert detected.boxes and every.task == "find_all"
    assert every.boxes == detected.boxes and every.scores == detected.scores
    assert unio.find_all(image, "purple zebra", model=via).boxes == []
    with pytest.raises(ValueError, match="answers through 'detection'"):
        via.processor.generate_options("find_all")          # the HF generate() path cannot follow it
    runner.processor.generate_options("find_all")           # the model's own runner answers by itself
    with pytest.raises(ValueError, match="via='refexp'"):
        Runner(runner.model, runner.mods, task_options={"find_all": {"via": "refexp"}})


def test_itm_via_detection_compares_the_listed_objects_with_the_detected_labels(runner):
    """`itm.via=detection`: "yes" exactly when the caption's objects are the detected labels, as many of
    each (so every hard negative of a right detection is "no"); a caption that lists no objects is an
    error naming it; unio.run follows the option."""
    from importlib import import_module

    from unio.infer.runner import Runner
    via = Runner(runner.model, runner.mods, task_options={"itm": {"via": "detection"}})
    task = via.tasks.get("itm")
    detected = {"boxes": [[0, 0, 4, 4]] * 3, "scores": [0.9] * 3,
                "labels": ["large red cube", "small blue sphere", "Large  red cube"]}
    ex = world_examples(task, "test", 1, 32)[0]

    def answer(text):
        ex.meta["text"] = text
        return task.from_answer(detected, ex)

    assert answer("a large red cube, a small blue sphere and a large red cube.") == "yes"
    assert answer("a small blue sphere, a large red cube and a large red cube.") == "yes"   # order is free
    assert answer("a large red cube and a small blue sphere.") == "no"                      # one cube dropped
    assert answer("a large red cube, a small blue cube and a large red cube.") == "no"      # a shape changed
    with pytest.raises(ValueError, match="two dogs on a sofa"):
        answer("two dogs on a sofa.")
    scene = World("test")[0]
    labels = unio.detect(scene.image, model=runner).labels or []
    for caption in (scene.caption, "a large red cube."):
        result = unio.run(f'Does the image match "{caption}"?', scene.image, model=via)
        assert result.task == "itm"
        parsed = import_module(type(task).__module__).parse(caption)
        want = sorted(" ".join(o) for o in parsed) == sorted(" ".join(l.lower().split()) for l in labels)
        assert result.text == ("yes" if want else "no")
    with pytest.raises(ValueError, match="via='caption'"):
        Runner(runner.model, runner.mods, task_options={"itm": {"via": "caption"}})

"""Segmentation (masks as VQ codes) and keypoints (K x (y, x, visibility)): token round trips, the grammar
under any weights, the frame, metrics by hand, OKS AP against pycocotools, drawn results, helpers, a tiny
model overfitting a batch of each, and a toy run of the real scripts."""
import json
import math
from importlib import import_module

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, overfit, run_script_here, world_examples
from PIL import Image

import unio
from unio.data.batching import Collator
from unio.data.records import make_example
from unio.data.world import World
from unio.infer.pipeline import generate_answers
from unio.infer.runner import Result
from unio.kit.images import Frame
from unio.kit.metrics import mask_ious
from unio.model import UnioModel
from unio.model.decoding import generate_constrained, strip_answer
from unio.registries import TASKS, TOKENIZERS
from unio.task import NothingToAsk
from unio.vocab import EOS


def plugin(name):
    return import_module(type(TASKS.get(name)).__module__)


def wide_record():
    """A 60x90 record (scaled by 32/90 and padded below): a disc and a bar, with keypoints."""
    ys, xs = np.mgrid[0:60, 0:90]
    disc = (xs - 30) ** 2 + (ys - 30) ** 2 <= 15 ** 2
    bar = (xs >= 55) & (xs < 85) & (ys >= 10) & (ys < 50)
    image = np.zeros((60, 90, 3), np.uint8)
    image[disc], image[bar] = (200, 40, 40), (40, 70, 210)
    objects = [{"box": [15, 15, 46, 46], "mask": disc, "category": "disc", "attributes": {"shape": "sphere"},
                "keypoints": [[30.5, 30.5, 2], [30.5, 15.5, 2], [45.5, 30.5, 1], [30.5, 45.5, 2], [15.5, 30.5, 2]]},
               {"box": [55, 10, 85, 50], "mask": bar, "category": "bar", "attributes": {"shape": "cube"},
                "keypoints": [[70, 30, 2], [55, 10, 2], [85, 10, 2], [85, 50, 2]]}]
    return {"image": image, "id": "wide", "objects": objects, "refexps": [["the disc", 0], ["the bar", 1]]}


# -- segmentation --------------------------------------------------------------------------------
def test_segment_targets_are_the_vq_round_trip_and_parse(modalities):
    """Gold mask -> codes (the answer's tokens) -> the decoded map is exactly the VQ round trip (the ceiling)."""
    task, mod = TASKS.get("segment"), plugin("segment")
    exs = world_examples(task, "test", 6, 32)
    assert {ex.meta["form"] for ex in exs} == {"referring", "box"}
    assert all((ex.region is None) == (ex.meta["form"] == "referring") for ex in exs)
    grammar, ceiling = task.grammar(modalities, 32), task.baselines()["vq_ceiling"]([], modalities)
    for ex, ids in zip(exs, task.targets(exs, modalities)):
        assert len(ids) == 16 and grammar.accepts(list(ids) + [EOS], modalities.vocab)
        assert np.allclose(task.decode(ids, modalities, ex), ceiling(ex), atol=1e-6)
        assert ex.target.shape == (32, 32) and ex.target.dtype == bool and ex.target.any()
    again = task.targets(exs, modalities)                     # from the cache, the same codes
    assert [list(t) for t in again] == [list(t) for t in task.targets(exs, modalities)]


def box_segment():
    """The segment task answering the box, then the mask within it (mask_in="box")."""
    return type(TASKS.get("segment"))(mask_in="box")


def test_box_relative_masks_crop_and_paste_back_exactly():
    mod = plugin("segment")
    ys, xs = np.mgrid[0:64, 0:64]
    for radius in (2.5, 6.5, 12):
        disc = (xs - 20.3) ** 2 + (ys - 30.7) ** 2 <= radius ** 2
        y, x = np.nonzero(disc)
        box = [x.min(), y.min(), x.max() + 1, y.max() + 1]
        crop = mod.crop_to_box(disc, box, 64)
        assert crop.shape == (64, 64) and crop.mean() > disc.mean()        # the object fills its grid
        assert np.array_equal(mod.paste_from_box(crop, box, 64, 64) > 0.5, disc)
        # a box as location bins state it (edges on pixel centres), the crop as a decoder gives it back (a
        # little under 1): the edge pixels keep the crop's edge values, not half of them
        coords = TOKENIZERS.get("coordinates")(num_bins=64)
        binned = coords.decode_box(coords.encode_box(box, 64, 64), 64, 64)
        assert binned[0] == box[0] + 0.5
        assert np.array_equal(mod.paste_from_box(0.9 * mod.crop_to_box(disc, binned, 64), binned, 64, 64) > 0.5, disc)
    bar = np.zeros((64, 64), bool)
    bar[10:20, 30:45] = True
    assert mod.crop_to_box(bar, [30, 10, 45, 20], 16).min() == 1.0       # a mask that is its box: all ones
    with pytest.raises(ValueError, match="mask_in must be 'image'.*or 'box'"):
        type(TASKS.get("segment"))(mask_in="crop")


def test_box_relative_targets_are_the_box_then_the_codes_and_round_trip(modalities):
    """mask_in="box": 4 location tokens (the object's box, both forms), then the codes of the mask within it;
    decoding the gold answer is the ceiling baseline, and beats the frame-wide codes on small objects."""
    task, frame_task = box_segment(), TASKS.get("segment")
    exs = world_examples(task, "test", 8, 32)
    grammar, ceiling = task.grammar(modalities, 32), task.baselines()["vq_ceiling"]([], modalities)
    coords = modalities["coordinates"]
    for ex, ids in zip(exs, task.targets(exs, modalities)):
        assert len(ids) == 4 + 16 and grammar.accepts(list(ids) + [EOS], modalities.vocab)
        assert modalities.vocab.to_local("coordinates", ids[:4]) == coords.encode_box(ex.meta["box"], 32, 32)
        decoded = task.decode(ids, modalities, ex)
        assert decoded.shape == (32, 32) and np.allclose(decoded, ceiling(ex), atol=1e-6)
        outside = ~plugin("segment").box_mask(task.answer_box(ex, modalities)[1], 32, 32)
        assert decoded[outside].max(initial=0) < 0.5                      # nothing outside the stated box
    assert not grammar.accepts(list(frame_task.targets(exs[:1], modalities)[0]) + [EOS], modalities.vocab)


def test_two_models_with_other_task_options_each_answer_by_their_own(tmp_path, modalities):
    """Task options belong to a loaded model, never to the registry: two models trained with other options
    for the same tasks, loaded in one process, each answer by their own, whichever was loaded last."""
    from unio.infer.runner import load
    from unio.model import UnioConfig
    options = {"a": {"segment": {"mask_in": "box"}, "classify": {"categories": ["large red cube", "small blue sphere"]}},
               "b": {"classify": {"categories": ["tiny green cone", "large cyan cylinder"]}}}
    for name, task_options in options.items():
        config = UnioConfig(vocab_size=modalities.vocab.size, task_options=task_options, **TINY_MODEL)
        UnioModel(config).save_pretrained(tmp_path / name)
        modalities.save(tmp_path / name / "tokenizers")
    runners = {name: load(tmp_path / name) for name in options}
    image = World("test")[0].image
    longest = {}
    for name, runner in runners.items():
        assert runner.model.config.task_options == options[name]
        assert runner.tasks.get("segment").mask_in == ("box" if name == "a" else "image")
        assert unio.run("What is this?", image, model=runner).text in options[name]["classify"]["categories"]
        longest[name] = runner.processor.generate_options("segment")["max_new_tokens"]
    assert longest["a"] == longest["b"] + 4                  # the box's 4 location tokens before the mask's codes
    assert TASKS.get("segment").mask_in == "image" and "tiny green cone" not in TASKS.get("classify").categories


def test_segment_maps_masks_to_the_original_image():
    """A perfect model-frame answer comes back as the gold mask of the 60x90 original (bar the resizing)."""
    task = TASKS.get("segment")
    record = wide_record()
    for seed in range(4):
        ex = make_example(task, record, 32, np.random.default_rng(seed))
        back = task.to_original(ex.target.astype(np.float32), ex.frame)
        gold = task.gold(ex)
        assert back.shape == (60, 90) and back.dtype == bool
        inter, union = mask_ious(back, gold)
        assert inter / union > 0.85
        assert task.to_result(back)["mask"].dtype == bool


def test_segment_refuses_records_without_masks():
    task = TASKS.get("segment")
    record = {"image": np.zeros((32, 32, 3), np.uint8), "id": "bare", "objects": [{"box": [0, 0, 5, 5]}]}
    with pytest.raises(NothingToAsk, match="bare.*no object with a non-empty mask"):
        make_example(task, record, 32, np.random.default_rng(0))
    crowd = {"image": np.zeros((32, 32, 3), np.uint8), "id": "crowd", "objects": [
        {"box": [0, 0, 5, 5], "mask": np.ones((32, 32), bool), "attributes": {"iscrowd": 1}}]}
    with pytest.raises(ValueError, match="crowd"):
        make_example(task, crowd, 32, np.random.default_rng(0))


def test_mask_metrics_by_hand():
    mod = plugin("segment")
    a = np.zeros((4, 4), bool)
    a[:2, :2] = True                         # 4 pixels
    b = np.zeros((4, 4), bool)
    b[:2, :] = True                          # 8 pixels, 4 shared: IoU 0.5
    m = mod.mask_metrics([(a, a), (a, b), (np.zeros((4, 4), bool), b)])
    assert m["miou"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["ciou"] == pytest.approx((4 + 4 + 0) / (4 + 8 + 8))
    assert m["p@0.5"] == pytest.approx(2 / 3) and m["p@0.7"] == pytest.approx(1 / 3)
    assert mod.box_mask([1, 1, 3, 2], 4, 4).sum() == 2
    with pytest.raises(ValueError, match="differ in size"):
        mask_ious(a, np.zeros((3, 3), bool))


def test_segment_evaluation_and_baselines(modalities):
    task = TASKS.get("segment")
    exs = world_examples(task, "test", 20, 32)
    perfect = [task.to_original(ex.target.astype(np.float32), ex.frame) for ex in exs]
    metrics = task.evaluate(perfect, exs)
    assert metrics["miou"] == 1.0 and metrics["p@0.7"] == 1.0
    assert {"miou_referring", "miou_box"} <= set(metrics) and any(k.startswith("miou_sphere") for k in metrics)
    assert any(k.startswith("miou_referring_") for k in metrics) and any(k.startswith("miou_box_") for k in metrics)
    for ex in exs:   # referring phrases split by whether they name the object's shape
        kind = ex.meta["phrase"]
        assert kind == (None if ex.meta["form"] == "box" else "names_shape" if ex.meta["shape"] in ex.prompt else "no_shape")
        assert kind is None or f"miou_referring_{ex.meta['shape']}_{kind}" in metrics
    kind = plugin("segment").phrase_kind
    assert (kind("the red sphere", "sphere"), kind("the small red one", "sphere"), kind("the cubes", "cube")) == (
        "names_shape", "no_shape", "no_shape")
    box = task.baselines()["gold_box"]([], modalities)
    scored = task.evaluate([task.to_original(box(ex), ex.frame) for ex in exs], exs)
    assert 0.5 < scored["miou"] < 1.0 and scored.get("miou_cube", 1.0) > scored.get("miou_cone", 0.0)


def test_a_vq_trained_on_masks_round_trips_them():
    """A small VQ-VAE trained on world masks (150 steps; 0.75 measured) gives them back: mean IoU > 0.5."""
    from unio.registries import TOKENIZERS
    from unio.train.tokenizer_setup import world_corpus
    vq = TOKENIZERS.get("vq")
    torch.manual_seed(0)
    corpus = world_corpus(["segment"], 32)
    model = vq.build(corpus, None, steps=150, batch_size=32, progress=False, hidden=16)
    task, mod = TASKS.get("segment"), plugin("segment")
    exs = world_examples(task, "test", 40, 32)
    masks = torch.stack([mod.mask_image(ex.target) for ex in exs])
    back = model.decode(model.encode(masks), channels=1)[:, 0].numpy() > 0.5
    ious = [mask_ious(b, ex.target) for b, ex in zip(back, exs)]
    assert np.mean([i / u for i, u in ious]) > 0.5


# -- keypoints -----------------------------------------------------------------------------------
def test_keypoint_targets_round_trip_within_half_a_bin(modalities):
    task = TASKS.get("keypoints")
    exs = world_examples(task, "test", 30, 32)
    grammar, half = task.grammar(modalities, 32), 32 / modalities["coordinates"].num_bins / 2
    assert grammar.static and grammar.max_length == 3 * 5 + 1
    cones = 0
    for ex, ids in zip(exs, task.targets(exs, modalities)):
        assert len(ex.target) == 5 and grammar.accepts(list(ids) + [EOS], modalities.vocab)
        local = modalities.vocab.to_local("coordinates", ids)
        assert all(local[3 * k: 3 * k + 2] == [0, 0] for k, (_, _, v) in enumerate(ex.target) if v == 0)
        decoded = task.decode(ids, modalities, ex)["keypoints"]
        for (x, y, v), (gx, gy, gv) in zip(decoded, ex.target):
            assert v == gv
            if gv and 0 <= gx < 32 and 0 <= gy < 32:
                assert abs(x - gx) <= half + 1e-9 and abs(y - gy) <= half + 1e-9
        cones += ex.meta["shape"] == "cone"
        if ex.meta["shape"] == "cone":
            assert ex.target[4] == [0.0, 0.0, 0]           # 4 vertices, the 5th is padding
    assert cones


def test_keypoints_in_original_pixels_and_pck(modalities):
    task = TASKS.get("keypoints")
    record = wide_record()
    ex = make_example(task, record, 32, np.random.default_rng(1))
    ids = task.targets([ex], modalities)[0]
    back = task.to_original(task.decode(ids, modalities, ex), ex.frame)["keypoints"]
    gold, box, area = task.gold(ex)
    assert area == pytest.approx(record["objects"][ex.meta["object"]]["mask"].sum())
    step = 90 / modalities["coordinates"].num_bins      # one bin in original pixels
    for (x, y, v), (gx, gy, gv) in zip(back, gold):
        assert v == gv and (not gv or (abs(x - gx) <= step / 2 + 1e-6 and abs(y - gy) <= step / 2 + 1e-6))
    pck = plugin("keypoints").pck
    points = [[gx + 2.0, gy, v] for gx, gy, v in gold]          # 2 px off: within 0.1 of a 30-31 px box
    assert pck([points], [(gold, box, area)], 0.1) == 1.0 and pck([points], [(gold, box, area)], 0.05) == 0.0


def test_keypoints_refuse_too_many_points_and_unlabelled_objects():
    task = TASKS.get("keypoints")
    record = {"image": np.zeros((32, 32, 3), np.uint8), "id": "many",
              "objects": [{"box": [0, 0, 9, 9], "keypoints": [[1, 1, 2]] * 17}]}
    with pytest.raises(ValueError, match="17 keypoints.*answers with 5"):
        make_example(task, record, 32, np.random.default_rng(0))
    record["objects"][0]["keypoints"] = [[0, 0, 0]] * 5
    with pytest.raises(NothingToAsk, match="'many' has no object with labelled keypoints"):
        make_example(task, record, 32, np.random.default_rng(0))
    person = TASKS.get("person_keypoints")
    assert person.num_keypoints == 17 and person.grammar is not None and len(person.sigmas) == 17


def test_oks_ap_equals_the_hand_computed_oks():
    """Two objects: one answered exactly (OKS 1), one with every point moved so that OKS = 0.72 by COCO's
    formula exp(-d^2 / (2 area (2 sigma)^2)): matched at thresholds 0.50..0.70 (5 of 10), so AP =
    (5 + 5 * 51/101) / 10 with COCO's 101 recall points, AP50 = 1, AP75 = 51/101 (recall 0.5 at precision 1)."""
    oks_ap = plugin("keypoints").oks_ap
    sigmas = np.array([0.05, 0.1, 0.08])
    area = 400.0
    gold_a = [[10.0, 10.0, 2], [20.0, 10.0, 2], [15.0, 20.0, 1]]
    gold_b = [[40.0, 40.0, 2], [50.0, 40.0, 2], [0.0, 0.0, 0]]
    target = 0.72
    moved = [[x + math.sqrt(-math.log(target) * 2 * area * (2 * s) ** 2), y, v] for (x, y, v), s in zip(gold_a, sigmas)]
    gold = [(gold_a, [5, 5, 25, 25], area), (gold_b, [35, 35, 55, 45], area)]
    result = oks_ap(gold, [(moved, 0.8), (gold_b, 0.9)], sigmas)
    assert result["oks_ap"] == pytest.approx((5 + 5 * 51 / 101) / 10)
    assert result["oks_ap50"] == pytest.approx(1.0) and result["oks_ap75"] == pytest.approx(51 / 101)
    with_coco_sigmas = oks_ap([(gold_b + [[0, 0, 0]] * 14, [35, 35, 55, 45], area)], [(gold_b + [[0, 0, 0]] * 14, 1.0)],
                              plugin("keypoints").COCO_SIGMAS)
    assert with_coco_sigmas["oks_ap"] == pytest.approx(1.0)


def test_oks_ap_agrees_with_pycocotools_own_oks():
    """Our COCOeval set-up gives the OKS that pycocotools' computeOks gives, on a random case."""
    from pycocotools.cocoeval import COCOeval
    rng = np.random.default_rng(0)
    gold = [[float(x), float(y), int(v)] for x, y, v in zip(rng.uniform(0, 50, 17), rng.uniform(0, 50, 17),
                                                            rng.integers(0, 3, 17))]
    guess = [[x + rng.normal(0, 2), y + rng.normal(0, 2), 2] for x, y, _ in gold]
    sigmas = np.array(plugin("keypoints").COCO_SIGMAS)
    area = 900.0
    e = [((g[0] - p[0]) ** 2 + (g[1] - p[1]) ** 2) / (2 * sigmas[k]) ** 2 / (area + np.spacing(1)) / 2
         for k, (g, p) in enumerate(zip(gold, guess))]
    by_hand = float(np.mean([math.exp(-x) for x, g in zip(e, gold) if g[2] > 0]))
    captured = {}
    original = COCOeval.computeOks

    def spy(self, image, category):
        captured["oks"] = original(self, image, category)
        return captured["oks"]
    COCOeval.computeOks = spy
    try:
        plugin("keypoints").oks_ap([(gold, [0, 0, 50, 50], area)], [(guess, 1.0)], sigmas)
    finally:
        COCOeval.computeOks = original
    assert float(np.asarray(captured["oks"]).ravel()[0]) == pytest.approx(by_hand)


def test_keypoint_baselines(modalities):
    task = TASKS.get("keypoints")
    train, exs = world_examples(task, "train", 60, 32), world_examples(task, "test", 30, 32)
    scores = {name: task.evaluate([task.to_original(make(train, modalities)(ex), ex.frame) for ex in exs], exs)
              for name, make in task.baselines().items()}
    assert scores["token_ceiling"]["visibility_acc"] == 1.0
    assert scores["mean_relative"]["pck@0.1"] < scores["token_ceiling"]["pck@0.1"]


# -- both: any weights parse, a tiny model learns, results, drawing ------------------------------
def task_for(name):
    return box_segment() if name == "segment:box" else TASKS.get(name)


@pytest.mark.parametrize("name", ["segment", "segment:box", "keypoints"])
def test_every_generated_answer_parses(modalities, tiny_config, name):
    torch.manual_seed(0)
    task = task_for(name)
    name = task.name
    model = UnioModel(tiny_config).eval()
    exs = world_examples(task, "test", 3, 32)
    inputs = {k: v for k, v in Collator({name: task}, modalities, 48, 40)(exs).items()
              if k not in ("labels", "decoder_input_ids")}
    grammar = task.grammar(modalities, 32)
    for options in ({}, {"do_sample": True, "top_k": 50}, {"num_beams": 2}):
        for row, ex in zip(generate_constrained(model, inputs, grammar, modalities.vocab, **options).tolist(), exs):
            ids = strip_answer(row)
            assert grammar.accepts(ids + [EOS], modalities.vocab), row
            decoded = task.decode(ids, modalities, ex)
            if name == "keypoints":
                assert len(decoded["keypoints"]) == 5 and all(0 <= x <= 32 and 0 <= y <= 32 for x, y, _ in decoded["keypoints"])
            else:
                assert decoded.shape == (32, 32) and 0 <= decoded.min() and decoded.max() <= 1


def test_a_given_region_is_the_box_of_a_box_relative_answer(modalities, tiny_config):
    """mask_in="box": decoding forces the prompt's region as the answer's box (greedy, sampled, beams);
    a referring answer finds its own box."""
    torch.manual_seed(0)
    task, model = box_segment(), UnioModel(tiny_config).eval()
    exs = world_examples(task, "test", 6, 32)
    for options in ({}, {"do_sample": True, "top_k": 50}, {"num_beams": 2}):
        for answer, ex in zip(generate_answers(model, modalities, task, exs, **options), exs):
            prefix = task.answer_prefix(ex, modalities)
            assert (prefix is None) == (ex.region is None)
            if prefix is not None:
                assert answer.ids[:4] == prefix and prefix == task.targets([ex], modalities)[0][:4]
    assert TASKS.get("segment").answer_prefix(exs[0], modalities) is None      # "image": nothing forced


def test_forced_prefixes_follow_beams_and_guidance_rows():
    from unio.infer.pipeline import ForcedPrefix
    forced = ForcedPrefix([[5, 6], None], num_beams=2)
    scores = forced(torch.zeros(8, 1, dtype=torch.long), torch.zeros(8, 10))   # 2 examples x 2 beams x (cond, uncond)
    assert [int(r.argmax()) for r in scores] == [5, 5, 0, 0, 5, 5, 0, 0]
    assert (scores[0] > -1e30).sum() == 1 and (scores[2] > -1e30).all()
    later = forced(torch.zeros(8, 3, dtype=torch.long), torch.zeros(8, 10))     # past the prefix: free
    assert (later > -1e30).all()


@pytest.mark.parametrize("name", ["segment", "segment:box", "keypoints"])
def test_tiny_model_overfits_a_batch(modalities, tiny_config, name):
    torch.manual_seed(0)
    task = task_for(name)
    name = task.name
    exs = world_examples(task, "train", 4, 32)
    model = UnioModel(tiny_config)
    batch = Collator({name: task}, modalities, 48, 40)(exs)
    loss = overfit(model, batch, 150)
    assert loss < 0.05, loss
    answers = generate_answers(model, modalities, task, exs)
    for answer, ex, ids in zip(answers, exs, task.targets(exs, modalities)):
        if name == "segment":                 # every code of the mask
            assert answer.ids == list(ids)
            continue
        step = 32 / modalities["coordinates"].num_bins      # labelled points within a bin, visibility exact
        for (x, y, v), (gx, gy, gv) in zip(answer.prediction["keypoints"], task.decode(ids, modalities, ex)["keypoints"]):
            assert v == gv and (not gv or (abs(x - gx) <= step and abs(y - gy) <= step))


def test_helpers_return_masks_and_keypoints_in_original_pixels(runner):
    image = np.asarray(Image.fromarray(World("test")[0].image).resize((90, 60)))
    referring = unio.segment(image, "the red cube", model=runner)
    assert referring.task == "segment" and referring.prompt == 'Segment "the red cube".'
    assert referring.mask.shape == (60, 90) and referring.mask.dtype == bool
    boxed = unio.segment(image, model=runner, region=[10, 10, 50, 40])
    assert boxed.prompt == "Segment the object in the region." and boxed.mask.shape == (60, 90)
    assert unio.run("Segment the object in the region.", image, model=runner, region=[10, 10, 50, 40]).task == "segment"
    points = unio.keypoints(image, model=runner, region=[10, 10, 50, 40])
    assert points.task == "keypoints" and len(points.keypoints) == 5
    assert all(0 <= x <= 90 and 0 <= y <= 60 and v in (0, 1, 2) for x, y, v in points.keypoints)
    assert points.skeleton and points.names[0] == "centre"
    assert runner.recognise("Find the keypoints of the person in the region.") == "person_keypoints"
    for result in (referring, points):
        assert result.draw().size == (90, 60)


def test_drawn_mask_and_keypoints():
    image = np.full((40, 60, 3), 100, np.uint8)
    mask = np.zeros((40, 60), bool)
    mask[10:20, 10:30] = True
    drawn = np.asarray(Result("segment", "", image, mask=mask).draw())
    assert (drawn[mask] != image[mask]).any(axis=-1).all() and (drawn[~mask] == image[~mask]).all()
    points = [[10.0, 10.0, 2], [50.0, 10.0, 2], [50.0, 30.0, 1], [10.0, 30.0, 2], [30.0, 20.0, 0]]
    result = Result("keypoints", "", image, keypoints=[[30.0, 20.0, 2]] + points[:4])
    drawn = np.asarray(result.draw())
    assert (drawn[10, 10] != 100).any() and (drawn[30, 50] != 100).any()       # points
    assert (drawn[10, 30] != 100).any()                                          # skeleton: corner 1 -> corner 2
    assert (drawn[2, 2] == 100).all()


def test_toy_run_of_the_scripts_with_masks_and_keypoints(tmp_path, modalities, all_tasks_run):
    """The session's toy run of every task (segment and keypoints among them), then evaluate.py's baseline."""
    out = all_tasks_run.out
    results = json.loads((out / "eval.json").read_text())
    assert {"miou", "ciou", "p@0.5", "p@0.7"} <= set(results["model"]["segment"])
    assert {"pck@0.1", "visibility_acc"} <= set(results["model"]["keypoints"])
    assert set(results["baselines"]["segment"]) == {"gold_box", "vq_ceiling"}
    assert set(results["baselines"]["keypoints"]) == {"mean_relative", "token_ceiling"}
    assert results["baselines"]["keypoints"]["token_ceiling"]["pck@0.1"] > 0.5
    assert (out / "report.png").is_file()
    modalities.save(tmp_path / "tok")
    proc = run_script_here("scripts/evaluate.py", "--baseline", "gold_box", "--tasks", "segment", "--n", "20",
                      "--resolution", "32", "--tokenizers", str(tmp_path / "tok"), "--json", str(tmp_path / "b.json"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "b.json").read_text())["results"]["segment"]["gold_box"]["miou"] > 0.6


def test_every_object_tasks_compose_detection_and_the_box_task(runner):
    """'Segment every "cube".' runs detection, keeps the boxes whose label names the query, segments each."""
    import importlib
    every = importlib.import_module(type(TASKS.get("segment_every")).__module__)
    assert every.query_matches("large red cube", "red cubes") and every.query_matches("small cone", "object")
    assert not every.query_matches("large red cube", "blue cube") and every.query_matches("cone", None)
    image = np.asarray(Image.fromarray(World("test")[0].image).resize((90, 60)))
    detected = unio.detect(image, model=runner)
    result = unio.run('Segment every "object".', image, model=runner)
    assert result.task == "segment_every" and result.boxes == detected.boxes and result.labels == detected.labels
    assert result.mask.shape == (60, 90) and len(result.masks) == len(result.boxes)
    for box, mask in zip(result.boxes, result.masks):
        assert (mask == unio.segment(image, model=runner, region=box).mask).all()
    assert (result.mask == np.logical_or.reduce(result.masks + [np.zeros((60, 90), bool)])).all()
    points = unio.run("Find the keypoints of every object.", image, model=runner)
    assert points.task == "keypoints_every" and len(points.instances) == len(points.boxes)
    assert all(len(p) == 5 for p in points.instances) and len(points.keypoints) == 5 * len(points.boxes)
    assert points.draw().size == (90, 60) and result.draw().size == (90, 60)
    with pytest.raises(ValueError, match="answered in unio.run through 'detection' and has no training"):
        from unio.data.mixture import parse_mixture
        parse_mixture("segment_every", TASKS.names())


def test_every_object_keeps_only_the_boxes_the_query_names():
    """from_answer with a stand-in `ask`: labels decide which boxes are segmented; none kept, empty mask."""
    from unio.task import Example
    task, frame = TASKS.get("segment_every"), Frame(20, 30, 30)       # the model frame is the original, scaled 1
    detected = {"boxes": [[0, 0, 5, 5], [10, 0, 20, 10]], "labels": ["small red cube", "large blue cone"],
                "scores": [0.9, 0.8]}
    calls = []

    def ask(name, examples):
        calls.append((name, [ex.region for ex in examples], [ex.prompt for ex in examples]))
        masks = [np.zeros((20, 30), bool) for _ in examples]
        for mask, region in zip(masks, (ex.region for ex in examples)):
            x1, y1, x2, y2 = (int(v) for v in region)
            mask[y1:y2, x1:x2] = True
        return [{"mask": m} for m in masks]

    def answer(prompt):
        example = task.prepare(Example(task.name, np.zeros((30, 30, 3), np.uint8), prompt, None, frame=frame))
        return task.to_result(task.to_original(task.from_answer(detected, example, ask), frame))

    result = answer('Segment every "cone".')
    assert calls == [("segment", [[10, 0, 20, 10]], ["Segment the object in the region."])]
    assert result["labels"] == ["large blue cone"] and result["mask"].sum() == 100 and result["scores"] == [0.8]
    result = answer('Segment every "sphere".')
    assert result["boxes"] == [] and not result["mask"].any() and result["masks"] == [] and len(calls) == 1

"""Relations between objects: the predicate of two regions (`relation`), relationship detection
(`relations`, triplet recall@K as the Visual Genome papers count it), and Visual Genome's official files."""
import json

import numpy as np
import pytest
from conftest import load_script, run_script_here, world_examples
from official_formats import write_visual_genome

import unio
from unio.data.sources import build_source
from unio.data.world.relations import PREDICATES
from unio.kit.relations import pair_predicate, scene_triplets, triplet_recall
from unio.registries import TASKS
from unio.vocab import EOS


def test_pair_predicate_and_scene_triplets_by_priority():
    relations = [[0, "left of", 1], [0, "larger than", 1], [1, "right of", 0], [1, "smaller than", 0],
                 [2, "on", 0], [2, "near", 0]]
    priority = ("larger than", "smaller than", "left of", "right of")
    assert pair_predicate(relations, 0, 1, priority) == "larger than"
    assert pair_predicate(relations, 1, 0, priority) == "smaller than"
    assert pair_predicate(relations, 2, 0, priority) == "on"          # unknown predicates: the record's order
    assert pair_predicate(relations, 0, 2, priority) is None
    objects = [{"box": [30, 0, 40, 10]}, {"box": [50, 0, 60, 10]}, {"box": [0, 0, 10, 10]}]
    assert scene_triplets(relations, objects, priority) == [(2, "on", 0), (0, "larger than", 1)]


def test_triplet_recall_by_hand():
    a, b, far = [0, 0, 10, 10], [20, 0, 30, 10], [50, 50, 60, 60]
    gold = [[(a, "cube", "left of", b, "sphere"), (b, "sphere", "right of", a, "cube")], [], [(a, "cube", "on", b, "table")]]
    predicted = [[(a, "cube", "left of", [21, 0, 30, 10], "sphere", 0.9),   # IoU 0.9: found
                  (b, "sphere", "left of", a, "cube", 0.8),                # wrong predicate
                  (b, "sphere", "right of", far, "cube", 0.7)],            # object box misses
                 [(a, "cube", "on", b, "table", 0.5)],                     # an image without gold: not counted
                 [(a, "cube", "on", b, "table", 0.1)] + [(far, "x", "on", far, "y", 0.5)] * 20]   # found at 50, not 20
    recall = triplet_recall(gold, predicted)
    assert recall["recall@20"] == pytest.approx((0.5 + 0.0) / 2) and recall["recall@50"] == pytest.approx((0.5 + 1.0) / 2)
    assert triplet_recall(gold, predicted, boxes=False)["recall@50"] == pytest.approx((1.0 + 1.0) / 2)   # far box too
    renamed = [[(s, "thing", p, o, on, score) for s, _, p, o, on, score in image] for image in predicted]
    assert triplet_recall(gold, renamed)["recall@50"] == 0.0
    assert triplet_recall(gold, renamed, names=False)["recall@50"] == pytest.approx((0.5 + 1.0) / 2)


def test_relation_examples_ask_two_regions_and_round_trip(modalities):
    task = TASKS.get("relation")
    examples = world_examples(task, "train", 30, 32)
    assert examples and all(len(ex.region) == 2 and ex.target in PREDICATES for ex in examples)
    assert all(ex.target in ex.meta["holds"] for ex in examples)
    assert len({ex.target for ex in examples}) >= 3
    assert task.answer_options(examples[0]) == list(PREDICATES)
    for ex, ids in zip(examples, task.targets(examples, modalities)):
        assert task.decode(ids, modalities, ex) == ex.target
    asked = {ex.target for ex in examples}
    per_predicate = {f"accuracy_{p.replace(' ', '_')}" for p in asked}
    assert task.evaluate([ex.target for ex in examples], examples) == {"accuracy": 1.0, "holds": 1.0,
                                                                       **dict.fromkeys(per_predicate, 1.0)}
    wrong = [next(p for p in PREDICATES if p not in ex.meta["holds"]) for ex in examples]
    assert task.evaluate(wrong, examples) == {"accuracy": 0.0, "holds": 0.0, **dict.fromkeys(per_predicate, 0.0)}
    first = examples[0].target                      # right on one predicate's examples alone
    mixed = task.evaluate([ex.target if ex.target == first else w for ex, w in zip(examples, wrong)], examples)
    assert mixed[f"accuracy_{first.replace(' ', '_')}"] == 1.0
    assert all(v == 0.0 for k, v in mixed.items() if k.startswith("accuracy_") and k != f"accuracy_{first.replace(' ', '_')}")


def test_relation_with_names_says_both_regions_then_the_predicate(modalities):
    import dataclasses
    plain, named = TASKS.get("relation"), type(TASKS.get("relation"))(names=True)
    examples = world_examples(plain, "train", 20, 32)
    assert named.answer_options(examples[0]) is None and named.tokenizer_signature == "names"
    assert plain.tokenizer_signature is None
    for ex, ids in zip(examples, named.targets(examples, modalities)):
        subject, obj = ex.meta["names"]
        assert named.spoken(ex) == f"{subject}, {obj}: {ex.target}" and len(subject.split()) == 3   # "large red cube"
        assert named.decode(ids, modalities, ex) == named.spoken(ex)
        assert named.predicate(named.spoken(ex)) == ex.target          # the predicate after the names
        assert named.training_texts(ex) == [ex.prompt, named.spoken(ex)]
    assert len(named.targets(examples, modalities)[0]) <= named.max_tokens
    perfect = named.evaluate([named.spoken(ex) for ex in examples], examples)
    assert perfect["accuracy"] == 1.0 and perfect["names_exact"] == 1.0
    assert perfect["names_pair_exact"] == perfect["accuracy_named_right"] == 1.0 and "accuracy_named_wrong" not in perfect
    assert perfect["names_color"] == perfect["names_shape"] == perfect["names_size"] == 1.0
    shapes = {a["shape"] for ex in examples for a in ex.meta["attributes"]}
    assert all(perfect[f"names_shape_{shape}"] == 1.0 for shape in shapes)
    assert perfect["names_shape_smaller_half"] == perfect["names_shape_larger_half"] == 1.0
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])                  # a wrong shape on the larger box
    uneven = next(ex for ex in examples if area(ex.region[0]) > area(ex.region[1]))
    big, small = uneven.meta["names"]
    shape = uneven.meta["attributes"][0]["shape"]
    wrong = f"{big.replace(shape, next(s for s in ('cube', 'sphere') if s != shape))}, {small}: {uneven.target}"
    halves = named.evaluate([wrong], [uneven])
    assert halves["names_shape_larger_half"] == 0.0 and halves["names_shape_smaller_half"] == 1.0
    assert halves[f"names_shape_{shape}"] == (0.5 if uneven.meta["attributes"][1]["shape"] == shape else 0.0)
    tie = dataclasses.replace(uneven, region=[uneven.region[0], uneven.region[0]])   # equal areas: the larger half
    assert "names_shape_smaller_half" not in named.evaluate([wrong], [tie])
    assert named.evaluate([wrong], [tie])["names_shape_larger_half"] == 0.5
    unboxed = named.evaluate([wrong], [dataclasses.replace(uneven, region=None)])
    assert unboxed["names_shape"] == 0.5 and "names_shape_larger_half" not in unboxed
    ex = examples[0]
    subject, obj = ex.meta["names"]
    colour = ex.meta["attributes"][0]["color"]
    other = next(c for c in ("red", "blue", "green", "yellow", "purple") if c != colour)
    recoloured = f"{subject.replace(colour, other)}, {obj}: {ex.target}"
    one = named.evaluate([recoloured], [ex])
    assert one["accuracy"] == 1.0 and one["names_exact"] == 0.5 and one["names_color"] == 0.5 and one["names_shape"] == 1.0
    assert one["names_pair_exact"] == 0.0 and one["accuracy_named_wrong"] == 1.0 and "accuracy_named_right" not in one
    wrong_predicate = f"{subject}, {obj}: {next(p for p in PREDICATES if p != ex.target)}"
    split = named.evaluate([wrong_predicate, recoloured], [ex, ex])          # named right, said wrong; and the reverse
    assert split["accuracy_named_right"] == 0.0 and split["accuracy_named_wrong"] == 1.0 and split["names_pair_exact"] == 0.5
    assert "names_exact" not in named.evaluate([ex.target], [ex])            # no names said (a baseline)
    assert named.evaluate([ex.target, named.spoken(ex)], [ex, ex])["names_exact"] == 0.5
    # Visual Genome's names and ids
    vg = dataclasses.replace(ex, meta={**ex.meta, "names": ["man, standing", "horse"],
                                       "attributes": [{"object_id": 7}, {"object_id": 9}]})
    scores = named.evaluate([f"man, standing, horse: {ex.target}"], [vg])
    assert scores["names_exact"] == 1.0 and not any(k.startswith("names_object") for k in scores)
    assert named.evaluate([f"man, horse: {ex.target}"], [vg])["names_exact"] == 0.5         # the object still right
    both = named.evaluate([named.spoken(ex), f"man, standing, horse: {ex.target}"], [ex, vg])
    assert both["names_color"] == 1.0 and "names_object_id" not in both                      # scored where named


def test_relation_with_geometry_says_where_the_pair_stands_before_the_predicate(modalities):
    cls = type(TASKS.get("relation"))
    both, alone = cls(names=True, geometry=True), cls(geometry=True)
    examples = world_examples(TASKS.get("relation"), "train", 30, 32)
    assert both.tokenizer_signature == "names+geometry" and alone.tokenizer_signature == "geometry"
    assert both.answer_options(examples[0]) is None and alone.answer_options(examples[0]) is None   # generated
    for ex, ids in zip(examples, both.targets(examples, modalities)):
        subject, obj = ex.meta["names"]
        layout = [p for p in ("left of", "right of", "in front of", "behind") if p in ex.meta["holds"]]
        assert len([p for p in layout if p in ("left of", "right of")]) == 1     # world pairs: one of the two
        assert both.spoken(ex) == f"{subject}, {obj}; {', '.join(layout)}: {ex.target}"
        assert alone.spoken(ex) == f"{', '.join(layout)}: {ex.target}"
        assert both.decode(ids, modalities, ex) == both.spoken(ex) and len(ids) <= both.max_tokens
        for task in (both, alone):
            assert task.predicate(task.spoken(ex)) == ex.target and task.said_layout(task.spoken(ex)) == set(layout)
        assert both.said_names(both.spoken(ex)) == f"{subject}, {obj}"
    perfect = both.evaluate([both.spoken(ex) for ex in examples], examples)
    assert perfect["accuracy"] == perfect["names_exact"] == perfect["layout_horizontal"] == perfect["layout_depth"] == 1.0
    mirror = {"left of": "right of", "right of": "left of"}

    def mirrored(ex):        # the layout's left / right said the wrong way; names and predicate kept
        names, _, rest = both.spoken(ex).partition("; ")
        layout, _, predicate = rest.rpartition(": ")
        return f"{names}; {', '.join(mirror.get(p, p) for p in layout.split(', '))}: {predicate}"
    half = len(examples) // 2
    scores = both.evaluate([mirrored(ex) for ex in examples[:half]] + [both.spoken(ex) for ex in examples[half:]], examples)
    assert scores["layout_horizontal"] == pytest.approx(1 - half / len(examples))
    assert scores["layout_depth"] == 1.0 and scores["names_exact"] == 1.0
    assert "layout_horizontal" not in both.evaluate([ex.target for ex in examples], examples)   # a baseline's answers
    assert "names_exact" not in alone.evaluate([alone.spoken(ex) for ex in examples], examples)


def test_confusion_script_tables_a_text_task_and_swaps_two_regions(tmp_path, all_tasks_run):
    """scripts/confusion.py on the session's toy run of every task: relation's table, then its regions swapped."""
    proc = run_script_here("scripts/confusion.py", "--model", str(all_tasks_run.out), "--task", "relation", "--n", "6",
                           "--swap-regions", "--json", str(tmp_path / "c.json"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    tables = json.loads((tmp_path / "c.json").read_text())
    assert tables["n"] == 6 and set(tables["confusion"]) <= set(PREDICATES)
    assert sum(sum(row.values()) for row in tables["confusion"].values()) == 6
    assert sum(sum(row.values()) for row in tables["swapped"].values()) == 6      # every example has two regions
    depth = run_script_here("scripts/confusion.py", "--model", str(all_tasks_run.out), "--task", "depth", "--n", "2")
    assert depth.returncode != 0 and "not text" in depth.stderr
    script = load_script("confusion")                          # its pure parts
    confusion, swapped = script.confusion, script.swapped
    assert confusion(["a", "a", "b"], ["a", "c", "b"]) == {"a": {"a": 1, "c": 1}, "b": {"b": 1}}
    ex = world_examples(TASKS.get("relation"), "test", 1, 32)[0]
    assert swapped(ex).region == ex.region[::-1] and swapped(ex).meta["names"] == ex.meta["names"][::-1]


def test_two_regions_reach_the_encoder_as_eight_location_tokens(modalities):
    from unio.data.encoding import prompt_ids
    ex = world_examples(TASKS.get("relation"), "train", 1, 32)[0]
    ids = prompt_ids(ex, modalities, 48)
    loc = modalities.vocab.range("coordinates")
    assert sum(loc.start <= i < loc.stop for i in ids) == 8
    one = prompt_ids(type(ex)(ex.task, ex.image, ex.prompt, None, region=ex.region[0]), modalities, 48)
    assert one == ids[:-4]


def test_unio_run_takes_two_regions_and_refuses_one(runner):
    scene = unio.data.world.World("test", resolution=32)[5]
    boxes = [list(o.box) for o in scene.objects[:2]]
    prompt = "What is the relation between the two regions?"
    if len(boxes) < 2:
        boxes = [boxes[0], [0, 0, 8, 8]]
    result = unio.run(prompt, scene.image, model=runner, region=boxes)
    assert result.task == "relation" and result.text in PREDICATES
    with pytest.raises(ValueError, match=r"asks about 2 regions, got 1: pass region=\[\[x1"):
        unio.run(prompt, scene.image, model=runner, region=boxes[0])
    with pytest.raises(ValueError, match="asks about a region"):
        unio.run(prompt, scene.image, model=runner)
    with pytest.raises(ValueError, match="asks about 1 region, got 2"):
        unio.run("What does the region describe?", scene.image, model=runner, region=boxes)


def test_relationship_lists_round_trip_through_their_tokens(modalities):
    task = TASKS.get("relations")
    examples = world_examples(task, "train", 12, 32)
    assert any(len(ex.target) >= 3 for ex in examples)
    grammar = task.grammar(modalities, 32)
    half_bin = 32 / (2 * modalities["coordinates"].num_bins)
    for ex, ids in zip(examples, task.targets(examples, modalities)):
        assert grammar.accepts(ids + [EOS], modalities.vocab)
        found = task.decode(ids, modalities, ex, logprobs=[0.0] * len(ids))["relations"]
        assert len(ids) <= task.max_tokens and (found or not ex.target)   # whole relationships, within max_tokens
        assert [(t[1], t[2], t[4]) for t in found] == [(t[1], t[2], t[4]) for t in ex.target[:len(found)]]
        for t, g in zip(found, ex.target):
            assert np.abs(np.array(t[0]) - g[0]).max() <= half_bin + 1e-9 and t[5] == pytest.approx(1.0)
    ceiling = task.baselines()["token_ceiling"](examples, modalities)
    scores = task.evaluate([task.to_original(ceiling(ex), ex.frame) for ex in examples], examples)
    assert scores["recall@50"] == pytest.approx(np.mean([min(1.0, len(ceiling(ex)["relations"]) / len(ex.target))
                                                         for ex in examples if ex.target]))
    prior = task.baselines()["prior"](examples, modalities)
    assert task.evaluate([task.to_original(prior(ex), ex.frame) for ex in examples], examples)["recall@50"] < 0.5


def test_visual_genome_reader_reads_the_official_layout(tmp_path):
    truth = write_visual_genome(tmp_path / "vg")
    source = build_source("vg", f"visual_genome:{tmp_path / 'vg'}", 32)
    assert source.splits() == ["train", "test", "validation"]
    assert len(source.split("train")) == 3 and len(source.split("test")) == 1
    record = source.split("train")[1]
    assert record["id"] == "vg/train/2" and record["image"].parent.name == "VG_100K"
    assert record["objects"] == [{"box": [10.0, 20.0, 40.0, 60.0], "category": "horse", "attributes": {"object_id": 21}},
                                 {"box": [50.0, 25.0, 85.0, 55.0], "category": "table", "attributes": {"object_id": 22}}]
    assert record["relations"] == [[0, "on", 1], [1, "next to", 0]]    # the box without area is left out
    assert source.split("test")[0]["image"].parent.name == "VG_100K_2"
    # the tasks read it: a pair and its predicate, and one relationship per pair
    rng = np.random.default_rng(0)
    from unio.data.records import make_example
    ex = make_example(TASKS.get("relation"), record, 32, rng)
    assert ex.target in ("on", "next to") and len(ex.region) == 2
    ex = make_example(TASKS.get("relations"), record, 32, rng)
    assert [(t[1], t[2], t[4]) for t in ex.target] == [("horse", "on", "table")]
    with pytest.raises(FileNotFoundError, match="relationships.json"):
        build_source("vg", f"visual_genome:{tmp_path}", 32)
    assert truth["layout"][0][1] == "VG_100K_2"


def test_unio_plugins_lists_the_new_tasks_and_reader():
    from conftest import run_script_here
    proc = run_script_here("-m", "unio.cli", "plugins")
    assert proc.returncode == 0, proc.stderr[-2000:]
    tasks = next(line for line in proc.stdout.splitlines() if line.startswith("tasks:"))
    assert {"relation", "relations", "entailment", "text_class"} <= set(tasks.removeprefix("tasks:").replace(",", " ").split())
    assert "visual_genome" in next(line for line in proc.stdout.splitlines() if line.startswith("sources:"))


def test_boxes_only_reads_the_geometry_of_the_two_boxes_and_never_the_pixels():
    from unio.kit.relations import BoxesOnly
    from unio.task import Example
    rng = np.random.default_rng(0)

    def example(image):
        x = rng.integers(0, 50, size=2)
        region = [[int(x[0]), 10, int(x[0]) + 8, 20], [int(x[1]), 12, int(x[1]) + 8, 22]]
        return Example("relation", image, "What is the relation between the two regions?",
                       "left of" if x[0] < x[1] else "right of", {}, region=region)
    blank = np.zeros((64, 64, 3), np.uint8)
    baseline = BoxesOnly([example(blank) for _ in range(300)])
    tests = [example(blank) for _ in range(100)]
    assert np.mean([baseline(ex) == ex.target for ex in tests]) >= 0.9
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert all(baseline(ex) == baseline(type(ex)(ex.task, noise, ex.prompt, ex.target, {}, region=ex.region))
               for ex in tests)
    assert set(TASKS.get("relation").baselines()) == {"majority", "boxes_only"}


def test_pooled_lists_keep_each_relationship_once_scored_by_the_share_of_lists_saying_it():
    from unio.task_set import configured_task
    task = configured_task("relations", {"samples": 2})
    cube = [[0, 0, 10, 10], "large red cube", "left of", [20, 0, 30, 10], "small blue sphere"]
    cone = [[0, 20, 10, 30], "small red cone", "behind", [20, 20, 30, 30], "large red cube"]
    moved = [[1, 0, 11, 10]] + cube[1:4] + [cube[4]]            # the same triplet, boxes at IoU >= 0.5
    lists = [{"relations": [cube + [0.9], cone + [0.4]]}, {"relations": [moved + [0.7], moved + [0.95]]},
             {"relations": [cone + [0.5]]}]
    pooled = task.pool(lists)["relations"]
    assert [r[:5] for r in pooled] == [moved, cone]     # once each; the cube's box the median of its three sayings
    assert pooled[0][5] == pytest.approx((2 - 1 + 0.95) / 3)     # said by two lists (twice in one counts once)
    assert pooled[1][5] == pytest.approx((2 - 1 + 0.5) / 3)
    assert task.pool([{"relations": []}])["relations"] == []
    with pytest.raises(ValueError, match="integer >= 0"):
        configured_task("relations", {"samples": -1})


def test_fused_boxes_are_their_clusters_medians():
    from unio.kit.boxes import fused_boxes
    a, b, c = [0, 0, 10, 10], [2, 0, 12, 10], [1, 1, 11, 9]           # one object, three sayings
    far, lone = [40, 40, 50, 50], [41, 40, 51, 50]
    fused = fused_boxes([a, far, b, c, lone])
    assert fused[0] == fused[2] == fused[3] == [1.0, 0.0, 11.0, 10.0]   # each coordinate's median
    assert fused[1] == fused[4] == [40.5, 40.0, 50.5, 50.0]
    assert fused_boxes([a, [5, 0, 15, 10]], iou=0.5) == [a, [5, 0, 15, 10]]   # IoU 1/3: two objects
    assert fused_boxes([]) == []


def test_pooled_answers_are_the_greedy_and_sampled_lists_pooled(tiny_config, modalities, monkeypatch):
    import torch

    from unio.infer import pipeline
    from unio.infer.pipeline import _generate_answers, generate_answers
    from unio.model import UnioModel
    from unio.task_set import configured_task
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    plain, pooled = configured_task("relations", {}), configured_task("relations", {"samples": 3})
    examples = world_examples(plain, "test", 4, 32)
    greedy = generate_answers(model, modalities, plain, examples)

    def drawn(copies: int, seed: int) -> list:     # each example's copies, drawn in one call
        rows = _generate_answers(model, modalities, plain, examples, copies=copies, do_sample=True, seed=seed, top_k=50)
        return [[a.prediction for a in rows[i * copies:(i + 1) * copies]] for i in range(len(examples))]

    sampled = drawn(3, 0)                          # 4 examples x 3 copies: one call
    answers = generate_answers(model, modalities, pooled, examples)
    for i, a in enumerate(answers):
        assert a.ids == greedy[i].ids
        assert a.prediction == pooled.pool([greedy[i].prediction] + sampled[i])
    assert sum(len(a.prediction["relations"]) for a in answers) > sum(len(g.prediction["relations"]) for g in greedy)
    own = generate_answers(model, modalities, pooled, examples, do_sample=True, seed=1)   # a chosen decoding: unpooled
    assert [a.prediction for a in own] == [a.prediction for a in generate_answers(model, modalities, plain, examples,
                                                                                  do_sample=True, seed=1)]
    monkeypatch.setattr(pipeline, "SAMPLED_ROWS", 8)     # 2 copies a call: calls seeded `seed` and `seed` + 1
    later = generate_answers(model, modalities, pooled, examples, seed=1)
    first, second = drawn(2, 1), drawn(1, 2)
    assert [a.prediction for a in later] == [pooled.pool([g.prediction] + first[i] + second[i])
                                             for i, g in enumerate(greedy)]


def test_copies_are_drawn_after_the_encoder_each_from_its_own_example(tiny_config, modalities):
    """Rows expanded into copies attend to their own example: sampling the likeliest token alone (top-k 1)
    gives each copy its example's greedy answer."""
    import torch

    from unio.infer.pipeline import _generate_answers
    from unio.model import UnioModel
    from unio.task_set import configured_task
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    task = configured_task("relations", {})
    examples = world_examples(task, "test", 3, 32)
    greedy = _generate_answers(model, modalities, task, examples)
    encoder_rows = []
    hook = model.get_encoder().register_forward_pre_hook(
        lambda module, args, kwargs: encoder_rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    copies = _generate_answers(model, modalities, task, examples, copies=2, do_sample=True, top_k=1, seed=0)
    hook.remove()
    assert encoder_rows == [len(examples)]              # one encoder pass, before the rows are copied
    assert [a.ids for a in copies] == [g.ids for g in greedy for _ in range(2)]
    assert len({tuple(g.ids) for g in greedy}) > 1          # the examples differ, so a row mix-up would show
    with pytest.raises(ValueError, match="one answer an example"):
        _generate_answers(model, modalities, configured_task("find_all", {"via": "detection"}), examples, copies=2, do_sample=True)
    with pytest.raises(ValueError, match="num_beams=2 must be 1"):
        _generate_answers(model, modalities, task, examples, copies=2, num_beams=2)
    classify = configured_task("classify", {})
    with pytest.raises(ValueError, match="one answer an example"):                  # answer options are ranked
        _generate_answers(model, modalities, classify, world_examples(classify, "test", 2, 32), copies=2, do_sample=True)


def test_relation_samples_vote_on_the_predicate_over_the_answers():
    relation = type(TASKS.get("relation"))
    voting = relation(names=True, samples=4)
    answers = ["large red cube, small red cone: larger than", "large red cube, small red cube: same shape as",
               "large red cone, small red cone: same shape as", "large red cube, small red cone: larger than",
               "large red cube, small blue cone: left of"]
    assert voting.pooled_samples == 4
    assert voting.pool(answers) == answers[0]                         # a tie: the earlier (greedy) predicate
    assert voting.pool(answers[1:]) == answers[1]                     # the most said, in its first saying
    assert voting.pool(answers[4:]) == answers[4]
    assert relation(samples=2).pooled_samples == 0                   # ranked predicates: nothing to vote over
    with pytest.raises(ValueError, match="integer >= 0"):
        relation(names=True, samples=True)

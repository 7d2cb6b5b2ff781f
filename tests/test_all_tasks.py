"""`--tasks all`: every registered task the source can feed, in one model."""
import json
import re
from dataclasses import replace
from importlib import import_module
from pathlib import Path

import pytest
from conftest import load_script, run_script_here, world_examples

from unio.data.sources import build_source
from unio.infer.evaluation import split_examples
from unio.infer.model_folder import load_model_folder
from unio.infer.pipeline import generate_answers
from unio.kit.answers import box_to_ids, listed_ids
from unio.kit.labels import left_to_right
from unio.registries import TASKS
from unio.task import Example
from unio.task_set import TaskSet
from unio.train.builders import expand_all, feedable, parse_tasks
from unio.train.options import TrainOptions

SPATIAL = import_module(type(TASKS.get("vqa")).__module__).SPATIAL    # the world's "Is A left of B?"


def trainable_on_the_world() -> set:
    """Tasks with targets, less person keypoints (the world holds no person) and sentence classification (nor
    GLUE-style sentences)."""
    return {t for t in TASKS.names() if hasattr(TASKS.get(t), "targets")} - {"person_keypoints", "text_class"}


def test_all_stands_for_every_task_the_source_can_feed():
    world = build_source("world", None, 32)
    assert set(feedable(TaskSet(), world, 32)) == trainable_on_the_world()
    assert {"vqa", "depth", "detection", "generate", "relation", "relations", "entailment"} <= trainable_on_the_world()
    no_depth = build_source("world", None, 32)
    no_depth.keys = tuple(k for k in world.keys if k != "depth")
    assert "depth" not in feedable(TaskSet(), no_depth, 32)
    weights = parse_tasks(expand_all(TrainOptions(tasks="all:0.5,vqa:2", preset="toy"), TaskSet()).tasks)
    assert weights[("vqa", "world")] == 2.0 and weights[("depth", "world")] == 0.5
    assert {t for t, _ in weights} == trainable_on_the_world()


ALL_RECIPE_RECORD = "all-s54-gen2"   # the run whose command configs/data/all.yaml's recipe spells out
GENERATION_GUIDANCE = [2, 3, 4, 5]   # and the scales its generation's is chosen among (record chosen-all-s54-gen2)
DECODINGS = {"generate": {"guidance": GENERATION_GUIDANCE}, "keypoints": {"decoding": "expected"}}   # the recipe's


def train_options(*argv):
    from unio.train.cli import options_from, parser
    return options_from(parser().parse_args(list(argv)))


def test_tasks_all_alone_is_the_recipe_of_the_recorded_all_task_run(capsys):
    """`--tasks all` is configs/data/all.yaml's recipe: the options of the record's command, less its --out (and
    --no-progress)."""
    import shlex
    record = json.loads((Path(__file__).parents[1] / "docs" / "records" / f"{ALL_RECIPE_RECORD}.json").read_text())
    argv = shlex.split(record["command"])[2:]
    argv = [a for a in argv[:argv.index("--out")] + argv[argv.index("--out") + 2:] if a != "--no-progress"]
    argv += ["--task-option", "generate.guidance=[2,3,4,5]"]   # chosen among on validation after the run
    assert train_options("--tasks", "all") == train_options(*argv)
    assert "configs/data/all.yaml's recipe (all,itm:4,find_all:2,keypoints:2,caption:1,generate:2,classify:0.5,count:0.5, vqa.ground=refexp" in capsys.readouterr().out
    from unio.train.options import run_dir
    assert run_dir(train_options("--tasks", "all"), {}) == Path("runs/all-tiny-s0")


def test_flags_given_override_the_recipe_and_other_specs_have_none():
    mine = train_options("--tasks", "all", "--steps", "6", "--task-option", "itm.ground=false",
                         "--task-option", "itm.easy=0.2")
    assert (mine.steps, mine.minutes, mine.eval_n) == (6, 56, 500)
    assert mine.task_options == {"vqa": {"ground": "refexp"}, "itm": {"ground": False, "easy": 0.2}, **DECODINGS}
    for spec in ("all@world", "all,vqa:2", "vqa,depth"):
        plain = train_options("--tasks", spec)
        assert (plain.tasks, plain.steps, plain.minutes, plain.eval_n, plain.task_options) == (spec, 2400, None, 200, {})
    assert train_options().tasks is None and train_options("--tasks", "default").tasks == "vqa,caption,refexp,depth"


def test_the_python_api_gets_the_recipe_by_name():
    """named_options("all", ...) is what `--tasks all ...` gives; TrainOptions(tasks="all") stays the plain
    expansion; a name without a mixture file is refused naming those there are."""
    from unio.train.options import TrainOptions, named_options
    mine = named_options("all", seed=1, steps=6, task_options={"itm": {"ground": False}})
    assert mine == train_options("--tasks", "all", "--seed", "1", "--steps", "6", "--task-option", "itm.ground=false")
    assert mine.task_options == {"vqa": {"ground": "refexp"}, "itm": {"ground": False}, **DECODINGS}
    assert named_options("default") == train_options("--tasks", "default")
    assert (TrainOptions(tasks="all").steps, TrainOptions(tasks="all").task_options) == (2400, {})
    with pytest.raises(ValueError, match="'vqa' names no mixture file in configs/data/; named mixtures: all, default"):
        named_options("vqa")


def test_a_mixture_file_with_an_unknown_key_is_refused(tmp_path, monkeypatch):
    from unio.train import builders
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.yaml").write_text("mixture: vqa\nstep: 9\n")
    monkeypatch.setattr(builders, "builtin_dir", lambda name: tmp_path)
    with pytest.raises(ValueError, match="unknown keys step; a mixture file holds mixture, task_options and steps"):
        builders.named_mixture("mine")
    assert builders.named_mixture("vqa") == {}


def test_a_toy_run_of_all_tasks_trains_and_evaluates_each(tmp_path, all_tasks_run):
    """--tasks all (conftest's ALL_TASKS_RUN adds one pair on another source: all stands for the world's)."""
    out, extra = all_tasks_run.out, {"classify@world_single"}
    evaluation = json.loads((out / "eval.json").read_text())
    assert set(evaluation["model"]) == trainable_on_the_world() | extra
    assert all(TASKS.get(t.split("@")[0]).headline in metrics for t, metrics in evaluation["model"].items())
    config = json.loads((out / "model" / "config.json").read_text())
    assert set(config["trained_tasks"]) == trainable_on_the_world()
    # generation's guidance, two candidates (conftest's ALL_TASKS_RUN), chosen on validation and saved as one scale
    chosen = evaluation["chosen_on_validation"]["generate"]
    scores = chosen["validation"]
    assert set(scores) == {"0.0", "2.0"} and chosen["metric"] == "color_f1"
    assert chosen["guidance"] == float(max(scores, key=lambda s: (scores[s], -float(s))))
    assert config["task_options"]["generate"]["guidance"] == chosen["guidance"]
    assert "generate: guidance " in all_tasks_run.stdout and "chosen on validation" in all_tasks_run.stdout
    # the evaluation script takes `all` too, and writes every task's metrics
    proc = run_script_here("scripts/evaluate.py", "--model", str(out), "--tasks", "all", "--n", "2", "--json",
                      str(tmp_path / "all.json"), env={"UNIO_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(json.loads((tmp_path / "all.json").read_text())["results"]) == trainable_on_the_world()
    # it chooses generation's guidance on validation where the task options list candidates
    proc = run_script_here("scripts/evaluate.py", "--model", str(out), "--tasks", "generate", "--n", "2",
                           "--task-option", "generate.guidance=[1,4]", "--json", str(tmp_path / "chosen.json"),
                           env={"UNIO_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(json.loads((tmp_path / "chosen.json").read_text())["chosen_on_validation"]["generate"]["validation"]) \
        == {"1.0", "4.0"}
    # unio.run answers every task the model trained on (and refuses, naming them, the others)
    proc = run_script_here("scripts/ask_every_task.py", str(out), "--json", str(tmp_path / "asked.json"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    asked = json.loads((tmp_path / "asked.json").read_text())
    assert {name for name, a in asked.items() if a["ok"]} >= trainable_on_the_world()
    refused = [a for a in asked.values() if not a["ok"]]
    assert all("this model was not trained on" in a["error"] and not a["trained"] for a in refused)


def test_yes_no_margins_agree_with_the_evaluation_answers(tmp_path, all_tasks_run):
    """scripts/yes_no_margins.py on the toy all-task run: at margin 0 its ITM answers are evaluation's (the same
    6 test examples: the same accuracy and share of yes); the best threshold is at least as accurate as margin 0,
    and the AUC is in [0, 1] (undefined where a kind's truth is all one answer)."""
    out = all_tasks_run.out
    proc = run_script_here("scripts/yes_no_margins.py", str(out), "--n", "6", "--json", str(tmp_path / "m.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads((tmp_path / "m.json").read_text())[str(out)]
    assert set(figures) == {"itm", "vqa_spatial", "vqa_exist"}
    itm = json.loads((out / "eval.json").read_text())["model"]["itm"]
    assert figures["itm"]["accuracy_at_0"] == round(itm["accuracy"], 3)
    assert figures["itm"]["yes_said"] == round(itm["yes_share"], 3)
    assert all(f["accuracy_best_threshold"] >= f["accuracy_at_0"] for f in figures.values())
    assert all(f["auc"] is None or 0 <= f["auc"] <= 1 for f in figures.values()) and figures["itm"]["auc"] is not None


def test_itm_errors_split_the_answers_by_their_list_and_agree_with_the_evaluation(tmp_path, all_tasks_run):
    """scripts/itm_errors.py on the toy all-task run, answered after its detection's list (itm.ground=detection):
    its accuracy over the kinds is evaluate.py's with that option (the same 6 test examples), and each share is
    one of a kind's examples; without the option it refuses, naming it."""
    out = all_tasks_run.out
    proc = run_script_here("scripts/itm_errors.py", str(out), "--n", "6", "--json", str(tmp_path / "e.json"),
                           "--task-option", "itm.ground=detection")
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = json.loads((tmp_path / "e.json").read_text())
    figures, lists = written["by_kind"], written["list_errors"]
    ev = run_script_here("scripts/evaluate.py", "--model", str(out), "--tasks", "itm", "--n", "6", "--task-option",
                         "itm.ground=detection", "--json", str(tmp_path / "ev.json"))
    assert ev.returncode == 0, ev.stderr[-3000:]
    itm = json.loads((tmp_path / "ev.json").read_text())["results"]["itm"]
    refused = run_script_here("scripts/itm_errors.py", str(out), "--n", "6")
    assert refused.returncode != 0 and "itm.ground=detection" in refused.stderr
    assert sum(f["n"] for f in figures.values()) == 6 and set(figures) <= {"positive", "size", "color", "shape", "count"}
    assert sum(f["accuracy"] * f["n"] for f in figures.values()) / 6 == pytest.approx(itm["accuracy"], abs=1e-3)
    assert all(0 <= v <= 1 for f in figures.values() for k, v in f.items() if k != "n")
    assert lists["objects"] >= 6 and all(lists[k] >= 0 for k in ("missing", "extra", "substituted_shape"))


def test_itm_errors_pair_each_listed_object_with_the_missing_one_it_differs_from_least():
    """The list-error tally: a cylinder listed as a sphere is one shape substitution, a colour changed one colour
    substitution, an object left out one missing, one listed twice one extra; shares of the image's objects."""
    def example(objects, found):     # boxes 4 pixels wide for small objects, 10 for large ones
        return Example("itm", None, "", "yes", {"objects": [([0, 0, 4 if o[0] == "s" else 10, 2], o) for o in objects],
                                                "found_objects": [(None, o) for o in found]})

    figures = load_script("itm_errors").list_errors([
        example(["small red cylinder", "small blue cube"], ["small red sphere", "small blue cube"]),
        example(["small red cylinder", "large green cone"], ["small red sphere", "large yellow cone"]),
        example(["small red cube", "large green cone"], ["small red cube"]),
        example(["large red cube"], ["large red cube", "large red cube"])])
    assert figures["objects"] == 7
    assert figures["substituted_shape"] == round(2 / 7, 3) and figures["substituted_color"] == round(1 / 7, 3)
    assert figures["missing"] == figures["extra"] == round(1 / 7, 3) and figures["substituted_size"] == 0
    assert figures["confusions"] == {"small: cylinder -> sphere": 2, "large: green -> yellow": 1}
    assert figures["substituted_shape_by_size"] == {"large": 0, "small": 0.5}
    assert figures["pixels_by_size"] == {"large": [10, 10, 10], "small": [4, 4, 4]}


def test_find_all_errors_agree_with_the_evaluation(tmp_path, all_tasks_run):
    """scripts/find_all_errors.py on the toy all-task run, answered after its detection's list
    (find_all.ground=detection): its recall and false-positive rate are evaluate.py's with that option (the same 6
    test examples); without the option it refuses, naming it."""
    out = all_tasks_run.out
    proc = run_script_here("scripts/find_all_errors.py", str(out), "--n", "6", "--json", str(tmp_path / "f.json"),
                           "--task-option", "find_all.ground=detection")
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads((tmp_path / "f.json").read_text())
    ev = run_script_here("scripts/evaluate.py", "--model", str(out), "--tasks", "find_all", "--n", "6",
                         "--task-option", "find_all.ground=detection", "--json", str(tmp_path / "ev.json"))
    assert ev.returncode == 0, ev.stderr[-3000:]
    evaluated = json.loads((tmp_path / "ev.json").read_text())["results"]["find_all"]
    assert figures["present"]["recall"] == round(evaluated["recall"], 3)
    assert figures["absent"]["fp_rate"] == round(evaluated["fp_rate_absent"], 3) and figures["n"] == 6
    refused = run_script_here("scripts/find_all_errors.py", str(out), "--n", "6")
    assert refused.returncode != 0 and "find_all.ground=detection" in refused.stderr


def test_find_all_errors_split_the_absent_queries_by_what_their_list_names():
    """The tally: an absent query whose list names no match but answered with a box is a false positive of
    `list_names_none`; an answer that is the list's boxes follows it; recall through the list counts the gold boxes
    the list's matching labels hold."""
    from types import SimpleNamespace
    task = TASKS.get("find_all")

    def example(query, target, found):
        return Example("find_all", None, "", target, {"query": query, "category": False, "found_objects": found})

    found = [([0, 0, 10, 10], "small red cube"), ([20, 0, 30, 10], "large blue sphere")]
    examples = [example("cone", [], found), example("cone", [], found), example("red cube", [[0, 0, 10, 10]], found),
                example("blue sphere", [[20, 0, 30, 10], [40, 0, 50, 10]], found)]
    answers = [SimpleNamespace(prediction={"boxes": b}) for b in
               ([[0, 0, 10, 10]], [], [[0, 0, 10, 10]], [[40, 0, 50, 10]])]
    figures = load_script("find_all_errors").tally(task, examples, answers)
    assert figures["absent"] == {"n": 2, "fp_rate": 0.5, "list_names_none": {"n": 2, "fp_rate": 0.5},
                                 "list_names_a_match": {"n": 0, "fp_rate": 0.0}}
    assert figures["present"] == {"boxes": 3, "recall": round(2 / 3, 3), "recall_through_list": round(2 / 3, 3)}
    assert figures["follows_list"] == 0.5 and figures["n"] == 4


def test_find_all_errors_read_a_verdicts_answer_s_own_list(modalities):
    """With find_all.verdicts the list is the answer's own: its objects, each label without its verdict word."""
    from types import SimpleNamespace
    task = type(TASKS.get("find_all"))(ground="detection", verdicts=True)
    example = next(ex for ex in world_examples(task, "train", 40, 64) if len(ex.meta["objects"]) > 1)
    answer = SimpleNamespace(ids=task.targets([example], modalities)[0])
    said = load_script("find_all_errors").said_list(modalities, example, answer)
    assert [label for _, label in said] == [label for _, label in example.meta["objects"]]
    half_bin = 64 / (2 * modalities["coordinates"].num_bins)
    assert all(abs(a - b) <= half_bin + 1e-9 for (box, _), (gold, _) in zip(said, example.meta["objects"])
               for a, b in zip(box, gold))


def test_find_all_score_threshold_sweep_agrees_with_the_evaluation(tmp_path, all_tasks_run):
    """scripts/score_threshold.py on the toy all-task run: at threshold 0 its test figures are evaluation's (the
    same 6 examples), as are the presence sweep's at 1; a higher threshold never raises recall or false positives; the threshold chosen on
    validation, given as find_all.min_score, drops exactly the boxes scored under it."""
    out = all_tasks_run.out
    proc = run_script_here("scripts/score_threshold.py", str(out), "--n", "6", "--max-fp", "1.0", "--json", str(tmp_path / "t.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads((tmp_path / "t.json").read_text())[str(out)]
    evaluated = json.loads((out / "eval.json").read_text())["model"]["find_all"]
    assert figures["test_at_0"]["recall"] == round(evaluated["recall"], 4)
    assert figures["test_at_0"]["fp_rate_absent"] == round(evaluated["fp_rate_absent"], 4)
    test = figures["sweep"]["test"]
    for key in ("recall", "fp_rate_absent"):
        assert all(a[key] >= b[key] for a, b in zip(test, test[1:]))
    assert figures["chosen_on_validation"]["threshold"] == 0.0    # --max-fp 1.0: any threshold keeps to it
    presence = figures["presence"]["test"]         # from greedy's answers (threshold 1) to all but certain ones empty
    assert presence[0] == {**figures["test_at_0"], "threshold": 1.0} and presence[-1]["recall"] <= presence[0]["recall"]
    model, mods = load_model_folder(out)
    plain, strict = (TaskSet({**model.config.task_options, "find_all": {"min_score": t}}, known_only=True).get("find_all")
                     for t in (0.0, 0.5))
    examples = split_examples(plain, build_source("world", None, model.config.image_size), "test", 6, model.config.image_size)
    for ex, a, b in zip(examples, generate_answers(model, mods, plain, examples), generate_answers(model, mods, strict, examples)):
        assert b.prediction["boxes"] == [box for box, s in zip(a.prediction["boxes"], a.prediction["scores"]) if s >= 0.5]
    with pytest.raises(ValueError, match="find_all's min_score is a box score"):
        type(plain)(min_score=1.0)


def test_vqa_grounded_through_refexp_starts_from_the_boxes_refexp_finds(all_tasks_run):
    """vqa.ground=refexp: a spatial question's answer starts from the two boxes the same model's refexp finds
    for the objects it names (asked first, in one batch), then says its text; other questions are untouched."""
    model, mods = load_model_folder(all_tasks_run.out)
    tasks = TaskSet({**model.config.task_options, "vqa": {"ground": "refexp"}}, known_only=True)
    vqa, refexp = tasks.get("vqa"), tasks.get("refexp")
    source, size = build_source("world", None, model.config.image_size), model.config.image_size
    examples = split_examples(vqa, source, "test", 60, size)
    spatial = [ex for ex in examples if ex.meta["type"] == "spatial"][:3]
    other = [ex for ex in examples if ex.meta["type"] != "spatial"][:2]
    named = [text for ex in spatial for text in SPATIAL.match(ex.meta["question"]).groups()]
    found = generate_answers(model, mods, refexp, [replace(ex, task="refexp", prompt=refexp.prompts[0].format(t),
                             target=None, region=None, meta={}) for ex, t in zip([e for e in spatial for _ in "ab"], named)], tasks)
    answers = generate_answers(model, mods, vqa, spatial + other, tasks)
    for i, (ex, answer) in enumerate(zip(spatial, answers)):
        boxes = [a.prediction for a in found[2 * i:2 * i + 2]]
        assert list(answer.ids[:8]) == [t for box in boxes for t in box_to_ids(box, mods, ex)]
        assert answer.prediction == mods.text_from_ids(answer.ids).strip()
    assert all("found_boxes" not in ex.meta for ex in other)
    model.config.trained_tasks = ["vqa"]
    with pytest.raises(ValueError, match="asks 'refexp' first, which this model was not trained on"):
        generate_answers(model, mods, vqa, spatial, tasks)


def test_itm_and_find_all_grounded_through_detection_answer_after_the_objects_detection_finds(all_tasks_run):
    """itm.ground=detection and find_all.ground=detection: each answer starts from the objects the same model's
    detection finds (left to right, boxes and labels); ITM ranks "yes" and "no" after them, find_all's prediction
    is the boxes it says after them."""
    model, mods = load_model_folder(all_tasks_run.out)
    grounded = {name: {"ground": "detection"} for name in ("itm", "find_all")}
    tasks = TaskSet({**model.config.task_options, **grounded}, known_only=True)
    detection, source = tasks.get("detection"), build_source("world", None, model.config.image_size)
    trained = model.config.trained_tasks
    for name in grounded:
        task = tasks.get(name)
        examples = split_examples(task, source, "test", 4, model.config.image_size)
        found = generate_answers(model, mods, detection, [replace(ex, task="detection", prompt=detection.prompts[0],
                                 target=None, region=None, meta={}) for ex in examples], tasks)
        answers = generate_answers(model, mods, task, examples, tasks)
        for ex, answer, detected in zip(examples, answers, found):
            objects = left_to_right([(box, label) for box, label in zip(detected.prediction["boxes"],
                                     detected.prediction["labels"]) if label.strip()])
            prefix = listed_ids(objects, mods, ex)
            assert list(answer.ids[:len(prefix)]) == prefix
            own = list(answer.ids[len(prefix):])
            if name == "itm":
                assert answer.prediction in ("yes", "no") and own == mods.text_ids(answer.prediction)
                verdicts = type(task)(ground="detection", verdicts=True)    # generated after the list, not ranked
                said = generate_answers(model, mods, verdicts, [ex], tasks)[0]
                words = re.findall(r"[a-z]+", mods.text_from_ids([t for t in said.ids[len(prefix):]
                                                                   if mods.vocab.owner(t) == mods.prompt_name]).lower())
                assert list(said.ids[:len(prefix)]) == prefix and said.prediction == (words or [""])[-1]
            else:
                assert len(answer.prediction["boxes"]) <= len(own) // 4
        model.config.trained_tasks = ["itm", "find_all"]
        with pytest.raises(ValueError, match="asks 'detection' first, which this model was not trained on"):
            generate_answers(model, mods, task, examples, tasks)
        model.config.trained_tasks = trained

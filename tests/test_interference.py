"""The interference table (unio/infer/interference.py, scripts/interference.py) on eval.json files written here."""
import json

import pytest
from conftest import load_script, run_script_here

from unio.infer.interference import compare, markdown, read_eval
from unio.task_set import TaskSet

TASKS = TaskSet()
ACC, RMSE, CIDER = (TASKS.get(name).headline for name in ("vqa", "depth", "caption"))


def write_eval(folder, model: dict, n: int = 100, preset: str | None = None):
    """A run folder as train_mixture.py leaves it: eval.json (and options.json when a preset is given)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "eval.json").write_text(json.dumps({"model": model, "baselines": {}, "split": "test", "n": n}))
    if preset:
        (folder / "options.json").write_text(json.dumps({"preset": preset, "steps": 300}))
    return folder


@pytest.fixture()
def runs(tmp_path):
    """A generalist on vqa, depth, caption@coco and a task nobody installed (the headline not the first metric);
    specialists for some of them."""
    write_eval(tmp_path / "all", {"vqa": {"accuracy_color": 0.1, ACC: 0.6}, "depth": {"delta1": 0.5, RMSE: 2.0},
                                  "caption@coco": {CIDER: 0.9}, "no_such_task": {"score": 1.0}}, preset="tiny")
    write_eval(tmp_path / "vqa", {"vqa": {ACC: 0.5}}, preset="tiny")
    write_eval(tmp_path / "depth", {"depth": {RMSE: 2.5}}, preset="tiny")
    write_eval(tmp_path / "depth_long", {"depth": {RMSE: 1.6}}, preset="tiny")
    write_eval(tmp_path / "caption", {"caption@coco": {CIDER: 1.2}}, n=50)
    return tmp_path


def test_the_directions_these_tests_rely_on():
    assert not getattr(TASKS.get("vqa"), "lower_is_better", False) and TASKS.get("depth").lower_is_better


def test_delta_is_positive_where_the_generalist_is_better_in_either_direction(runs):
    given = {"equal_steps": {"vqa": read_eval(runs / "vqa"), "depth": read_eval(runs / "depth")},
             "whole_budget": {"depth": read_eval(runs / "depth_long")}}
    pairs = compare(read_eval(runs / "all"), given)["pairs"]
    assert pairs["vqa"]["metric"] == ACC and pairs["depth"]["metric"] == RMSE
    assert pairs["vqa"]["equal_steps"] == {"specialist": 0.5, "delta": pytest.approx(0.2)}      # 0.6 vs 0.5
    assert pairs["depth"]["equal_steps"]["delta"] == pytest.approx(0.2)        # rmse 2.0 vs 2.5: generalist better
    assert pairs["depth"]["whole_budget"]["delta"] == pytest.approx(-0.25)     # rmse 2.0 vs 1.6: worse


def test_delta_m_is_the_mean_over_the_tasks_with_that_specialist(runs):
    given = {"equal_steps": {p: read_eval(runs / f) for p, f in [("vqa", "vqa"), ("depth", "depth"),
                                                                  ("caption@coco", "caption")]},
             "whole_budget": {"depth": read_eval(runs / "depth_long")}}
    out = compare(read_eval(runs / "all"), given)
    assert out["delta_m"]["equal_steps"] == pytest.approx((0.2 + 0.2 - 0.25) / 3)
    assert out["delta_m"]["whole_budget"] == pytest.approx(-0.25)
    assert out["tasks_in_delta_m"] == {"equal_steps": 3, "whole_budget": 1}
    assert out["median_delta"]["equal_steps"] == pytest.approx(0.2)             # of +0.2, +0.2, -0.25
    assert out["worst"]["equal_steps"] == ["caption@coco", pytest.approx(-0.25)]
    assert out["pairs"]["vqa"]["whole_budget"] is None and "no_such_task" not in out["pairs"]
    assert out["skipped"] == ["no_such_task: task 'no_such_task' is not installed"]
    assert out["notes"] == ["caption@coco: the equal steps specialist's n is 50, the generalist's 100",
                            "caption@coco: the equal steps specialist's preset is None, the generalist's 'tiny'"]
    table = markdown(out).splitlines()
    assert table[2] == "| vqa | accuracy ↑ | 0.600 | 0.500 | +20.0% | – | – |".replace("accuracy", ACC)
    assert table[-2] == "| median Δ |  |  |  | +20.0% (worst: caption@coco -25.0%) |  | -25.0% (worst: depth -25.0%) |"
    assert table[-1] == "| Δm |  |  |  | **+5.0%** (3 tasks) |  | **-25.0%** (1 task) |"


def test_a_docs_record_stands_for_a_run(runs, tmp_path):
    """docs/records/NAME.json (record_run.py) as the generalist: its metrics, n and the preset its command names."""
    record = {"name": "all", "command": "python scripts/train_mixture.py --tasks all --preset base --steps 9",
              "split": "test", "n": 100, "metrics": {"vqa": {ACC: 0.6}}, "baselines": {}}
    (tmp_path / "all.json").write_text(json.dumps(record))
    assert read_eval(tmp_path / "all.json") == {"model": {"vqa": {ACC: 0.6}}, "split": "test", "n": 100, "preset": "base"}
    out = compare(read_eval(tmp_path / "all.json"), {"equal_steps": {"vqa": read_eval(runs / "vqa")}})
    assert out["pairs"]["vqa"]["equal_steps"]["delta"] == pytest.approx(0.2)
    assert out["notes"] == ["vqa: the equal steps specialist's preset is 'tiny', the generalist's 'base'"]
    record["command"] = "python scripts/train_mixture.py --tasks all"
    (tmp_path / "all.json").write_text(json.dumps(record))
    assert read_eval(tmp_path / "all.json")["preset"] == "tiny"          # the trainer's default preset


def test_a_specialist_at_0_has_no_relative_change_and_stays_out_of_delta_m(runs):
    write_eval(runs / "zero", {"vqa": {ACC: 0.0}})
    out = compare(read_eval(runs / "all"), {"equal_steps": {"vqa": read_eval(runs / "zero"),
                                                            "depth": read_eval(runs / "depth")}})
    assert out["pairs"]["vqa"]["equal_steps"] == {"specialist": 0.0, "delta": None}
    assert out["delta_m"]["equal_steps"] == pytest.approx(0.2) and out["tasks_in_delta_m"]["equal_steps"] == 1
    assert "vqa: the equal steps specialist's accuracy is 0, so the relative change is undefined; left out of Δm" \
        .replace("accuracy", ACC) in out["notes"]
    assert "| 0.000 | undefined (specialist 0) |" in markdown(out)


def test_no_specialists_at_all(runs):
    out = compare(read_eval(runs / "all"), {})
    assert out["delta_m"] == {"equal_steps": None, "whole_budget": None}
    assert markdown(out).splitlines()[-1] == "| Δm |  |  |  | – |  | – |"


def test_the_script_end_to_end(runs):
    out = runs / "interference.json"
    proc = run_script_here("scripts/interference.py", "--generalist", str(runs / "all" / "eval.json"),
                      "--equal-steps", f"vqa={runs / 'vqa'}", "--equal-steps", f"depth={runs / 'depth' / 'eval.json'}",
                      "--whole-budget", f"depth={runs / 'depth_long'}", "--json", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["delta_m"] == {"equal_steps": pytest.approx(0.2), "whole_budget": pytest.approx(-0.25)}
    assert figures["pairs"]["caption@coco"] == {"metric": CIDER, "lower_is_better": False, "generalist": 0.9,
                                                "equal_steps": None, "whole_budget": None}
    assert proc.stdout.splitlines()[3] == f"| depth | {RMSE} ↓ | 2.000 | 2.500 | +20.0% | 1.600 | -25.0% |"
    assert "skipped no_such_task: task 'no_such_task' is not installed" in proc.stderr


@pytest.mark.parametrize("spec, message", [
    ("vqa={runs}/missing", "no eval.json at {runs}/missing"),
    ("depth={runs}/vqa", "{runs}/vqa holds no pair 'depth'; it holds vqa"),
    ("vqa{runs}/vqa", "--equal-steps takes PAIR=PATH"),
    ("region_class={runs}/other", "a specialist (equal steps) is given for region_class, but the generalist has no region_class"),
])
def test_the_script_names_what_is_wrong(runs, spec, message, capsys):
    """The script's main() in this process (the end-to-end test above runs it as a command)."""
    write_eval(runs / "zero", {"vqa": {ACC: 0.0}})
    write_eval(runs / "other", {"region_class": {"accuracy": 0.3}})
    with pytest.raises(SystemExit) as exit:
        load_script("interference").main(["--generalist", str(runs / "all"), "--equal-steps", spec.format(runs=runs)])
    stderr = capsys.readouterr().err
    assert exit.value.code == 2 and message.format(runs=runs).replace("accuracy", ACC) in stderr, stderr

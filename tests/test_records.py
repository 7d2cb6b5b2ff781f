"""Figures that cannot drift: the docs' results tables are written from docs/records/*.json (one record a run),
and a figure that differs from its record fails here."""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from unio.train.records import load, problems, time_log

ROOT = Path(__file__).resolve().parents[1]


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tables():
    return script("results_tables")


def test_the_docs_tables_are_what_the_records_give(tables):
    found = tables.differences()
    assert not found, "\n".join(found.values()) + "\nrun: python scripts/results_tables.py"


def test_every_record_parses_and_names_its_command():
    records = load(ROOT / "docs" / "records")
    assert {"default-1202", "all-start", "ceilings-all"} <= set(records)
    for name, record in records.items():
        assert problems(record) == [], name
        assert record["source"] in ("eval.json", "evaluate.py --json") or "eval.json not kept" in record["source"], name


def test_every_marked_block_has_a_template_and_every_template_is_in_a_doc(tables):
    marked = [m for f in tables.FILES for m in re.findall(r"^<!-- table: ([\w-]+) -->$", (ROOT / f).read_text(), re.M)]
    assert sorted(marked) == sorted(tables.TEMPLATES)          # none twice, none missing, none orphaned
    quoted = {m.group(1) for t in tables.TEMPLATES.values() if isinstance(t, str) for m in tables.FIGURE.finditer(t)}
    assert quoted <= set(load(ROOT / "docs" / "records"))


def test_a_changed_figure_fails_the_check_and_the_script_writes_it_back(tables, tmp_path):
    for name in tables.FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    readme = tmp_path / "README.md"
    good = readme.read_text()
    row = "| vqa | accuracy | **0.796** | majority per question type 0.524 | >= 0.76 — met |"
    assert good.count(row) == 1
    readme.write_text(good.replace(row, row.replace("0.796", "0.797")))
    found = tables.differences(tmp_path, ROOT / "docs" / "records")
    assert list(found) == ["README.md"]
    assert "-" + row.replace("0.796", "0.797") in found["README.md"] and "+" + row in found["README.md"]
    records = load(ROOT / "docs" / "records")
    assert tables.rewrite(readme.read_text(), records) == good


def test_rounding_follows_the_docs(tables):
    records = {"r": {"metrics": {"caption": {"cider": 6.435316577152806}, "depth": {"rmse": 0.7343711270943308}},
                     "wall_s": 1107.28, "train_s": 1053, "peak_rss_mb": 1627}}
    fill = tables.FIGURE.sub
    text = "{{r:caption/cider|2}} {{r:caption/cider}} {{r:depth/rmse|m}} {{r:wall_s|min}} {{r:train_s|s}} {{r:peak_rss_mb|GB}}"
    assert fill(lambda m: tables.figure(records, *m.groups()), text) == "6.44 6.435 0.734 m 18 min 27 s 1,053 1.6 GB"


def test_the_check_passes_from_the_command_line():
    proc = subprocess.run([sys.executable, "scripts/results_tables.py", "--check"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


LOG = """trained 2100 steps (last logged loss 0.55943) in 1053 s; run folder runs/default-1202
total wall time 1100 s
\tCommand being timed: "python scripts/train_mixture.py --eval-n 500 --out runs/x"
\tElapsed (wall clock) time (h:mm:ss or m:ss): 18:27.28
\tMaximum resident set size (kbytes): 1588416
"""


def test_a_log_gives_the_command_wall_time_and_the_trainers_figures():
    assert time_log(LOG) == {"command": "python scripts/train_mixture.py --eval-n 500 --out runs/x", "wall_s": 1107.28,
                             "peak_rss_mb": 1627, "steps": 2100, "last_loss": 0.55943, "train_s": 1053, "run_s": 1100}
    assert time_log("Elapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03.5")["wall_s"] == 3723.5


EVALUATION = {"model": {"vqa": {"accuracy": 0.75}}, "baselines": {"vqa": {"majority": {"accuracy": 0.5}}},
              "split": "test", "n": 4}


class StandInTrainer:
    """What cli.run uses of a Trainer, without training: the run's end is what is tested."""
    def __init__(self, opts):
        self.out, self.rank, self.step, self.elapsed, self.elapsed_before = Path(opts.out), 0, 3, 2.0, 0.0
        self.bad, self.opts = SimpleNamespace(skip=False), opts
        self.out.mkdir(parents=True)

    def train(self):
        return {"loss": 1.25}

    def export(self):
        pass


def test_the_run_writes_its_record(tmp_path, monkeypatch):
    import unio.train.cli as cli
    import unio.train.trainer
    monkeypatch.setattr(unio.train.trainer, "Trainer", StandInTrainer)
    monkeypatch.setattr(cli, "finish", lambda trainer, n: (trainer.out / "eval.json").write_text(json.dumps(EVALUATION)))
    argv = ["--tasks", "vqa", "--preset", "toy", "--eval-n", "4", "--out", str(tmp_path / "run")]
    monkeypatch.setattr(sys, "argv", ["scripts/train_mixture.py", *argv])
    assert cli.main(argv) == 0
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    assert problems(record) == []
    assert record["command"] == "python scripts/train_mixture.py " + " ".join(argv)
    assert (record["metrics"], record["baselines"], record["n"]) == (EVALUATION["model"], EVALUATION["baselines"], 4)
    assert (record["steps"], record["last_loss"], record["name"], record["source"]) == (3, 1.25, "run", "eval.json")
    assert re.fullmatch(r"[0-9a-f]{7,}(\+dirty)?", record["commit"])   # the suite runs in a git checkout
    assert "threads | torch" in record["machine"] and 0 <= record["wall_s"] < 60


def test_record_run_reads_a_run_folder_and_its_log(tmp_path):
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    (run / "eval.json").write_text(json.dumps(EVALUATION))
    (run / "options.json").write_text(json.dumps({"tasks": "vqa", "steps": 3}))
    (tmp_path / "runs" / "x.log").write_text(LOG)
    record_run = script("record_run")
    record_run.main([str(run), "--name", "x", "--commit", "abc1234", "--out", str(tmp_path / "records")])
    record = load(tmp_path / "records")["x"]
    assert problems(record) == [] and record["train_options"] == {"tasks": "vqa", "steps": 3}   # what was trained
    assert (record["command"], record["wall_s"], record["train_s"], record["metrics"], record["commit"]) == (
        "python scripts/train_mixture.py --eval-n 500 --out runs/x", 1107.28, 1053, EVALUATION["model"], "abc1234")
    ceilings = tmp_path / "c.json"       # an evaluate.py --baseline file: its results are baselines
    ceilings.write_text(json.dumps({"split": "test", "n": 4, "results": {"depth": {"vq_ceiling": {"rmse": 0.5}}, "vqa": {}}}))
    record_run.main([str(ceilings), "--name", "c", "--command", "python scripts/evaluate.py --baseline vq_ceiling",
                     "--out", str(tmp_path / "records")])
    assert load(tmp_path / "records")["c"]["baselines"] == {"depth": {"vq_ceiling": {"rmse": 0.5}}}
    with pytest.raises(SystemExit, match="command"):     # a record must name its command
        record_run.main([str(run), "--name", "y", "--log", os.devnull, "--out", str(tmp_path / "records")])
    (run / "record.json").write_text(json.dumps({"command": "python scripts/train_mixture.py --out runs/x", "steps": 5,
                                                 "wall_s": 9.5, "train_s": 7}))
    record_run.main([str(run), "--name", "z", "--log", os.devnull, "--out", str(tmp_path / "records")])
    assert {k: load(tmp_path / "records")["z"][k] for k in ("steps", "wall_s", "train_s")} == {
        "steps": 5, "wall_s": 9.5, "train_s": 7}                 # the trainer's record.json, without a log

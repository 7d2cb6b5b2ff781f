"""scripts/specialists.py: the equal-step specialists of a generalist (conftest's toy run of every task)."""
import json
import re
from dataclasses import replace
from pathlib import Path

from conftest import load_script, run_script, run_script_here

specialists = load_script("specialists")
TRAINED = re.compile(r"trained \d+ steps")   # what train_mixture.py prints at the end of a run


def test_each_pairs_steps_are_its_examples_in_the_generalists_batches(all_tasks_run):
    options = json.loads((all_tasks_run.out / "options.json").read_text())
    generalist = specialists.load_generalist(all_tasks_run.out)
    drawn = specialists.examples_per_pair(generalist)
    trained = json.loads((all_tasks_run.out / "eval.json").read_text())["model"]
    assert set(drawn) == set(trained)
    assert sum(drawn.values()) == options["steps"] * options["batch_size"]   # every example of every batch, once
    steps = specialists.steps_per_pair(generalist)
    assert all(steps[p] == max(1, round(n / options["batch_size"])) for p, n in drawn.items())
    command = specialists.command(generalist, "vqa", 3, all_tasks_run.out / "x", 6)
    assert command[command.index("--tasks") + 1] == "vqa" and command[command.index("--steps") + 1] == "3"
    assert "detection.order=x" in command and "--no-compile" in command            # the generalist's recipe


def test_a_specialist_trains_on_the_generalists_tokenizers_and_joins_the_table(tmp_path, all_tasks_run, toy_cache):
    env = {"UNIO_CACHE": toy_cache}
    proc = run_script("scripts/specialists.py", str(all_tasks_run.out), "--out", str(tmp_path), "--only", "vqa,count",
                      "--eval-n", "4", "--json", str(tmp_path / "table.json"), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = json.loads((tmp_path / "table.json").read_text())
    assert set(table["steps"]) == {"vqa", "count"}
    assert all(table["pairs"][p]["equal_steps"] is not None for p in ("vqa", "count"))
    assert table["pairs"]["depth"]["equal_steps"] is None and table["tasks_in_delta_m"]["equal_steps"] <= 2
    assert "| vqa |" in proc.stdout and len(TRAINED.findall(proc.stdout)) == 2 and (tmp_path / "eq-vqa" / "model" / "tokenizers").is_dir()
    # a second call finds both eval.json files and trains nothing (in this process: it starts no run)
    again = run_script_here("scripts/specialists.py", str(all_tasks_run.out), "--out", str(tmp_path), "--only", "vqa,count",
                       "--eval-n", "4", env=env)
    assert again.returncode == 0 and not TRAINED.search(again.stdout), again.stdout[-2000:]
    # the whole budget's specialist: the generalist's steps; the table keeps the equal-step column beside it
    whole = run_script("scripts/specialists.py", str(all_tasks_run.out), "--out", str(tmp_path), "--only", "vqa,count",
                       "--budget", "whole", "--eval-n", "4", "--json", str(tmp_path / "both.json"), env=env)
    assert whole.returncode == 0, whole.stderr[-3000:]
    both = json.loads((tmp_path / "both.json").read_text())
    steps = json.loads((all_tasks_run.out / "options.json").read_text())["steps"]
    assert both["steps"] == {"vqa": steps, "count": steps} and len(TRAINED.findall(whole.stdout)) == 2
    assert json.loads((tmp_path / "whole-vqa" / "options.json").read_text())["steps"] == steps
    assert all(both["pairs"][p][k] is not None for p in ("vqa", "count") for k in ("equal_steps", "whole_budget"))


def test_a_pair_the_generalist_did_not_train_is_refused_naming_its_pairs(tmp_path, all_tasks_run):
    proc = run_script_here("scripts/specialists.py", str(all_tasks_run.out), "--out", str(tmp_path), "--only", "ocr",
                           "--dry-run")
    assert proc.returncode == 2 and "not pairs of the generalist" in proc.stderr and "vqa" in proc.stderr
    proc = run_script_here("scripts/specialists.py", str(tmp_path), "--out", str(tmp_path))
    assert proc.returncode == 2 and "neither a finished train_mixture.py run folder" in proc.stderr
    (tmp_path / "bad.json").write_text("{not json")
    proc = run_script_here("scripts/specialists.py", str(tmp_path / "bad.json"), "--out", str(tmp_path))
    assert proc.returncode == 2 and "bad.json is not JSON" in proc.stderr and "a record" in proc.stderr


def files(folder) -> dict:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(Path(folder).rglob("*")) if f.is_file()}


def test_a_record_of_the_generalist_gives_its_options_tokenizers_and_steps(tmp_path, all_tasks_run, monkeypatch):
    """A record that keeps the run's options (record_run.py's train_options) stands in for the run folder: the
    same options and steps per pair, and the tokenizers the run trained with, found in its cache, not rebuilt."""
    cache = all_tasks_run.out.parent / "cache"                  # the run's UNIO_CACHE
    monkeypatch.setenv("UNIO_CACHE", str(cache))
    before = sorted(cache.rglob("*"))
    options = json.loads((all_tasks_run.out / "options.json").read_text())
    record = {"name": "g", "command": "python scripts/train_mixture.py --tasks all", "steps": options["steps"] - 1,
              "metrics": json.loads((all_tasks_run.out / "eval.json").read_text())["model"], "train_options": options}
    (tmp_path / "g.json").write_text(json.dumps(record))
    of_record = specialists.load_generalist(tmp_path / "g.json")
    of_run = specialists.load_generalist(all_tasks_run.out)
    assert sorted(cache.rglob("*")) == before and of_record.tokenizers.parent == cache      # found, nothing built
    assert files(of_record.tokenizers) == files(of_run.tokenizers) and "text/spiece.model" in files(of_run.tokenizers)
    assert of_record.options.steps == options["steps"] - 1         # the steps the record says the run trained
    assert of_record.options == replace(of_run.options, steps=options["steps"] - 1)
    assert of_record.evaluation["model"] == of_run.evaluation["model"]
    record["steps"] = options["steps"]
    (tmp_path / "g.json").write_text(json.dumps(record))
    of_record = specialists.load_generalist(tmp_path / "g.json")
    assert specialists.steps_per_pair(of_record) == specialists.steps_per_pair(of_run)
    del record["train_options"]                      # a record from before record_run.py kept the options
    (tmp_path / "old.json").write_text(json.dumps(record))
    proc = run_script_here("scripts/specialists.py", str(tmp_path / "old.json"), "--out", str(tmp_path), "--dry-run")
    assert proc.returncode == 2 and "holds no train_options" in proc.stderr and "run folder" in proc.stderr


def test_a_record_on_a_machine_without_its_tokenizers_builds_the_same_ones(tmp_path, all_tasks_run, monkeypatch):
    """Where the cache lacks them, the record's tokenizers are built as the trainer builds them (its seed first):
    the same files, byte for byte, as the run's."""
    monkeypatch.setenv("UNIO_CACHE", str(tmp_path / "empty-cache"))
    options = json.loads((all_tasks_run.out / "options.json").read_text())
    record = {"name": "g", "command": "python scripts/train_mixture.py --tasks all", "steps": options["steps"],
              "metrics": json.loads((all_tasks_run.out / "eval.json").read_text())["model"], "train_options": options}
    (tmp_path / "g.json").write_text(json.dumps(record))
    dry = specialists.load_generalist(tmp_path / "g.json", build_tokenizers=False)
    assert dry.tokenizers.parent == tmp_path / "empty-cache" and not dry.tokenizers.exists()
    built = specialists.load_generalist(tmp_path / "g.json").tokenizers
    assert built == dry.tokenizers and files(built) == files(specialists.load_generalist(all_tasks_run.out).tokenizers)

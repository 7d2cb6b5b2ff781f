"""Run records: one small JSON per run whose figures the docs quote (docs/records/NAME.json).

A record names the command, the commit, the machine, the wall time and the evaluation's metrics as
eval.json holds them ({task: {metric: value}}, baselines {task: {baseline: {metric: value}}}).
`scripts/results_tables.py` writes the docs' results tables from the records, so a figure in a table is
a figure in a record. The trainer writes `record.json` into its run folder at the end of a run
(`write_run_record`); `scripts/record_run.py` turns a run folder, or an evaluate.py JSON, into a record."""
from __future__ import annotations

import json
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

REQUIRED = ("name", "command", "commit", "date", "machine", "wall_s", "n", "metrics", "source")
OPTIONAL = ("train_s", "run_s", "steps", "last_loss", "peak_rss_mb", "split", "baselines", "options", "train_options",
            "note")
SOURCES = ("eval.json", "evaluate.py --json", "transcribed", "no evaluation")   # transcribed: says from where


def machine() -> str:
    """The CPU (or GPU), the threads torch uses, torch's version and the bf16 matmul instructions."""
    import torch

    from unio.train.precision import machine_key
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} | torch {torch.__version__}"
    try:
        flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "").split()
    except OSError:
        flags = []
    bf16 = "AMX" if "amx_bf16" in flags else "AVX512-BF16, no AMX" if "avx512_bf16" in flags else "no bf16 matmul unit"
    return f"{machine_key()} | {bf16 if flags else platform.machine()}"


def commit(root: Path | None = None) -> str | None:
    """The short commit of the checkout the code runs from, with '+dirty' when it has uncommitted changes;
    None outside a git checkout."""
    root = root or Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def command_line(argv: list | None = None) -> str:
    """How this process was started: 'python scripts/train_mixture.py ...' or 'unio train ...'."""
    argv = list(sys.argv if argv is None else argv)
    program = argv[0] if argv else "python"
    head = ["python", program] if program.endswith(".py") else [Path(program).name]
    return shlex.join(head + argv[1:])


def headline_metrics(evaluation: dict) -> tuple[dict, dict]:
    """(model metrics, baselines) of an eval.json, as it holds them."""
    return evaluation.get("model", {}), evaluation.get("baselines", {})


def run_record(name: str, command: str, evaluation: dict | None, wall_s: float, **fields) -> dict:
    """A record of a run on this machine, at this checkout, today."""
    metrics, baselines = headline_metrics(evaluation or {})
    at = fields.pop("commit") if "commit" in fields else commit()
    record = {"name": name, "command": command, "commit": at, "date": time.strftime("%Y-%m-%d"),
              "machine": machine(), "wall_s": round(wall_s, 1), "n": (evaluation or {}).get("n"),
              "split": (evaluation or {}).get("split"), "metrics": metrics, "baselines": baselines,
              "source": "eval.json" if evaluation else "no evaluation"}
    return {**record, **fields}


def write_run_record(out: Path, evaluation: dict | None, started: float, **fields) -> Path:
    """record.json in the run folder: this process's command, commit, machine and wall time beside the
    evaluation (the trainer calls it last)."""
    record = run_record(Path(out).name, command_line(), evaluation, time.time() - started, **fields)
    path = Path(out) / "record.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def problems(record: dict) -> list:
    """What is wrong with a record: missing fields, unknown ones, a command that is not one, metrics not
    {task: {metric: number}}."""
    out = [f"no {key!r}" for key in REQUIRED if key not in record]
    out += [f"unknown field {key!r}" for key in record if key not in REQUIRED + OPTIONAL]
    if not re.match(r"(python scripts/\S+\.py|unio \w+)( |$)", str(record.get("command", ""))):
        out.append(f"command {record.get('command')!r} is not a python scripts/... or unio ... command line")
    if not any(str(record.get("source", "")).startswith(s) for s in SOURCES):
        out.append(f"source {record.get('source')!r} is none of {SOURCES}")
    for task, metrics in (record.get("metrics") or {}).items():
        if not isinstance(metrics, dict) or not all(isinstance(v, (int, float)) for v in metrics.values()):
            out.append(f"metrics of {task!r} are not {{metric: number}}")
    return out


def load(directory: Path) -> dict:
    """{name: record} of every NAME.json in the folder; a record whose name is not its file's is refused."""
    records = {}
    for path in sorted(Path(directory).glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("name") != path.stem:
            raise ValueError(f"{path}: its name is {record.get('name')!r}, not {path.stem!r}")
        records[path.stem] = record
    return records


def time_log(text: str) -> dict:
    """What a run's log says: /usr/bin/time -v's command, wall time and peak RSS; the trainer's steps,
    last logged loss, training seconds and total seconds."""
    found = {}
    if m := re.search(r'Command being timed: "(.*)"', text):
        found["command"] = m.group(1)
    if m := re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text):
        parts = [float(p) for p in m.group(1).split(":")]
        found["wall_s"] = round(sum(p * 60 ** i for i, p in enumerate(reversed(parts))), 2)
    if m := re.search(r"Maximum resident set size \(kbytes\): (\d+)", text):
        found["peak_rss_mb"] = round(int(m.group(1)) * 1024 / 1e6)   # KiB -> MB (10^6 bytes)
    if m := re.search(r"trained (\d+) steps \(last logged loss ([\d.]+)\) in (\d+) s", text):
        found.update(steps=int(m.group(1)), last_loss=float(m.group(2)), train_s=int(m.group(3)))
    if m := re.search(r"total wall time (\d+) s", text):
        found["run_s"] = int(m.group(1))
    return found

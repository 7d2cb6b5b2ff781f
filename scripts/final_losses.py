"""Each task's training loss near the end of one or more runs: its token cross-entropy averaged over the
logged steps of the last `--steps` of each run's metrics.jsonl, as a markdown table; with two or more runs,
each later run's change against the first. A mean over many logged batches says what the runs learned
with less noise than one evaluation, and without the test split.

    python scripts/final_losses.py runs/all-s39-long runs/all-s42-kp3           # the last 1,000 steps
    python scripts/final_losses.py runs/all-s39-long runs/all-s42-kp3 --steps 2000
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from unio.infer.report import read_losses


def final_losses(run: Path, steps: int) -> dict:
    """{curve name: mean loss over the logged steps after the run's last step - `steps`} ("total" first); a
    task not logged there (trained in a first stage only) is left out, as a run that never logged it."""
    curves = read_losses(Path(run) / "metrics.jsonl")
    if not curves:
        raise SystemExit(f"{run}/metrics.jsonl logs no losses")
    last = max(max(s) for s, _ in curves.values())
    recent = {name: [v for s, v in zip(ss, vs) if s > last - steps] for name, (ss, vs) in curves.items()}
    return {name: float(np.mean(values)) for name, values in recent.items() if values}


def table(runs: list, steps: int) -> str:
    losses = [final_losses(run, steps) for run in runs]
    names = ["total"] + sorted(n for n in losses[0] if n != "total")
    head = "| task | " + " | ".join(f"`{Path(r).name}`" for r in runs)
    head += "".join(f" | change, `{Path(r).name}`" for r in runs[1:]) + " |"
    rows = [head, "|---" * (1 + 2 * len(runs) - 1) + "|"]
    for name in names:
        values = [run.get(name) for run in losses]
        cells = ["" if v is None else f"{v:.3f}" for v in values]
        base = values[0]
        cells += ["" if v is None or not base else f"{v / base - 1:+.1%}" for v in values[1:]]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run folders with a metrics.jsonl; the first is the reference")
    p.add_argument("--steps", type=int, default=1000, help="the last steps each mean covers (default 1000)")
    return p


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error(f"--steps must be a positive number of steps, got {args.steps}")
    print(table(args.runs, args.steps))


if __name__ == "__main__":
    main()

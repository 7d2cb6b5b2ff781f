"""Tables of the gradient probe (`train_mixture.py --probe-gradients N`) of one or more runs: each pair's
gradient norm per part of the model and the cosine between pairs, as medians over windows of steps.

    python scripts/gradient_table.py runs/rv-base runs/rd-base --windows 0,100,300,1050
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from unio.train.gradients import PARTS


def probes(run: Path) -> list:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    found = [r for r in rows if "gradients" in r]
    if not found:
        raise SystemExit(f"{run}/metrics.jsonl has no gradient probes; train with --probe-gradients N")
    return found


def window_rows(found: list, lo: int, hi: int, kind: str) -> dict:
    """{name: {part: median}} over the probes with lo <= step < hi; kind "norm" or "cosine"."""
    inside = [r["gradients"][kind] for r in found if lo <= r["step"] < hi]
    names = inside[0].keys() if inside else ()
    return {n: {p: float(np.median([r[n][p] for r in inside])) for p in PARTS} for n in names}


def table(run: Path, windows: list) -> str:
    found = probes(run)
    lines = [f"### {run}", "", "| steps | what | " + " | ".join(PARTS) + " |", "|---|---|" + "---|" * len(PARTS)]
    for lo, hi in zip(windows, windows[1:]):
        for kind in ("norm", "cosine"):
            for name, parts in window_rows(found, lo, hi, kind).items():
                label = f"{kind} {name.replace('|', ' vs ')}"
                lines.append(f"| {lo}-{hi - 1} | {label} | " + " | ".join(f"{parts[p]:.3g}" for p in PARTS) + " |")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--windows", default="0,100,300,600,1050", help="step boundaries of the windows")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    windows = [int(w) for w in args.windows.split(",")]
    print("\n\n".join(table(run, windows) for run in args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

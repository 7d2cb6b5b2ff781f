"""Compare two bench JSONs (`scripts/bench.py --json`): every numeric figure's change, and a guard.

    python scripts/bench_compare.py OLD.json NEW.json      # or: scripts/bench.py ... --compare OLD.json

The guard fails (exit 1) when training or generation speed fell by more than `--tolerance` (15%). On the
same machine (the reports' `machine` agree) it guards tokens/s themselves; across machines, where
tokens/s say more about the machine than the code, it guards the ratios to the peer (T5) measured in the
same run, which a machine's speed moves far less. Where both reports timed training or generation in turns
with T5 (`train.interleaved`, `generate.interleaved`), that ratio is guarded for it on any machine: a VM's drift
moves two separate timings of one run by 20-40% (docs/experiments.md, 2026-12-04), the ratio timed in turns least.
"""
from __future__ import annotations

import argparse
import json
import sys

SAME_MACHINE = ("train.unio.useful_tokens_per_s", "generate.unio_tokens_per_s")
ANY_MACHINE = ("train.ratio", "generate.ratio")
IN_TURNS = {"train.": "train.interleaved.to_t5.ratio", "generate.": "generate.interleaved.to_t5.ratio"}


def flatten(report: dict, prefix: str = "") -> dict:
    """{'a.b.c': number} for every numeric leaf (booleans left out)."""
    out = {}
    for key, value in report.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def same_machine(old: dict, new: dict) -> bool:
    return old.get("machine") is not None and old.get("machine") == new.get("machine")


def guarded(old: dict, new: dict) -> tuple:
    """The keys the guard checks: tokens/s on one machine, peer ratios across machines; for training and for
    generation, the ratio timed in turns wherever both reports have it."""
    keys = SAME_MACHINE if same_machine(old, new) else ANY_MACHINE
    for part, in_turns in IN_TURNS.items():
        if in_turns in flatten(old) and in_turns in flatten(new):
            keys = tuple(key for key in keys if not key.startswith(part)) + (in_turns,)
    return keys


def compare(old: dict, new: dict, tolerance: float = 0.15) -> tuple[list, list]:
    """(lines: each shared figure's old, new and relative change; failures: the guarded figures that fell
    by more than `tolerance`, or are missing)."""
    before, after = flatten(old), flatten(new)
    lines = [f"{key}: {before[key]:.6g} -> {after[key]:.6g} ({(after[key] / before[key] - 1) * 100:+.1f}%)"
             if before[key] else f"{key}: {before[key]:.6g} -> {after[key]:.6g}"
             for key in sorted(before.keys() & after.keys())]
    failures = []
    for key in guarded(old, new):
        if key not in before or key not in after:
            failures.append(f"{key} is missing from the {'old' if key not in before else 'new'} report")
        elif after[key] < (1 - tolerance) * before[key]:
            failures.append(f"{key} fell {(1 - after[key] / before[key]) * 100:.1f}% "
                            f"({before[key]:.6g} -> {after[key]:.6g}), more than the {tolerance * 100:.0f}% allowed")
    return lines, failures


def report_and_verdict(old: dict, new: dict, tolerance: float = 0.15, out=sys.stdout) -> int:
    lines, failures = compare(old, new, tolerance)
    keys = guarded(old, new)
    print("\n".join(lines), file=out)
    before, after = old.get("precision", "bf16"), new.get("precision", "bf16")   # reports before --precision: bf16
    if before != after:
        print(f"note: the old report trained in {before}, the new one in {after}: every figure compares two "
              f"precisions, not two versions of the code", file=out)
    print(f"guard ({'same machine: tokens/s' if same_machine(old, new) else 'other machine: ratios to the peer'}"
          f"{''.join(f'; {part[:-1]}: the ratio timed in turns' for part, k in IN_TURNS.items() if k in keys)}): "
          + ("; ".join(failures) if failures else f"{', '.join(keys)} within {tolerance * 100:.0f}%"), file=out)
    return 1 if failures else 0


def read(path: str) -> dict:
    try:
        return json.loads(open(path).read())
    except FileNotFoundError:
        raise SystemExit(f"no bench report at {path}; write one with `python scripts/bench.py --json {path}`") from None
    except json.JSONDecodeError as error:
        raise SystemExit(f"{path} is not a bench JSON ({error})") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--tolerance", type=float, default=0.15, help="the fall allowed, as a fraction (default 0.15)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    return report_and_verdict(read(args.old), read(args.new), args.tolerance)


if __name__ == "__main__":
    sys.exit(main())

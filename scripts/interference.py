"""The interference table: a generalist's headline per task against specialists of the same preset.

    python scripts/interference.py --generalist runs/all --equal-steps vqa=runs/vqa-600 \\
        --whole-budget vqa=runs/vqa-3000 --equal-steps depth=runs/depth-600/eval.json --json interference.json

A path is an eval.json, the run folder holding one, or a run's record in docs/records/ (--generalist
docs/records/all-start.json); PAIR is a pair name (a task, or TASK@SOURCE).
Prints a markdown table; Δ > 0 where the generalist is better. See unio/infer/interference.py.
"""
import argparse
import json
import sys

from unio.infer.interference import KINDS, compare, markdown, read_eval


def specialists(specs: list, kind: str) -> dict:
    """['PAIR=PATH', ...] -> {pair: that specialist's eval.json contents}."""
    out = {}
    for spec in specs:
        pair, sep, path = spec.partition("=")
        if not sep or not pair or not path:
            raise ValueError(f"--{kind.replace('_', '-')} takes PAIR=PATH, e.g. TASK@SOURCE=runs/x; got {spec!r}")
        evaluation = read_eval(path)
        if pair not in evaluation["model"]:
            raise ValueError(f"{path} holds no pair {pair!r}; it holds {', '.join(evaluation['model']) or 'none'}")
        out[pair] = evaluation
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generalist", required=True, help="the generalist's eval.json or run folder")
    for kind, words in KINDS.items():
        p.add_argument(f"--{kind.replace('_', '-')}", action="append", default=[], metavar="PAIR=PATH",
                       help=f"a specialist trained for {words} (repeatable)")
    p.add_argument("--json", help="also write the figures here")
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        given = {kind: specialists(getattr(args, kind), kind) for kind in KINDS}
        comparison = compare(read_eval(args.generalist), given)
    except (OSError, ValueError) as error:
        p.error(str(error))
    print(markdown(comparison))
    for line in comparison["skipped"]:
        print(f"skipped {line}", file=sys.stderr)
    for line in comparison["notes"]:
        print(f"note: {line}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(comparison, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

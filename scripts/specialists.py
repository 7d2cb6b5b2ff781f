"""The specialists of a generalist run, trained one after another, then its interference table.

    python scripts/specialists.py runs/all --out runs/eq                 # each missing specialist, then the table
    python scripts/specialists.py runs/all --out runs/eq --dry-run       # the steps and commands only
    python scripts/specialists.py runs/all --out runs/eq --only vqa,depth --json interference.json
    python scripts/specialists.py runs/all --out runs/eq --budget whole --only refexp   # the whole budget's

Each specialist is scripts/train_mixture.py on one pair of the generalist alone, with the generalist's preset,
batch size, learning rate, warm-up, seed, model overrides, task options and tokenizers (its run's
model/tokenizers), for the steps that pair got there: its examples in the generalist's batches (both stages,
replayed from the run's seed) over the batch size, rounded, at least 1 (`--budget equal`, folders eq-PAIR);
or, with `--budget whole`, the generalist's own steps (folders whole-PAIR). A specialist whose folder already
holds an eval.json is not trained again, so a stopped sweep goes on where it stopped. The table is
scripts/interference.py's, with a column for each budget of which --out holds finished specialists of the
pairs asked for. Issue 33, item 5.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import fields, replace
from functools import lru_cache
from pathlib import Path

from unio.infer.interference import compare, markdown, read_eval
from unio.train import checkpoint as ckpt
from unio.train.options import TrainOptions


@lru_cache(maxsize=None)
def generalist_options(run: Path) -> TrainOptions:
    """The generalist's options (its options.json), with the steps it trained (its checkpoint's, where
    --minutes stopped it early); read once a run. Shared: change a copy (dataclasses.replace)."""
    saved = json.loads((run / "options.json").read_text())
    opts = TrainOptions(**{f.name: saved[f.name] for f in fields(TrainOptions) if f.name in saved})
    found = ckpt.find_checkpoint(run)
    if found is not None:
        opts.steps = ckpt.load_state(found)["step"]
    return opts


def examples_per_pair(run: Path) -> dict:
    """{pair name: its examples in the generalist's batches}, the run's own draws replayed from its seed."""
    from unio.train.trainer import Trainer
    with tempfile.TemporaryDirectory() as scratch:
        opts = replace(generalist_options(run), out=scratch, tokenizers=str(run / "model" / "tokenizers"), resume=False,
                       compile=False, progress=False, deepspeed=None)
        trainer = Trainer(opts)
        trainer.setup()
        stream = trainer.stream
        megabatches = -(-opts.steps * opts.grad_accum // stream.buckets)
        drawn = stream.mixture.draws_before(megabatches, opts.batch_size * stream.buckets)
    return {name: int(n) for name, n in zip(stream.mixture.names, drawn)}


def steps_per_pair(run: Path) -> dict:
    """{pair name: the steps its examples fill in the generalist's batches, at least 1}."""
    batch_size = generalist_options(run).batch_size
    return {name: max(1, round(n / batch_size)) for name, n in examples_per_pair(run).items()}


BUDGETS = {"equal": ("eq", "equal_steps"), "whole": ("whole", "whole_budget")}   # folder prefix, table column


def budget_steps(run: Path, budget: str) -> dict:
    """{pair name: its specialist's steps}: the pair's share of the generalist's batches (its draws replayed),
    or all of them (each pair the generalist was evaluated on; no replay needed)."""
    if budget == "equal":
        return steps_per_pair(run)
    return dict.fromkeys(read_eval(run)["model"], generalist_options(run).steps)


def finished(out: Path, pairs: list) -> dict:
    """{table column: {pair: eval.json contents}} of the specialists in `out` that have an eval.json."""
    found = {column: {pair: read_eval(out / f"{prefix}-{pair}") for pair in pairs
                      if (out / f"{prefix}-{pair}" / "eval.json").is_file()} for prefix, column in BUDGETS.values()}
    return {column: evals for column, evals in found.items() if evals}


def command(run: Path, pair: str, steps: int, out: Path, eval_n: int) -> list:
    """train_mixture.py for `pair` alone, `steps` steps, in the generalist's recipe."""
    opts = generalist_options(run)
    script = os.path.relpath(Path(__file__).parent / "train_mixture.py")   # as a user would type it, from here
    args = [sys.executable, script, "--tasks", pair, "--steps", str(steps),
            "--preset", opts.preset, "--batch-size", str(opts.batch_size), "--lr", str(opts.lr),
            "--warmup", str(opts.warmup), "--seed", str(opts.seed), "--tokenizers", str(run / "model" / "tokenizers"),
            "--eval-n", str(eval_n), "--no-progress", "--out", str(out)]
    for key, value in opts.model_overrides.items():
        args += ["--model", f"{key}={value}"]
    for task, options in opts.task_options.items():
        args += [a for key, value in options.items() for a in ("--task-option", f"{task}.{key}={value}")]
    return args + ([] if opts.compile else ["--no-compile"])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("generalist", type=Path, help="the generalist's run folder (options.json, model/, eval.json)")
    p.add_argument("--out", type=Path, required=True, help="the folder the specialists' run folders go in")
    p.add_argument("--only", default=None, help="these pairs only, comma-separated (default: every pair)")
    p.add_argument("--budget", choices=list(BUDGETS), default="equal",
                   help="each specialist's steps: its pair's share of the generalist's batches (equal, the default) "
                        "or the generalist's whole run (whole)")
    p.add_argument("--eval-n", type=int, default=None, help="test examples per task (default: the generalist's)")
    p.add_argument("--dry-run", action="store_true", help="print each pair's steps and command; train nothing")
    p.add_argument("--json", help="also write the table's figures here")
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not (args.generalist / "options.json").is_file() or not (args.generalist / "model" / "tokenizers").is_dir():
        p.error(f"{args.generalist} is not a finished train_mixture.py run folder (options.json and model/tokenizers)")
    steps = budget_steps(args.generalist, args.budget)
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(steps)
    unknown = [n for n in only if n not in steps]
    if unknown:
        p.error(f"--only names {', '.join(unknown)}, not pairs of the generalist; its pairs: {', '.join(steps)}")
    eval_n = args.eval_n or generalist_options(args.generalist).eval_n
    failed = []
    for pair in only:
        out = args.out / f"{BUDGETS[args.budget][0]}-{pair}"
        argv_ = command(args.generalist, pair, steps[pair], out, eval_n)
        print(f"{pair}: {steps[pair]} steps -> {out}", flush=True)
        if args.dry_run:
            print("  " + " ".join(argv_[1:]))
            continue
        if not (out / "eval.json").is_file():
            proc = subprocess.run(argv_)
            if proc.returncode != 0:
                print(f"the specialist of {pair} failed (exit {proc.returncode}); the others go on", file=sys.stderr)
                failed.append(pair)
    done = finished(args.out, only)
    if args.dry_run or not done:
        return 0
    comparison = compare(read_eval(args.generalist), done)
    print(markdown(comparison))
    if args.json:
        trained = done.get(BUDGETS[args.budget][1], {})   # the steps of this call's budget
        Path(args.json).write_text(json.dumps({**comparison, "steps": {p: steps[p] for p in trained}}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The specialists of a generalist run, trained one after another, then its interference table.

    python scripts/specialists.py runs/all --out runs/eq                 # each missing specialist, then the table
    python scripts/specialists.py runs/all --out runs/eq --dry-run       # the steps and commands only
    python scripts/specialists.py runs/all --out runs/eq --only vqa,depth --json interference.json
    python scripts/specialists.py runs/all --out runs/eq --budget whole --only refexp   # the whole budget's
    python scripts/specialists.py docs/records/all-s39-long.json --out runs/eq-long --only depth   # from a record

Each specialist is scripts/train_mixture.py on one pair of the generalist alone, with the generalist's preset,
batch size, learning rate, warm-up, seed, model overrides, task options and tokenizers (its run's
model/tokenizers; from a record of the run, which holds its options, the cache's, built there when absent),
for the steps that pair got there: its examples in the generalist's batches (both stages, replayed from the
run's seed) over the batch size, rounded, at least 1 (`--budget equal`, folders eq-PAIR);
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
from pathlib import Path
from typing import NamedTuple

from unio.infer.interference import compare, markdown, read_eval
from unio.train import checkpoint as ckpt
from unio.train.options import TrainOptions


class Generalist(NamedTuple):
    """What the specialists are made from: the generalist's options (with the steps it trained), the folder of
    its tokenizers and its evaluation (an eval.json's contents)."""
    options: TrainOptions
    tokenizers: Path
    evaluation: dict


def options_of(saved: dict) -> TrainOptions:
    return TrainOptions(**{f.name: saved[f.name] for f in fields(TrainOptions) if f.name in saved})


def generalist_of_run(run: Path) -> Generalist:
    """A finished train_mixture.py run folder: its options.json (the steps its checkpoint holds, where --minutes
    stopped it early), model/tokenizers and eval.json."""
    opts = options_of(json.loads((run / "options.json").read_text()))
    found = ckpt.find_checkpoint(run)
    if found is not None:
        opts.steps = ckpt.load_state(found)["step"]
    return Generalist(opts, run / "model" / "tokenizers", read_eval(run))


def generalist_of_record(path: Path, build: bool = True) -> Generalist:
    """A docs/records/NAME.json of a train_mixture.py run that holds the run's options (`train_options`, which
    record_run.py copies from its options.json) and the steps it trained. Its tokenizers: the cache folder those
    options name, where train_mixture.py keeps them; built there first when this machine has none (`build`),
    from the same options and seed, so the same tokenizers only where the build is deterministic."""
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON ({error}): give a run folder or a record "
                         f"(docs/records/NAME.json)") from error
    missing = [key for key in ("train_options", "steps") if key not in record]
    if missing:
        raise ValueError(f"{path} holds no {' and no '.join(missing)} (recorded before record_run.py kept a run's "
                         f"options, or not a train_mixture.py run): give the generalist's run folder instead")
    opts = replace(options_of(record["train_options"]), steps=record["steps"])
    if opts.tokenizers and not (Path(opts.tokenizers) / "vocab.json").is_file():
        raise ValueError(f"{path}: its run trained with the tokenizers in {opts.tokenizers}, not on this machine; "
                         f"give the generalist's run folder instead")
    return Generalist(opts, cached_tokenizers(opts, build), read_eval(path))


def cached_tokenizers(opts: TrainOptions, build: bool) -> Path:
    """The cache folder of the tokenizers `opts` train with; built now, as the trainer would (seeded first), when
    it is not there and `build`."""
    from unio.train.builders import build_modalities, tokenizer_folder
    from unio.train.options import seed_everything
    from unio.train.trainer import Trainer
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(replace(opts, out=scratch, resume=False, compile=False, deepspeed=None))
        if build:
            seed_everything(opts.seed)           # as Trainer.setup seeds before it builds them
            build_modalities(trainer.opts, trainer.weights, trainer.sources, None, True, trainer.bad, trainer.task_set)
        return tokenizer_folder(trainer.opts, trainer.weights, trainer.task_set)


def load_generalist(path: Path, build_tokenizers: bool = True) -> Generalist:
    """A run folder or its record (see generalist_of_record; `build_tokenizers`: build absent ones)."""
    if path.suffix == ".json":
        if not path.is_file():
            raise ValueError(f"no record {path}")
        return generalist_of_record(path, build_tokenizers)
    if not (path / "options.json").is_file() or not (path / "model" / "tokenizers").is_dir():
        raise ValueError(f"{path} is neither a finished train_mixture.py run folder (options.json and "
                         f"model/tokenizers) nor a record of one (docs/records/NAME.json)")
    return generalist_of_run(path)


def examples_per_pair(generalist: Generalist) -> dict:
    """{pair name: its examples in the generalist's batches}, the run's own draws replayed from its seed."""
    from unio.train.trainer import Trainer
    with tempfile.TemporaryDirectory() as scratch:
        opts = replace(generalist.options, out=scratch, tokenizers=str(generalist.tokenizers), resume=False,
                       compile=False, progress=False, deepspeed=None)
        trainer = Trainer(opts)
        trainer.setup()
        stream = trainer.stream
        megabatches = -(-opts.steps * opts.grad_accum // stream.buckets)
        drawn = stream.mixture.draws_before(megabatches, opts.batch_size * stream.buckets)
    return {name: int(n) for name, n in zip(stream.mixture.names, drawn)}


def steps_per_pair(generalist: Generalist) -> dict:
    """{pair name: the steps its examples fill in the generalist's batches, at least 1}."""
    batch_size = generalist.options.batch_size
    return {name: max(1, round(n / batch_size)) for name, n in examples_per_pair(generalist).items()}


BUDGETS = {"equal": ("eq", "equal_steps"), "whole": ("whole", "whole_budget")}   # folder prefix, table column


def budget_steps(generalist: Generalist, budget: str) -> dict:
    """{pair name: its specialist's steps}: the pair's share of the generalist's batches (its draws replayed),
    or all of them (each pair the generalist was evaluated on; no replay needed)."""
    if budget == "equal":
        return steps_per_pair(generalist)
    return dict.fromkeys(generalist.evaluation["model"], generalist.options.steps)


def finished(out: Path, pairs: list) -> dict:
    """{table column: {pair: eval.json contents}} of the specialists in `out` that have an eval.json."""
    found = {column: {pair: read_eval(out / f"{prefix}-{pair}") for pair in pairs
                      if (out / f"{prefix}-{pair}" / "eval.json").is_file()} for prefix, column in BUDGETS.values()}
    return {column: evals for column, evals in found.items() if evals}


def command(generalist: Generalist, pair: str, steps: int, out: Path, eval_n: int) -> list:
    """train_mixture.py for `pair` alone, `steps` steps, in the generalist's recipe."""
    opts = generalist.options
    script = os.path.relpath(Path(__file__).parent / "train_mixture.py")   # as a user would type it, from here
    args = [sys.executable, script, "--tasks", pair, "--steps", str(steps),
            "--preset", opts.preset, "--batch-size", str(opts.batch_size), "--lr", str(opts.lr),
            "--warmup", str(opts.warmup), "--seed", str(opts.seed), "--tokenizers", str(generalist.tokenizers),
            "--eval-n", str(eval_n), "--no-progress", "--out", str(out)]
    for key, value in opts.model_overrides.items():
        args += ["--model", f"{key}={value}"]
    for task, options in opts.task_options.items():
        args += [a for key, value in options.items() for a in ("--task-option", f"{task}.{key}={value}")]
    return args + ([] if opts.compile else ["--no-compile"])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("generalist", type=Path, help="the generalist's run folder (options.json, model/, eval.json) or its "
                                                   "record (docs/records/NAME.json with train_options)")
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
    try:
        # a dry run of the whole budget prints commands only: it needs the tokenizers' folder, not the tokenizers
        generalist = load_generalist(args.generalist, build_tokenizers=not (args.dry_run and args.budget == "whole"))
    except ValueError as error:
        p.error(str(error))
    steps = budget_steps(generalist, args.budget)
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(steps)
    unknown = [n for n in only if n not in steps]
    if unknown:
        p.error(f"--only names {', '.join(unknown)}, not pairs of the generalist; its pairs: {', '.join(steps)}")
    eval_n = args.eval_n or generalist.options.eval_n
    failed = []
    for pair in only:
        out = args.out / f"{BUDGETS[args.budget][0]}-{pair}"
        argv_ = command(generalist, pair, steps[pair], out, eval_n)
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
    comparison = compare(generalist.evaluation, done)
    print(markdown(comparison))
    if args.json:
        trained = done.get(BUDGETS[args.budget][1], {})   # the steps of this call's budget
        Path(args.json).write_text(json.dumps({**comparison, "steps": {p: steps[p] for p in trained}}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

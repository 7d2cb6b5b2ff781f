"""`scripts/evaluate.py` / `unio eval`: per-pair metrics of a model or of baselines on a split of each source."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Evaluate a unio model, or baselines, on (task, source) pairs.")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", help="run folder or model folder")
    who.add_argument("--baseline", help="a baseline name of the tasks (see each task's baselines()) or 'all'")
    p.add_argument("--tasks", default=None, help="pairs as in train_mixture.py: vqa,caption@coco, or all "
                   "(every task the source can feed; default: the default mixture)")
    p.add_argument("--source", action="append", default=[], metavar="NAME=SPEC", help="configure a source, as in train_mixture.py")
    p.add_argument("--split", default="test", help="train, validation or test (each source maps them onto its files), "
                   "or any split every evaluated source has, e.g. RefCOCO's testA (default: test)")
    p.add_argument("--skip-bad-records", action="store_true", help="skip records a reader finds bad, reporting each "
                   "and counting them per source in the JSON (default: stop, naming the file and the record)")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--json", default=None, help="write the metrics to this file")
    p.add_argument("--tokenizers", default=None, help="tokenizer folder for baselines (default: the cached ones)")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--plugin", action="append", default=[])
    p.add_argument("--task-option", action="append", default=[], metavar="TASK.OPTION=VALUE",
                   help="an option of a task's constructor, as in train_mixture.py (e.g. detection.label_attribute=shape)")
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="classifier-free guidance for the tasks that take it (generate, inpaint, map_to_image; "
                        "default: the scale each task's guidance option names, greedy where none; where the option "
                        "lists candidates, the one chosen on the validation split)")
    p.add_argument("--seed", type=int, default=None,
                   help="the first seed of sampled answers: a pooled task's (e.g. relations.samples=N) sampling calls are "
                        "seeded SEED, SEED+1, ... (default 0), so another draw needs a SEED past the first's calls")
    p.add_argument("--perturb", default=None, help="evaluate on perturbed test images: a name of unio.data.photometric."
                   "PERTURBATIONS (darker, brighter, low_contrast, jpeg, noise, resized), several with commas, "
                   "or 'all' (clean included)")
    return p


def evaluate_perturbed(spec: str | None, evaluate) -> dict:
    """evaluate(None) without --perturb; else {perturbation ('clean' for none): evaluate(name)}."""
    if spec is None:
        return evaluate(None)
    from unio.data.photometric import PERTURBATIONS
    names = ["clean", *PERTURBATIONS] if spec == "all" else spec.split(",")
    unknown = [n for n in names if n != "clean" and n not in PERTURBATIONS]
    if unknown:
        raise SystemExit(f"unknown perturbation {unknown[0]!r}; perturbations: clean, {', '.join(PERTURBATIONS)}, all")
    return {name: evaluate(None if name == "clean" else name) for name in names}


def check_split(split: str, sources: dict) -> None:
    """Every source has `split` (or, for train / validation / test, one to fall back on); else a clear exit."""
    from unio.infer.evaluation import evaluation_split
    for name, source in sources.items():
        try:
            evaluation_split(source, split, name)
        except KeyError as error:
            raise SystemExit(f"--split {split}: {error.args[0]}") from None


def choose_on_validation(runner, tasks, pairs, sources, args, bad) -> dict:
    """A model whose task options still list guidance candidates: the scale chosen among them on the validation
    split (unio.infer.choices), used for the evaluation (--guidance-scale skips this)."""
    from unio.infer.choices import choose_guidance, describe
    chosen = choose_guidance(runner.model, runner.mods, tasks, pairs, sources, args.n, bad=bad, progress=True)
    if chosen:
        print(describe(chosen))
    return chosen


def main(argv=None) -> int:
    from unio.allocator import keep_freed_memory
    from unio.data.bad_records import BadRecord
    keep_freed_memory()     # batched evaluation, as in the trainer's process (same values; unio.run does without)
    try:
        return evaluate(parser().parse_args(argv))
    except BadRecord as error:
        raise SystemExit(f"bad data: {error}\n(--skip-bad-records skips such records, reporting and counting them)")


def evaluate(args) -> int:
    from unio import plugins
    from unio.data.bad_records import BadRecords
    from unio.data.mixture import parse_mixture
    from unio.data.sources import build_source
    from unio.registries import TASKS
    from unio.task_set import TaskSet, merge_task_options, parse_task_options
    from unio.train.builders import default_mixture, expand_all
    from unio.train.cli import source_options
    from unio.train.options import TrainOptions
    bad = BadRecords(args.skip_bad_records)
    for path in args.plugin:
        plugins.load(path)
    given = parse_task_options(args.task_option)
    specs = source_options(args.source)
    spec = expand_all(TrainOptions(tasks=args.tasks, sources=specs), TaskSet(given)).tasks   # `all`: every task
    pairs = list(parse_mixture(spec or default_mixture(), TASKS.names()))
    if args.model:
        from unio.infer.evaluation import evaluate_model
        from unio.infer.runner import load
        runner = load(args.model)
        trained = runner.model.config.task_options      # the options it was trained with; --task-option wins
        tasks = TaskSet(merge_task_options(trained, given), known_only=True)
        size = runner.model.config.image_size
        sources = {s: build_source(s, specs.get(s), size) for _, s in pairs}
        check_split(args.split, sources)
        chosen = {} if args.guidance_scale is not None else choose_on_validation(runner, tasks, pairs, sources, args, bad)
        results = evaluate_perturbed(args.perturb, lambda name: evaluate_model(
            runner.model, runner.mods, pairs, sources, args.split, args.n, progress=True, perturbation=name, bad=bad,
            tasks=tasks, guidance_scale=args.guidance_scale, seed=args.seed))
    else:
        from unio.infer.evaluation import evaluate_baselines
        from unio.train.tokenizer_setup import ensure_modalities
        sources = {s: build_source(s, specs.get(s), args.resolution) for _, s in pairs}
        check_split(args.split, sources)
        mods = ensure_modalities(pairs, sources, args.resolution, source_specs=specs,
                                 directory=Path(args.tokenizers) if args.tokenizers else None, bad=bad,
                                 tasks=TaskSet(given))
        tasks = TaskSet(given)
        known = {b for t, _ in pairs for b in tasks.get(t).baselines()}
        if args.baseline != "all" and args.baseline not in known:
            raise SystemExit(f"unknown baseline {args.baseline!r}; baselines: {', '.join(sorted(known))}, all")
        results = evaluate_baselines(mods, pairs, sources, args.split, args.n, args.resolution, only=args.baseline,
                                     bad=bad, tasks=tasks)
    report = {"split": args.split, "n": args.n, "results": results}
    if args.model and chosen:
        report["chosen_on_validation"] = chosen
    if bad.skip:
        report["skipped_records"] = bad.counts()
    text = json.dumps(report, indent=2)
    print(text)
    if args.perturb and "clean" in results:
        from unio.infer.report import robustness_table
        print(robustness_table(results))
    if args.json:
        Path(args.json).write_text(text)
    return 0

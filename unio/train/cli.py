"""`train_mixture.py` / `unio train`: arguments -> Trainer -> evaluation, eval.json, report and table."""
from __future__ import annotations

import argparse
import json
import time

from unio.infer.report import draw_report, table
from unio.train.balance import LOSS_MEANS, TASK_WEIGHTINGS
from unio.train.precision import PRECISIONS
from unio.train.records import write_run_record

DATA_WORKERS = ("idle", "normal", "thread")   # --data-worker: where batches are built


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train a unio generalist on a weighted task mixture.")
    p.add_argument("--tasks", default=None, help="(task, source) pairs with optional weights: vqa:2,caption@coco:1 "
                   "(default: configs/data/default.yaml's mixture; a pair without @source uses the world)")
    p.add_argument("--source", action="append", default=[], metavar="NAME=SPEC",
                   help="configure a source: NAME=hf:PATH,image=col,..., NAME=folder:PATH, NAME=config.yaml")
    p.add_argument("--preset", default="tiny", help="model size preset or a YAML file")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default 2400)")
    p.add_argument("--minutes", type=float, default=None, help="stop after this much training time")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--warmup", type=int, default=None, help="warmup steps")
    p.add_argument("--grad-accum", type=int, default=None)
    p.add_argument("--out", default=None, help="run folder (default runs/<tasks>-<preset>-s<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deepspeed", default=None, help="a DeepSpeed JSON config, e.g. configs/deepspeed/zero2.json")
    p.add_argument("--plugin", action="append", default=[], help="a task or tokenizer plugin file to load")
    p.add_argument("--task-option", action="append", default=[], metavar="TASK.OPTION=VALUE",
                   help="an option of a task's constructor, e.g. detection.order=x (objects left to right in training)")
    p.add_argument("--moe", nargs="?", const="token", choices=("token", "attribute"), default=None,
                   help="mixture-of-experts feed-forward every 2nd layer, routed by each token (token, the default) "
                        "or by its kind: image patch, or prompt or target token of each vocabulary range (attribute, "
                        "Uni-Perceiver-MoE's routing); --model expert_d_ff=N sets each expert's width")
    p.add_argument("--eval-n", type=int, default=None, help="test examples per task for the final evaluation")
    p.add_argument("--tokenizers", default=None, help="folder of trained tokenizers (default: trained and cached)")
    p.add_argument("--tokenizer-config", default=None,
                   help="configs/tokenizers/<name>.yaml or a YAML path (default: default; generation: a VQ-VAE of RGB scenes)")
    p.add_argument("--vq-steps", type=int, default=None)
    p.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints")
    p.add_argument("--eval-every", type=int, default=None, help="steps between validation evaluations (0: none)")
    p.add_argument("--log-every", type=int, default=None, help="steps between log lines")
    p.add_argument("--probe-gradients", type=int, default=None, metavar="N",
                   help="every N steps, log each pair's gradient norms and their cosines to metrics.jsonl (0: never)")
    p.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--loss-mean", choices=LOSS_MEANS, default=None,
                   help="token: one mean over a batch's target tokens (the default with --packing); task: the mean "
                        "over each task's tokens, then over the tasks in the batch (4M's per-modality normalisation); "
                        "sqrt (the default): each task's mean weighs as the square root of its tokens in the batch")
    p.add_argument("--task-weighting", choices=TASK_WEIGHTINGS, default=None,
                   help="loss: each task's tokens weigh in proportion to its recent loss (mean 1 over the mixture), "
                        "so tasks that have learned stop taking the shared step from those still learning")
    p.add_argument("--decoder-only", default=None, metavar="PAIRS",
                   help="pairs (e.g. vqa,caption) whose gradients stop at the encoder's output: they train the "
                        "decoder alone, and the encoder learns from the other tasks (an ablation of where tasks interfere)")
    p.add_argument("--packing", nargs="?", const="auto", default=None, metavar="ENC,DEC",
                   help="pack several examples per row, attention kept inside each (seqio's layout), instead of "
                        "bucketing batches by target length; rows of ENC encoder and DEC decoder tokens (auto: twice the "
                        "batch's longest example's encoder tokens, its longest target)")
    p.add_argument("--buckets", type=int, default=None, metavar="N",
                   help="batches per megabatch, whose examples length bucketing sorts by target length before cutting "
                        "them into batches (default 1: each batch holds the examples drawn for it, its tasks mixed); more "
                        "pad less but make each batch more alike (one task, one answer length; 4 before v0.3)")
    p.add_argument("--sub-batches", type=int, default=None, metavar="K",
                   help="decode each batch in at most K groups of rows of like target lengths, each padded to its own "
                        "longest, over one encoder pass: the batch's loss and step, less padding (with --buckets 1, "
                        "mixed batches nearer the cost of one-task ones; 2 measured fastest); default 2 (1 with --packing)")
    p.add_argument("--range-loss", action="store_true", help="train each target's softmax over its own vocabulary range")
    p.add_argument("--model", action="append", default=[], metavar="KEY=VALUE",
                   help="override one field of the preset, e.g. --model stem=conv --model d_model=256")
    p.add_argument("--spatial-first", type=float, default=None,
                   help="fraction of the steps that train only the tasks whose answers are not text (0: none)")
    p.add_argument("--first-tasks", default=None, help="the pairs the first stage (--spatial-first) trains, e.g. "
                   "detection (default: those whose answers are not text); a pair --tasks lacks is trained in the "
                   "first stage only, at the weight given here; the others keep their --tasks weight")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="bf16 autocast or fp32; auto (default): bf16 where this machine's bf16 matmuls beat fp32 by "
                        "10%%, measured once and cached in ~/.cache/unio/precision.json")
    p.add_argument("--no-compile", action="store_true", help="train eagerly (no torch.compile of the blocks)")
    p.add_argument("--photometric", type=float, default=None,
                   help="strength of the photometric augmentation (default 1: the documented ranges; 0: off)")
    p.add_argument("--skip-bad-records", action="store_true",
                   help="skip records a reader finds bad (a missing or truncated image, a box without area ...): "
                        "each reported once and counted per source in metrics.jsonl (default: stop, naming the record)")
    p.add_argument("--data-worker", choices=DATA_WORKERS, default="idle",
                   help="where batches are built: idle (default) a worker process on the cores the training step "
                        "leaves idle (Linux SCHED_IDLE); normal a worker at normal priority (where other work on the "
                        "machine would starve an idle one); thread a thread of the training process")
    p.add_argument("--no-warm-up", action="store_true", help=argparse.SUPPRESS)   # v0.2's; no task declares one now
    p.add_argument("--local_rank", type=int, default=0, help=argparse.SUPPRESS)
    return p


def model_overrides(items: list) -> dict:
    """['stem=conv', 'd_model=256'] -> {'stem': 'conv', 'd_model': 256} (values read as YAML)."""
    import inspect

    import yaml

    from unio.model import UnioConfig
    known = set(inspect.signature(UnioConfig.__init__).parameters) - {"self", "kwargs", "vocab_size"}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise ValueError(f"--model takes KEY=VALUE with KEY a model config field, got {item!r}; "
                             f"fields: {', '.join(sorted(known))}")
        out[key] = yaml.safe_load(value)
    return out


def source_options(items: list) -> dict:
    """['mine=hf:PATH,image=img'] -> {'mine': 'hf:PATH,image=img'}."""
    out = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"--source takes NAME=SPEC, e.g. mine=hf:/data/mine,image=img; got {item!r}")
        out[name] = spec
    return out


FLAG_OPTIONS = ("steps", "minutes", "batch_size", "lr", "grad_accum", "eval_n", "vq_steps", "checkpoint_every", "log_every",
                "probe_gradients", "warmup", "eval_every", "spatial_first", "loss_mean", "task_weighting", "photometric",
                "first_tasks", "tokenizer_config", "precision", "packing", "buckets", "sub_batches")   # set only when given


def options_from(args):
    from unio.task_set import parse_task_options
    from unio.train.builders import named_mixture
    from unio.train.options import TrainOptions, named_options
    if args.no_warm_up:
        print("--no-warm-up: no task declares a warm-up since v0.3 (caption's detection is gone); the flag changes nothing")
    options = dict(sources=source_options(args.source), preset=args.preset, out=args.out, resume=args.resume, seed=args.seed,
                   deepspeed=args.deepspeed, moe=args.moe or False, tokenizers=args.tokenizers,
                   plugins=args.plugin, progress=not args.no_progress,
                   compile=not args.no_compile, range_loss=args.range_loss,
                   skip_bad_records=args.skip_bad_records, data_workers=0 if args.data_worker == "thread" else 1,
                   idle_data_worker=args.data_worker == "idle", task_options=parse_task_options(args.task_option),
                   model_overrides=model_overrides(args.model),
                   **{name: getattr(args, name) for name in FLAG_OPTIONS if getattr(args, name) is not None})
    if args.decoder_only:
        options["decoder_only"] = tuple(n.strip() for n in args.decoder_only.split(",") if n.strip())
    recipe = named_mixture(args.tasks)        # --tasks all: configs/data/all.yaml's pairs, options and steps
    if set(recipe) - {"mixture"}:
        print(f"--tasks {args.tasks}: configs/data/{args.tasks}.yaml's recipe ({describe_recipe(recipe)}); flags given override it")
    return named_options(args.tasks, **options) if recipe else TrainOptions(tasks=args.tasks, **options)


def describe_recipe(recipe: dict) -> str:
    """'all,itm:4,find_all:2, vqa.ground=refexp, steps 9600, ...': a named mixture's recipe in one line."""
    from unio.train.builders import RECIPE_KEYS
    options = [f"{task}.{key}={value}" for task, kv in (recipe.get("task_options") or {}).items() for key, value in kv.items()]
    return ", ".join([recipe["mixture"], *options, *(f"{key} {recipe[key]}" for key in RECIPE_KEYS if key in recipe)])


def finish(trainer, eval_n: int) -> dict:
    """Evaluate on the test split beside the baselines; write eval.json and report.png; print the table. A task's
    guidance listed as candidates is first chosen on the validation split (unio.infer.choices) and saved."""
    from unio.infer import model_card
    from unio.infer.choices import choose_guidance, describe
    from unio.infer.evaluation import evaluate_baselines, evaluate_model
    pairs, sources = trainer.trained_pairs, trainer.sources
    res = trainer.model.config.image_size
    chosen = choose_guidance(trainer.model, trainer.mods, trainer.task_set, pairs, sources, eval_n, bad=trainer.bad,
                             progress=trainer.opts.progress)
    if chosen:      # saved with the model, so unio.run decodes at the chosen scale
        print(describe(chosen))
        trainer.export()
    results = evaluate_model(trainer.model, trainer.mods, pairs, sources, "test", eval_n, progress=trainer.opts.progress,
                             bad=trainer.bad, tasks=trainer.task_set)
    baselines = evaluate_baselines(trainer.mods, pairs, sources, "test", eval_n, res, bad=trainer.bad,
                                   tasks=trainer.task_set)
    evaluation = {"model": results, "baselines": baselines, "split": "test", "n": eval_n}
    if chosen:
        evaluation["chosen_on_validation"] = chosen
    if trainer.bad.skip:
        evaluation["skipped_records"] = trainer.bad.counts()
    (trainer.out / "eval.json").write_text(json.dumps(evaluation, indent=2))
    model_card.write_for(trainer, evaluation=evaluation)   # the card, now with its evaluation table
    draw_samples(trainer, pairs, sources)
    print(table(results, baselines))
    return results


def draw_samples(trainer, pairs, sources) -> None:
    """report.png: the loss curves and one test answer per pair, each drawn as its task draws it."""
    from unio.data.encoding import PromptTooLong
    from unio.infer.evaluation import evaluation_split, split_examples
    from unio.infer.runner import Runner
    runner, results = Runner(trainer.model, trainer.mods), []
    for task, source in pairs:
        example = split_examples(trainer.task_set.get(task), sources[source], evaluation_split(sources[source], "test"), 1,
                                 trainer.model.config.image_size, bad=trainer.bad, name=source)[0]
        region = None if example.region is None else example.frame.region_to_original(example.region)
        n = getattr(trainer.task_set.get(task), "report_samples", 1)   # a task may ask for a row of samples (generation)
        options = getattr(trainer.task_set.get(task), "report_options", {})
        shown = getattr(trainer.task_set.get(task), "report_image", None)           # default: the record's image
        image = example.record.get("image") if shown is None else shown(example)
        try:
            results += runner([example.prompt] * n, [image] * n, task=task, regions=[region] * n, **options)
        except PromptTooLong as error:   # training cut it; unio.run refuses it
            print(f"report.png: no sample of {task}: its first test prompt is too long for unio.run ({error})")
    draw_report(trainer.out, results)


def main(argv=None) -> int:
    from unio.data.bad_records import BadRecord
    from unio.train.checkpoint import CheckpointError
    args = parser().parse_args(argv)
    try:
        return run(args)
    except BadRecord as error:
        raise SystemExit(f"bad data: {error}\n(--skip-bad-records skips such records, reporting and counting them)")
    except CheckpointError as error:
        raise SystemExit(f"checkpoint: {error}")


def run(args) -> int:
    from unio.train.records import commit
    from unio.train.trainer import Trainer
    started, at = time.time(), commit()   # the checkout the run starts from (it may change while it trains)
    trainer = Trainer(options_from(args))
    last = trainer.train()
    if trainer.rank != 0:
        return 0
    trainer.export()
    train_s = round(time.time() - started)
    print(f"trained {trainer.step} steps (last logged loss {last.get('loss')}) in {train_s} s; run folder {trainer.out}")
    print(f"  of which {trainer.elapsed - trainer.elapsed_before:.0f} s trained (--minutes caps the training time); the rest "
          f"loaded or built the tokenizers and set up data and model")
    if not args.no_eval:
        finish(trainer, trainer.opts.eval_n)
    if trainer.bad.skip:
        print(f"bad records: {trainer.bad.summary()}")
    print(f"total wall time {time.time() - started:.0f} s")
    evaluation = json.loads((trainer.out / "eval.json").read_text()) if not args.no_eval else None
    write_run_record(trainer.out, evaluation, started, train_s=train_s, steps=trainer.step,
                     last_loss=last.get("loss"), run_s=round(time.time() - started), commit=at)
    return 0

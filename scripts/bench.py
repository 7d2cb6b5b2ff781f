"""Benchmarks with peers in the same run; writes JSON.

    python scripts/bench.py --json bench.json            # tiny preset, this machine
    python scripts/bench.py --preset toy --quick --json b.json
    python scripts/bench.py --json new.json --compare old.json   # each figure's change; exit 1 if speed fell >15%

Model training and generation are measured against Hugging Face T5 of the same dimensions on the
same examples (T5 on padded batches, as its users run it; unio on length-bucketed batches with its blocks
compiled, as train_mixture.py trains), both in the precision `--precision` names (auto, the default: bf16
autocast where this machine's bf16 matmuls beat its fp32 ones, as the trainer chooses; else fp32), and
against the machine's measured matmul rate in that precision (the best of three sizes). Generation (greedy,
KV cache, `generate()`) is timed for each model in fp32 and, where training is in bf16, in bf16 autocast,
and for unio also compiled (UnioModel.compile_generation); each model's fastest mode is compared, from
separate timings (`ratio`) and timed in turns (`interleaved`: the median of per-round ratios, which the
machine's drift moves least); training is timed in turns as well (`train.interleaved`).
`--peer-compiled` adds T5 under torch.compile, in training and in generation (static cache, compiled
decoding step). The process, peers included, runs with the allocator settings unio's trainer sets
(`unio.allocator.keep_freed_memory`: freed blocks reused, not page-faulted back in every step); unio.run's
latency is measured in a fresh process without them, as its users call it.
"""
import argparse
import json
import sys

import bench_compare
import benchlib as bench  # scripts/benchlib.py: scripts/ is sys.path[0] when this file runs
import torch
from bench_data import data_worker_cost
from bench_grammar import grammar_cost
from bench_readers import reader_speeds

from unio.allocator import keep_freed_memory
from unio.data.sources import build_source
from unio.model.presets import load_preset, model_from_preset
from unio.train.precision import PRECISIONS, machine_key, resolve
from unio.train.tokenizer_setup import ensure_modalities, load_tokenizer_config


PRECISION_SECTIONS = ("profile", "grammar", "packing", "attention")   # --only sections that train or decode in it


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--batch-size", type=int, default=48)
    p.add_argument("--batches", type=int, default=8, help="training batches timed per model")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for tests")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="training's (and the matmul rate's) "
                   "precision for both models: auto (bf16 autocast where this machine's bf16 matmuls beat fp32, "
                   "measured once per machine, as train_mixture.py chooses), bf16 or fp32")
    p.add_argument("--no-compile", action="store_true", help="measure unio eager (train_mixture.py compiles its blocks)")
    p.add_argument("--peer-compiled", action="store_true", help="also measure T5 under torch.compile (minutes more)")
    p.add_argument("--utilisation-preset", default=None,
                   help="also measure the matmul fraction of this larger preset's training step (random inputs)")
    p.add_argument("--utilisation-batch", type=int, default=8)
    p.add_argument("--no-readers", action="store_true", help="skip the records/s of the dataset readers")
    p.add_argument("--latency-model", default=None, metavar="DIR", help="a trained model (run or model folder): "
                   "unio.run's cold and warm latency per task it knows (caption, vqa, refexp, depth, detection, "
                   "segment, generate) and its batch throughput")
    p.add_argument("--packing", action="store_true", help="also compare training on packed rows (--packing auto) "
                   "and on mixed batches (--buckets 1) decoded whole or in two groups (--sub-batches 2) with length "
                   "bucketing, on the default mixture and on every task the world feeds")
    p.add_argument("--only", choices=("packing", "profile", "grammar", "data", "latency", "moe", "attention"),
                   default=None,
                   help="measure one section alone: packing (as --packing), profile (where the training step's "
                        "time goes, at --preset on the mixture's batches and at --utilisation-preset, default base, "
                        "on random ones; and a generate() call's, unio's and T5's, compiled unless --no-compile), grammar (what each task's output grammar costs a generated token), "
                        "data (what the data worker costs the default command's training step), latency "
                        "(unio.run on --latency-model) or moe (a step of --tasks all with MoE layers, each routing, "
                        "against a dense step) or attention (a decoding step's attention as two matmuls and a softmax "
                        "against SDPA, eager and compiled, in turns)")
    p.add_argument("--json", default=None)
    p.add_argument("--compare", default=None, metavar="OLD.json", help="print each figure's change against an "
                   "earlier report and fail when training or generation speed fell by more than --tolerance")
    p.add_argument("--tolerance", type=float, default=0.15)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    keep_freed_memory()                                                 # as the trainer runs; T5 gets it too
    old = bench_compare.read(args.compare) if args.compare else None    # a bad path fails before minutes of work
    torch.manual_seed(0)
    res = load_preset(args.preset)["image_size"]
    if args.only and args.compare:
        raise SystemExit(f"--only {args.only} measures no training or generation speed to --compare; leave one out")
    # the precision, resolved once (measured once a machine) where the run trains or decodes in it
    resolved = args.only in (None, *PRECISION_SECTIONS)
    args.bf16, args.precision_reason = resolve(args.precision) if resolved else (None, None)
    if args.only:
        section = {"packing": packing_report, "profile": profile_report, "grammar": grammar_report,
                   "data": data_report, "latency": latency_report, "moe": moe_report,
                   "attention": attention_report}[args.only](args, res)
        return write_report({"preset": args.preset, "batch_size": args.batch_size, "machine": machine_key(),
                             **section_precision(args), args.only: section}, args, old)
    bf16, why = args.bf16, args.precision_reason
    precision = "bf16" if bf16 else "fp32"
    config = load_tokenizer_config(steps=20 if args.quick else 400)
    pairs = [(t, "world") for t in bench.TASKS4]
    mods = ensure_modalities(pairs, {"world": build_source("world", None, res)}, res, config, progress=False)
    model = model_from_preset(args.preset, mods.vocab.size)
    cfg = model.config
    patches = (cfg.image_size // cfg.patch_size) ** 2
    report = {"preset": args.preset, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
              "machine": machine_key(), "precision": precision, "precision_reason": why}
    report["world"] = bench.world_speed(*((30, 3) if args.quick else (300, 30)))
    report["tasks"] = bench.task_speed(mods, n=16 if args.quick else 128, resolution=res)
    bucketed, padded, data_s = bench.mixture_batches(mods, cfg, args.batch_size, args.batches)
    report["data_pipeline_examples_per_s"] = len(bucketed) * args.batch_size / data_s
    t5 = bench.T5WithPatches(cfg)
    if not args.no_compile:
        model.compile_blocks()   # as train_mixture.py trains
    unio_train = bench.train_throughput(model, bucketed, patches, bf16, profile=True)
    t5_train = bench.train_throughput(t5, padded, patches, bf16)
    report["model_examples_per_s"] = args.batch_size / unio_train["seconds_per_step"]
    report["train"] = {"unio": unio_train, "t5": t5_train, "unio_compiled": not args.no_compile,
                       "ratio": unio_train["useful_tokens_per_s"] / t5_train["useful_tokens_per_s"]}
    rounds = 3 if args.quick else 7
    # each pair timed in turns too: the ratio a drifting machine moves least
    report["train"]["interleaved"] = {"to_t5": bench.train_ratio_in_turns(model, bucketed, t5, padded, patches, rounds,
                                                                          bf16)}
    if args.peer_compiled:
        t5_compiled_model = torch.compile(bench.T5WithPatches(cfg), dynamic=True)
        t5_compiled = bench.train_throughput(t5_compiled_model, padded, patches, bf16)
        report["train"]["t5_compiled"] = t5_compiled
        report["train"]["ratio_to_t5_compiled"] = unio_train["useful_tokens_per_s"] / t5_compiled["useful_tokens_per_s"]
        report["train"]["interleaved"]["to_t5_compiled"] = bench.train_ratio_in_turns(
            model, bucketed, t5_compiled_model, padded, patches, rounds, bf16)
    # the ratio split into work unio does not do (padding) and the same work done faster
    batch_flops = [bench.step_flops(model, b, bf16) for b in bucketed]
    work = bench.training_work(sum(batch_flops), t5, padded, bf16)
    work.update(bench.unpadded_work(model, bucketed, work, bf16))
    for peer in ("to_t5", "to_t5_compiled"):
        if peer in report["train"]["interleaved"]:
            work[f"flop_rate_ratio_{peer}"] = report["train"]["interleaved"][peer]["ratio"] / work["t5_over_unio"]
    report["train"]["work"] = work
    rates = bench.matmul_rates((256, 384, 512) if args.quick else (1024, 1536, 2048),
                               torch.bfloat16 if bf16 else torch.float32)
    peak = rates["best"]
    flops = sum(batch_flops[:4]) / 4
    report["flops"] = {f"matmul_{precision}_flop_per_s": peak, f"matmul_{precision}_by_size": rates["per_size"],
                       "unio_step_flops": flops, "unio_flop_per_s": flops / unio_train["seconds_per_step"],
                       "fraction_of_matmul_rate": flops / unio_train["seconds_per_step"] / peak,
                       "matmul_time_fraction": unio_train["matmul_time_fraction"]}
    # the rate the matmul kernels themselves reach inside the step: the ceiling were all else free
    report["flops"]["matmul_kernels_fraction_of_rate"] = (report["flops"]["fraction_of_matmul_rate"]
                                                          / unio_train["matmul_time_fraction"])
    # the fraction were the step nothing but its matmuls, each at its standalone rate
    report["flops"]["matmul_ceiling"] = bench.matmul_ceiling(model, bucketed[:4], peak, bf16)
    # the step's time against its matmuls' alone, timed in turns (issue 34's figure; the drift moves it least)
    ceiling = bench.ceiling_in_turns(model, bucketed[:4], rounds=3 if args.quick else 9, bf16=bf16)
    report["flops"]["ceiling_in_turns"] = ceiling
    report["flops"]["fraction_of_matmul_ceiling"] = ceiling["fraction"]     # issue 34's key
    # the training ratio were unio's step all matmuls and its batches free of padding, T5 as it is
    for peer in ("to_t5", "to_t5_compiled"):
        if f"flop_rate_ratio_{peer}" in work:
            work[f"ratio_bound_{peer}"] = (work["t5_over_unio_unpadded"] * work[f"flop_rate_ratio_{peer}"]
                                           / ceiling["fraction"])
    # FLOPs a matmul does in the time memory moves one byte: what elementwise work costs here
    report["flops"]["memory_bytes_per_s"] = bench.memory_rate(32 if args.quick else 256)
    report["flops"]["matmul_flop_per_memory_byte"] = peak / report["flops"]["memory_bytes_per_s"]
    if args.utilisation_preset:
        report["flops"]["preset_utilisation"] = bench.preset_utilisation(args.utilisation_preset,
                                                                         args.utilisation_batch, peak,
                                                                         rounds=3 if args.quick else 5, bf16=bf16)
    if args.packing:
        report["packing"] = packing_report(args, res)
    model.eval()
    t5.eval()
    t5_gen = bench.generation_modes(t5.generate, padded[0], args.new_tokens, bf16=bf16)
    unio_gen = bench.generation_modes(model.generate, padded[0], args.new_tokens,
                                      None if args.no_compile else model.compile_generation, bf16)
    report["generate"] = {"unio": unio_gen, "t5": t5_gen, "unio_tokens_per_s": unio_gen["best"],
                          "t5_tokens_per_s": t5_gen["best"], "ratio": unio_gen["best"] / t5_gen["best"]}
    if not unio_gen["best_mode"].startswith("compiled"):
        model.compile_generation(False)   # generation_modes leaves it compiled
    # each model in its fastest mode, timed in turns: the ratio a drifting machine moves least
    unio_call = bench.mode_call(model.generate, padded[0], args.new_tokens, unio_gen["best_mode"])
    interleaved = {"unio_mode": unio_gen["best_mode"], "t5_mode": t5_gen["best_mode"],
                   "to_t5": bench.interleaved_ratio(unio_call, bench.mode_call(t5.generate, padded[0], args.new_tokens,
                                                                               t5_gen["best_mode"]))}
    report["generate"]["interleaved"] = interleaved
    split = generation_split(args, model, t5, padded[0], unio_gen["best_mode"], t5_gen["best_mode"])
    report["generate"]["split"] = split
    if args.peer_compiled:
        t5_compiled = bench.compiled_generation(t5.generate, padded[0], args.new_tokens,
                                                lambda: bench.compile_t5_generation(t5), bf16)
        report["generate"]["t5_compiled"] = t5_compiled
        report["generate"]["ratio_to_t5_compiled"] = unio_gen["best"] / t5_compiled["tokens_per_s"]
        t5_compiled_call = bench.mode_call(t5.generate, padded[0], args.new_tokens, precision)
        interleaved["to_t5_compiled"] = bench.interleaved_ratio(unio_call, t5_compiled_call)
        # unio's fastest mode and T5 compiled split in the same rounds: their ratios are not the drift's
        unio_best = "unio_" + unio_gen["best_mode"]
        unio_encoder = bench.encoder_call(model.get_encoder(), padded[0], unio_gen["best_mode"])
        t5_encoder = bench.encoder_call(t5.encode, padded[0], precision)
        both = bench.splits_in_turns({unio_best: (unio_encoder, unio_call), "t5_compiled": (t5_encoder, t5_compiled_call)},
                                     args.new_tokens, split["rounds"])
        split["t5_compiled"], best = both["t5_compiled"], both[unio_best]
        split["with_t5_compiled"] = {unio_best: best, **{   # how many times faster unio is, part by part
            f"{part}_ratio": bench.ratio_by_round(split["t5_compiled"]["by_round"][part], best["by_round"][part])
            for part in ("encoder", "decoding_per_token", "call")}}
        split["decoding_ratio_to_t5_compiled"] = split["with_t5_compiled"]["decoding_per_token_ratio"]["ratio"]
        # the ratio were unio's decoding free: T5's whole call against unio's encoder pass alone
        split["bound_to_t5_compiled_were_decoding_free"] = (split["t5_compiled"]["call_seconds"]
                                                            / best["encoder_seconds"])
    model.compile_generation(False)   # unio.run below as its users run it by default
    report["grammar"] = grammar_cost(model, padded[0], mods, res, args.new_tokens, repeat=3 if args.quick else 5,
                                     bf16=bf16)
    from unio.infer.runner import Runner
    report["run"] = bench.run_batch_vs_loop(Runner(model, mods), n=4 if args.quick else 16)
    if not args.no_readers:   # each official-format reader on world scenes written at 640 px (bench_readers.py)
        report["readers"] = reader_speeds(*((64, 2, 64, 0.2) if args.quick else (640, 20, 256, 3.0)), log=lambda line: None)
    report["memory"] = bench.loaded_model_memory(("toy",) if args.quick else ("toy", "tiny", "small", "base"),
                                                 mods.vocab.size)
    if args.latency_model:
        report["latency"] = latency_report(args, res)
    report["peak_rss_mb"] = bench.peak_rss_mb()
    return write_report(report, args, old)


def generation_split(args, model, t5, batch, unio_best: str, t5_best: str) -> dict:
    """Each model's generate() split into its encoder pass and the rest, per new token (encoder_and_decoding):
    unio eager in fp32 and in its fastest mode, T5 in its fastest; where unio's fastest is compiled, it is left
    compiled, as it was found."""
    rounds = 3 if args.quick else 7
    split: dict = {"rounds": rounds}
    unio_modes = ["fp32"] if unio_best == "fp32" else ["fp32", unio_best]
    for mode in unio_modes:
        model.compile_generation(mode.startswith("compiled"))
        split[f"unio_{mode}"] = bench.encoder_and_decoding(
            bench.encoder_call(model.get_encoder(), batch, mode),
            bench.mode_call(model.generate, batch, args.new_tokens, mode), args.new_tokens, rounds)
    split["t5_" + t5_best] = bench.encoder_and_decoding(bench.encoder_call(t5.encode, batch, t5_best),
                                                        bench.mode_call(t5.generate, batch, args.new_tokens, t5_best),
                                                        args.new_tokens, rounds)
    return split


def write_report(report: dict, args, old) -> int:
    report["unclean_timings"] = bench.unclean_timings(report)   # empty: every timed figure measured cleanly
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as file:
            file.write(text)
    return 0 if old is None else bench_compare.report_and_verdict(old, report, args.tolerance)


def section_precision(args) -> dict:
    """The precision a section trains and decodes in, and why (only where --only names one that does)."""
    if args.only not in PRECISION_SECTIONS:
        return {}
    return {"precision": "bf16" if args.bf16 else "fp32", "precision_reason": args.precision_reason}


def profile_report(args, res: int) -> dict:
    """bench.profiled_step at --preset on the default mixture's bucketed batches and at the utilisation
    preset (base unless named) on random ones of --utilisation-batch, both compiled as training runs."""
    config = load_tokenizer_config(steps=20 if args.quick else 400)
    pairs = [(t, "world") for t in bench.TASKS4]
    mods = ensure_modalities(pairs, {"world": build_source("world", None, res)}, res, config, progress=False)
    out = {}
    for preset in (args.preset, args.utilisation_preset or "base"):
        model = model_from_preset(preset, mods.vocab.size)
        if preset == args.preset:
            batches = bench.mixture_batches(mods, model.config, args.batch_size, 4)[0]
        else:
            batches = [bench.random_batch(model.config, args.utilisation_batch, vocab=mods.vocab.size)]
        if not args.no_compile:
            model.compile_blocks()
        out[preset] = {"batch": len(batches[0]["labels"]), "parts": bench.profiled_step(model, batches,
                                                                                     args.bf16)}
    out["generate"] = generation_profile(args, mods)
    return out


def generation_profile(args, mods) -> dict:
    """bench.profiled_generation of unio and of T5 at --preset on the default mixture's first padded batch, each
    compiled for decoding as the bench's generation compiles it (unless --no-compile)."""
    model = model_from_preset(args.preset, mods.vocab.size).eval()
    batch = bench.mixture_batches(mods, model.config, args.batch_size, 1)[1][0]
    t5 = bench.T5WithPatches(model.config).eval()
    compiled = not args.no_compile
    mode = ("compiled_" if compiled else "") + ("bf16" if args.bf16 else "fp32")
    return {"unio": bench.profiled_generation(model.generate, batch, args.new_tokens,
                                              model.compile_generation if compiled else None, mode),
            "t5": bench.profiled_generation(t5.generate, batch, args.new_tokens,
                                            (lambda: bench.compile_t5_generation(t5)) if compiled else None, mode)}


def grammar_report(args, res: int) -> dict:
    """bench_grammar.grammar_cost on the first padded batch of the default mixture, eager, in bf16 autocast
    (or fp32: --precision)."""
    config = load_tokenizer_config(steps=20 if args.quick else 400)
    mods = ensure_modalities([(t, "world") for t in bench.TASKS4], {"world": build_source("world", None, res)}, res,
                             config, progress=False)
    model = model_from_preset(args.preset, mods.vocab.size).eval()
    padded = bench.mixture_batches(mods, model.config, args.batch_size, 4)[1]
    return grammar_cost(model, padded[0], mods, res, args.new_tokens, repeat=3 if args.quick else 5,
                        bf16=args.bf16)


def attention_report(args, res: int) -> dict:
    """bench_attention.attention_arms at --preset on the first padded batch of the default mixture."""
    from bench_attention import attention_arms
    config = load_tokenizer_config(steps=20 if args.quick else 400)
    mods = ensure_modalities([(t, "world") for t in bench.TASKS4], {"world": build_source("world", None, res)}, res,
                             config, progress=False)
    model = model_from_preset(args.preset, mods.vocab.size).eval()
    padded = bench.mixture_batches(mods, model.config, args.batch_size, 2)[1]
    return attention_arms(model, padded[0], args.new_tokens, args.bf16, rounds=3 if args.quick else 9)


def latency_report(args, res: int) -> dict:
    """bench.latency on --latency-model, in a fresh process: unio.run as its users call it, without the
    allocator settings this process trains with (they slow single calls by ~10%; experiments.md, session 35)."""
    if not args.latency_model:
        raise SystemExit("--only latency measures unio.run on a trained model: give --latency-model DIR")
    return bench.latency_in_fresh_process(args.latency_model, n=4 if args.quick else 20, batch=4 if args.quick else 16)


def data_report(args, res: int) -> dict:
    """bench_data.data_worker_cost: the default command's step at --preset and --batch-size, fed by its data
    worker against fed by batches built beforehand, in turns."""
    if args.quick:
        return data_worker_cost(args.preset, args.batch_size, steps=4, rounds=3, vq_steps=20, compile=not args.no_compile)
    return data_worker_cost(args.preset, args.batch_size, compile=not args.no_compile)


def moe_report(args, res: int) -> dict:
    """bench_moe.moe_step_cost: --tasks all's step at --preset and --batch-size with MoE layers (token choice;
    attribute routing, its experts dispatched densely and each on its own tokens) against dense, in turns
    (quick: three tasks, a few steps)."""
    from bench_moe import moe_step_cost
    if args.quick:
        return moe_step_cost("vqa,refexp,depth", args.preset, args.batch_size, steps=2, rounds=2, start=40,
                             expert_d_ff=32, vq_steps=20, compile=not args.no_compile)
    return moe_step_cost("all", args.preset, args.batch_size, compile=not args.no_compile)


def packing_report(args, res: int) -> dict:
    """bench.packing_comparison on the default mixture and on every task the world feeds, with the
    tokenizers `train_mixture.py --tasks all` trains (and caches)."""
    from unio.task_set import TaskSet
    from unio.train.builders import feedable
    source = build_source("world", None, res)
    every = feedable(TaskSet({}), source, res)
    config = load_tokenizer_config(steps=20 if args.quick else None)   # the training runs' cache for `all`
    mods = ensure_modalities([(t, "world") for t in every], {"world": source}, res, config, progress=False)
    trained = model_from_preset(args.preset, mods.vocab.size)
    if not args.no_compile:
        trained.compile_blocks()
    return bench.packing_comparison(trained, {"default": bench.TASKS4, "all": every}, mods, args.batch_size,
                                    args.batches, args.bf16, rounds=3 if args.quick else 9)


if __name__ == "__main__":
    sys.exit(main())

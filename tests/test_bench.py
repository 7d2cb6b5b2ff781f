"""The bench's measuring tools: the matmul-only ceiling replays exactly the step's matmuls."""
import importlib.util
import os
import sys
from collections import Counter

import pytest
import torch
from conftest import ROOT, load_script

from unio.data.batching import BUCKETS
from unio.model.presets import model_from_preset


def _load_script_module(name: str):
    """scripts/NAME.py by path: putting scripts/ on sys.path would shadow packages (`evaluate`)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def _load_benchlib():
    return _load_script_module("benchlib")


bench = _load_benchlib()


def toy_batch(cfg, batch_size=4):
    torch.manual_seed(0)
    return {"pixel_values": torch.rand(batch_size, 3, cfg.image_size, cfg.image_size),
            "input_ids": torch.randint(3, 100, (batch_size, 6)),
            "attention_mask": torch.ones(batch_size, 6, dtype=torch.long),
            "labels": torch.randint(3, 100, (batch_size, 5))}


def test_recorded_matmuls_are_every_flop_of_the_step():
    model = model_from_preset("toy", 128)
    batch = toy_batch(model.config)
    calls = bench.recorded_matmuls(model, batch, bf16=True)
    recorded = sum(n * bench.matmul_flops(f"aten::{op}", [s for s, _, _ in ops]) for (op, ops), n in calls.items())
    assert recorded == bench.step_flops(model, batch)
    # the linear layers' products run in bf16 (attention's, in SDPA's math form, upcast to fp32)
    assert all(dtype == torch.bfloat16 for (op, ops) in calls if op == "mm" for _, _, dtype in ops)


def test_weight_gradients_are_recorded_in_their_transposed_layout():
    model = model_from_preset("toy", 128)
    cfg = model.config
    calls = bench.recorded_matmuls(model, toy_batch(cfg), bf16=True)
    qkv = model.encoder.layers[0].self_attn.qkv.weight.shape           # (3D, D): its gradient is dY^T X
    grads = [ops for (op, ops) in calls if op == "mm" and (ops[0][0][0], ops[1][0][1]) == tuple(qkv)]
    assert grads and any(ops[0][1] != torch.empty(ops[0][0]).stride() for ops in grads)
    size, stride, dtype = grads[0][0]
    replayed = bench.strided_randn(size, stride, dtype)
    assert tuple(replayed.shape) == size and replayed.stride() == stride


def test_matmul_ceiling_reports_a_rate():
    model = model_from_preset("toy", 128)
    peak = bench.matmul_rates((256,))["best"]
    out = bench.matmul_ceiling(model, [toy_batch(model.config)], peak)
    assert out["matmul_calls"] > 0 and out["calls_with_a_non_contiguous_operand"] > 0
    assert out["matmul_only_flop_per_s"] > 0 and out["ceiling_fraction_of_matmul_rate"] > 0


def test_the_matmul_pass_runs_exactly_the_steps_matmuls_and_the_ceiling_is_timed_in_turns():
    """ceiling_in_turns' second side does each recorded matmul its number of times in its layout and nothing
    more; the fraction is the median of the rounds' matmul-only / step times, below 1 (a part of the step)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    model = model_from_preset("toy", 128)
    batches = [toy_batch(model.config), toy_batch(model.config, batch_size=2)]
    step_calls = sum((bench.recorded_matmuls(model, b, True) for b in batches), Counter())
    replayed = Counter()

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in (torch.ops.aten.mm.default, torch.ops.aten.bmm.default):
                replayed[func.__name__.split(".")[0], tuple((tuple(t.shape), t.stride(), t.dtype) for t in args[:2])] += 1
            return func(*args, **(kwargs or {}))
    matmuls = bench.matmul_pass(model, batches)
    with Recorder():
        matmuls()
    assert replayed == step_calls
    out = bench.ceiling_in_turns(model, batches, rounds=3)
    assert len(out["fractions"]) == 3 and 0 < out["fraction"] < 1
    assert out["fraction"] == sorted(out["fractions"])[1]


def test_a_model_against_itself_on_three_times_the_batches_trains_at_its_own_tokens_per_s():
    """train_ratio_in_turns, one model both sides, the peer's pass three times as long: its time and its tokens
    scale alike, so about 1 (a missing token scale would give ~3, a ratio the wrong way up ~1/3)."""
    model = model_from_preset("toy", 128)
    batches = [toy_batch(model.config)] * 2
    out = bench.train_ratio_in_turns(model, batches, model, batches * 3, patches=4, rounds=5)
    assert len(out["ratios"]) == 5 and 0.6 < out["ratio"] < 1.6


def test_timing_waits_out_compilation_and_says_when_it_could_not():
    """A function that compiles on its first calls is timed only after it stops; one that compiles
    during the timed calls is reported as not measured cleanly. (Dynamo's eager backend: the same frames
    compiled and counted, without minutes of C++ code generation.)"""
    compiled = torch.compile(lambda x: (x.sin() + 1).sum(), backend="eager")
    shapes = iter([3, 4, 5] + [6] * 100)
    timing = bench.stable_timing(lambda: compiled(torch.randn(next(shapes))), repeat=3)
    assert timing["compiled_while_timed"] == 0 and len(timing["warmup_seconds"]) >= 2
    fresh = iter(range(7, 100))
    recompiling = torch.compile(lambda x: x.cos().sum(), dynamic=False, backend="eager")
    bad = bench.stable_timing(lambda: recompiling(torch.randn(next(fresh))), repeat=3, max_warmup=2)
    assert not bad["clean"] and "compilations during the timed calls" in bad["note"]
    assert bench.unclean_timings({"train": {"unio": {"timing": bad}}}) == {"train.unio.timing": bad["note"]}


def _report(train=1000.0, generate=100.0, train_ratio=2.0, generate_ratio=1.5, machine="A"):
    return {"machine": machine, "threads": 2, "train": {"unio": {"useful_tokens_per_s": train}, "ratio": train_ratio},
            "generate": {"unio_tokens_per_s": generate, "ratio": generate_ratio, "unio": {"best": generate}},
            "unio_compiled": True}


def test_an_interleaved_ratio_reads_the_speeds_in_turns():
    import time
    calls = []
    fast = lambda: (calls.append("fast"), time.sleep(0.002))   # noqa: E731
    slow = lambda: (calls.append("slow"), time.sleep(0.006))   # noqa: E731
    out = bench.interleaved_ratio(fast, slow, rounds=4)
    assert 2 < out["ratio"] < 4 and len(out["ratios"]) == 4 and out["spread"] >= 0
    timed = calls[-8:]
    assert timed == ["fast", "slow", "slow", "fast"] * 2   # the order alternates round by round


def test_two_models_splits_are_timed_in_the_same_rounds_and_compared_round_by_round():
    import time
    calls = []
    def work(name, seconds):
        return lambda: (calls.append(name), time.sleep(seconds))
    # each "generate() call" is its encoder pass plus 4 new tokens: unio 2 + 4 x 2 ms, the peer 4 + 4 x 6 ms
    # (sleeps of milliseconds, so that a loaded machine's oversleeping moves the ratio little)
    out = bench.splits_in_turns({"unio": (work("ue", 0.002), work("uc", 0.010)),
                                 "peer": (work("pe", 0.004), work("pc", 0.028))}, new_tokens=4, rounds=4)
    assert calls[-16:] == ["ue", "uc", "pe", "pc", "pc", "pe", "uc", "ue"] * 2   # every pass each round, order reversed
    for name, row in out.items():
        assert len(row["by_round"]["decoding_per_token"]) == 4 and row["decoding_seconds_per_token"] == pytest.approx(
            (row["call_seconds"] - row["encoder_seconds"]) / 4)
    decoding = bench.ratio_by_round(out["peer"]["by_round"]["decoding_per_token"], out["unio"]["by_round"]["decoding_per_token"])
    assert 2 < decoding["ratio"] < 4.5 and len(decoding["ratios"]) == 4 and decoding["spread"] >= 0
    assert bench.ratio_by_round([3.0, 8.0, 2.0], [1.0, 2.0, 2.0])["ratio"] == 3.0   # the median of 3, 4 and 1


def test_the_guard_fails_when_speed_falls_more_than_allowed():
    compare = load_script("bench_compare").compare
    lines, failures = compare(_report(), _report(train=900.0))            # -10%: within 15%
    assert not failures and "train.unio.useful_tokens_per_s: 1000 -> 900 (-10.0%)" in lines
    assert "unio_compiled" not in "".join(lines)                            # booleans are not figures
    _, failures = compare(_report(), _report(generate=80.0))               # -20%
    assert failures == ["generate.unio_tokens_per_s fell 20.0% (100 -> 80), more than the 15% allowed"]
    _, failures = compare(_report(), _report(train=2000.0, generate=200.0))
    assert not failures


def test_across_machines_the_guard_reads_the_ratios_to_the_peer():
    compare = load_script("bench_compare").compare
    # a machine half as fast, the code as fast as before against T5: passes
    assert not compare(_report(), _report(train=500.0, generate=50.0, machine="B"))[1]
    _, failures = compare(_report(), _report(train_ratio=1.5, machine="B"))
    assert failures == ["train.ratio fell 25.0% (2 -> 1.5), more than the 15% allowed"]
    old = _report()
    del old["train"]["ratio"]
    assert compare(old, _report(machine="B"))[1] == ["train.ratio is missing from the old report"]


def test_reports_of_two_precisions_are_compared_with_a_note():
    import io
    verdict = load_script("bench_compare").report_and_verdict
    fp32 = {**_report(machine="B"), "precision": "fp32"}
    for old, new, noted in ((_report(), fp32, True), (fp32, fp32, False), (_report(), _report(), False)):
        out = io.StringIO()
        verdict(old, new, out=out)
        assert ("the old report trained in bf16, the new one in fp32" in out.getvalue()) == noted, out.getvalue()


def _in_turns(part: str, ratio: float, **figures) -> dict:
    """_report with `part`'s (train or generate) ratio to T5 timed in turns."""
    report = _report(**figures)
    report[part]["interleaved"] = {"to_t5": {"ratio": ratio}}
    return report


@pytest.mark.parametrize("part, drifted, fell", [
    ("generate", {"generate": 70.0}, "generate.unio_tokens_per_s fell 30.0%"),
    ("train", {"train": 700.0}, "train.unio.useful_tokens_per_s fell 30.0%")])
def test_a_ratio_timed_in_turns_is_guarded_where_both_reports_have_it(part, drifted, fell):
    compare = load_script("bench_compare").compare
    # the separate timings drifted 30% on one machine, the ratio timed in turns held: passes
    assert not compare(_in_turns(part, 1.8), _in_turns(part, 1.75, **drifted))[1]
    _, failures = compare(_in_turns(part, 1.8), _in_turns(part, 1.4, machine="B"))
    assert failures == [f"{part}.interleaved.to_t5.ratio fell 22.2% (1.8 -> 1.4), more than the 15% allowed"]
    # an old report without it: the separate timings are guarded, as before
    assert compare(_report(), _in_turns(part, 1.8, **drifted))[1][0].startswith(fell)


def test_a_missing_old_report_is_named(tmp_path):
    import pytest
    with pytest.raises(SystemExit, match="no bench report at .*missing.json"):
        load_script("bench_compare").read(str(tmp_path / "missing.json"))


def test_latency_per_task_cold_and_warm(tiny_model_path, tmp_path):
    """unio.run's latency on a saved model: every task of the list answered, cold and warm figures; a
    model that records its trained tasks is timed on those alone."""
    import shutil

    from unio.model import UnioConfig
    bench = _load_benchlib()
    found = bench.latency(str(tiny_model_path), n=2, batch=2)
    assert list(found["tasks"]) == bench.LATENCY_TASKS and not found["not_trained"]
    for figures in found["tasks"].values():
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] and figures["cold_ms"] > 0
        assert figures["batch_answers_per_s"] > 0
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_path, copy)
    config = UnioConfig.from_pretrained(copy)
    config.trained_tasks = ["vqa", "depth"]
    config.save_pretrained(copy)
    found = bench.latency(str(copy), n=2, batch=2)
    assert list(found["tasks"]) == ["vqa", "depth"]
    assert found["not_trained"] == [t for t in bench.LATENCY_TASKS if t not in ("vqa", "depth")]


def test_loaded_model_memory_grows_with_the_preset():
    ballast = torch.ones(192 * 2 ** 20)   # 768 MB in this process: a child must not report this process's peak
    found = _load_benchlib().loaded_model_memory(("toy", "tiny"), vocab_size=512)
    del ballast
    assert 0 < found["import_only_mb"] < bench.peak_rss_mb() - 600
    assert 0 < found["toy"]["parameters"] < found["tiny"]["parameters"]
    assert found["tiny"]["peak_rss_mb"] >= found["toy"]["peak_rss_mb"] - 20


def test_the_step_profile_parts_add_up_to_the_step(modalities, tiny_config):
    from unio.model import UnioModel
    torch.manual_seed(0)
    model = UnioModel(tiny_config)
    batches = [bench.random_batch(tiny_config, 4, vocab=tiny_config.vocab_size)]
    parts = bench.profiled_step(model, batches, bf16=False)
    assert abs(sum(p["share"] for p in parts.values()) - 1) < 1e-6
    assert parts["matmuls"]["share"] > 0.05 and parts["optimizer"]["ms_per_step"] > 0
    assert parts["attention"]["share"] > 0 and parts["loss over the vocabulary"]["share"] > 0


def test_the_generation_profile_parts_add_up_to_the_call(modalities, tiny_config):
    """bench.profiled_generation (eager here; `bench.py --only profile` compiles): one greedy call's time by part."""
    from unio.model import UnioModel
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    batch = bench.random_batch(tiny_config, 4, vocab=tiny_config.vocab_size)
    found = bench.profiled_generation(model.generate, batch, 3)
    parts = found["parts"]
    assert abs(sum(p["share"] for p in parts.values()) - 1) < 1e-6
    assert found["call_ms"] == pytest.approx(sum(p["ms_per_step"] for p in parts.values()))
    assert parts["matmuls"]["share"] > 0.05 and parts["attention"]["share"] > 0
    assert (found["mode"], found["new_tokens"], found["rows"]) == ("fp32", 3, 4)
    assert found["largest_ops"]["aten::mm"]["calls_per_step"] >= 3 and len(found["largest_ops"]) == 12


def test_the_packing_comparison_lays_out_the_same_examples_both_ways(modalities, tiny_config):
    from unio.data.packing import Packing
    patches = (tiny_config.image_size // tiny_config.patch_size) ** 2
    bucketed = bench.layout_batches(bench.TASKS4, modalities, tiny_config, 8, BUCKETS, None)
    packed = bench.layout_batches(bench.TASKS4, modalities, tiny_config, 8, BUCKETS, Packing.parse("auto", tiny_config))
    tokens = lambda batches: sum(bench.useful_tokens(b) for b in batches)   # noqa: E731
    assert tokens(bucketed) == tokens(packed)
    use = bench.slot_use(packed, patches)
    assert use["rows_per_batch"] < 8 and 0 < use["encoder_slots_used"] <= 1 and 0 < use["decoder_slots_used"] <= 1
    with pytest.raises(ValueError, match="not whole megabatches"):
        bench.layout_batches(bench.TASKS4, modalities, tiny_config, 8, BUCKETS // 2, None)
    mixed = bench.mixed_batches(bench.TASKS4, modalities, tiny_config, 8, BUCKETS)
    grouped = bench.mixed_batches(bench.TASKS4, modalities, tiny_config, 8, BUCKETS, groups=2)
    assert tokens(mixed) == tokens(grouped) == tokens(bucketed)
    pixels = lambda batches: sorted(float(x) for b in batches for x in b["pixel_values"].flatten(1).sum(1))  # noqa: E731
    assert pixels(mixed) == pixels(bucketed)
    assert bench.slot_use(grouped, patches)["decoder_slots_used"] > bench.slot_use(mixed, patches)["decoder_slots_used"]


def test_the_packing_comparison_reports_each_layouts_padding_and_three_groups_in_turns(modalities, tiny_config):
    model = model_from_preset("toy", tiny_config.vocab_size)
    row = bench.packing_comparison(model, {"default": bench.TASKS4}, modalities, 8, BUCKETS, bf16=False, rounds=2)["default"]
    share = {layout: row[layout]["padding_share"] for layout in ("bucketed", "packed", "mixed", "mixed_grouped", "mixed_grouped3")}
    assert all(0 <= s < 1 for s in share.values()), share
    # mixed batches pad every target to the batch's longest; each cut into groups pads less
    assert share["mixed"] > share["mixed_grouped"] >= share["mixed_grouped3"], share
    assert row["grouped3_over_grouped2_in_turns"]["ratio"] > 0 and len(row["grouped3_over_grouped2_in_turns"]["ratios"]) == 2


def test_the_peer_trains_on_the_bucketed_batches_examples_shuffled_and_padded(modalities, tiny_config):
    bucketed, padded, _ = bench.mixture_batches(modalities, tiny_config, 8, 3)   # part of a megabatch
    assert len(padded) == 3 and sum(bench.useful_tokens(b) for b in bucketed) == sum(bench.useful_tokens(b) for b in padded)
    pixels = lambda batches: sorted(float(x) for b in batches for x in b["pixel_values"].flatten(1).sum(1))  # noqa: E731
    assert pixels(bucketed) == pixels(padded)


def test_rows_alone_are_the_same_examples_without_padding_and_do_less_work(modalities, tiny_config):
    bucketed, _, _ = bench.mixture_batches(modalities, tiny_config, 8, 2)
    alone = bench.rows_alone(bucketed)
    assert len(alone) == 16 and sum(map(bench.useful_tokens, alone)) == sum(map(bench.useful_tokens, bucketed))
    assert all(bool(r["attention_mask"].all()) and int(r["labels"][0, -1]) != -100 for r in alone)
    assert torch.equal(alone[9]["pixel_values"][0], bucketed[1]["pixel_values"][1])
    model = model_from_preset("toy", tiny_config.vocab_size)
    work = {"unio_pass_flops": sum(bench.step_flops(model, b, False) for b in bucketed), "t5_pass_flops": 1.0}
    unpadded = bench.unpadded_work(model, bucketed, work, bf16=False)
    assert 0 < unpadded["unio_padding_share"] < 0.5   # the world's targets differ in length inside a batch
    # a row that is already alone has nothing to cut: the same FLOPs
    one = bench.rows_alone(alone[:1])
    assert bench.step_flops(model, one[0], False) == bench.step_flops(model, alone[0], False)
    shifted = {**alone[0], "attention_mask": torch.cat([torch.zeros(1, 1, dtype=torch.long), alone[0]["attention_mask"]], 1),
               "input_ids": torch.cat([alone[0]["input_ids"][:, :1], alone[0]["input_ids"]], 1)}
    with pytest.raises(ValueError, match="not left-aligned"):
        bench.rows_alone([shifted])


def test_grammar_cost_times_each_grammar_inside_its_processor(modalities, tiny_config):
    from unio.model import UnioModel
    from unio.registries import TASKS
    from unio.vocab import EOS
    bench_grammar = _load_script_module("bench_grammar")   # after benchlib, which it imports
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    batch = toy_batch(tiny_config, batch_size=3)
    out = bench_grammar.grammar_cost(model, batch, modalities, tiny_config.image_size, new_tokens=6,
                                     tasks=["vqa", "refexp", "detection"], repeat=1)
    assert out["vqa"]["kind"] == "table" and out["refexp"]["kind"] == "automaton" and out["detection"]["kind"] == "automaton"
    assert out["refexp"]["steps"] == 4 and out["vqa"]["steps"] == out["detection"]["steps"] == 6   # a box, then EOS
    for task in ("vqa", "refexp", "detection"):
        assert out[task]["processor_ms_per_step"] > 0 and 0 < out[task]["processor_share"] < 1
        assert out[task]["plain_tokens_per_s"] > 0 and out[task]["constrained_tokens_per_s"] > 0
    # the timed call decodes under the grammar: a fresh processor each call, every step through it
    grammar = TASKS.get("refexp").grammar(modalities, tiny_config.image_size)
    clock = {"seconds": 0.0, "calls": 0}
    call = bench_grammar.grammar_call(model, batch, 4, lambda: grammar.processor(modalities.vocab, 41), clock)
    ids = call()[:, 1:]
    call()
    assert clock["calls"] == 8
    assert all(grammar.accepts(row.tolist() + [EOS], modalities.vocab) for row in ids)

"""Every script end to end at toy size."""
import importlib.util
import json
import os
import runpy

import pytest
from conftest import ROOT, run_script, run_script_here
from PIL import Image


def test_evaluate_baselines(tmp_path, modalities):
    modalities.save(tmp_path / "tok")
    out = tmp_path / "b.json"
    proc = run_script_here("scripts/evaluate.py", "--baseline", "all", "--tasks", "vqa,caption,refexp,depth", "--n", "20",
                      "--resolution", "32", "--tokenizers", str(tmp_path / "tok"), "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert set(results["vqa"]) == {"majority"} and set(results["refexp"]) == {"centre_box", "mean_box"}
    assert set(results["depth"]) == {"mean_depth", "vq_ceiling"} and "cider" in results["caption"]["most_frequent"]
    assert 0 < results["vqa"]["majority"]["accuracy"] < 1


def test_evaluate_rejects_unknown_baseline(tmp_path, modalities):
    """evaluate.py's main() in this process (the tests around it run the script as a command)."""
    from unio.train.eval_cli import main
    modalities.save(tmp_path / "tok")
    with pytest.raises(SystemExit, match="unknown baseline 'oracle'"):
        main(["--baseline", "oracle", "--tasks", "vqa", "--resolution", "32", "--tokenizers", str(tmp_path / "tok")])


def test_evaluate_on_perturbed_images(tmp_path, tiny_model_path):
    """--perturb: each task's metrics on clean and perturbed copies of the same test images."""
    from unio.train.eval_cli import main
    out = tmp_path / "p.json"
    proc = run_script_here("scripts/evaluate.py", "--model", str(tiny_model_path), "--tasks", "vqa,refexp", "--n", "4",
                      "--perturb", "clean,darker,jpeg", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"clean", "darker", "jpeg"} and set(results["darker"]) == {"vqa", "refexp"}
    with pytest.raises(SystemExit, match="unknown perturbation 'blurry'"):
        main(["--model", str(tiny_model_path), "--tasks", "vqa", "--perturb", "blurry"])


def test_train_text_tokenizer(tmp_path):
    proc = run_script_here("scripts/train_text_tokenizer.py", "--out", str(tmp_path), "--scenes", "50",
                      "--vocab-size", "300", "--resolution", "32")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "spiece.model").is_file()


def test_train_vq_reports_psnr(tmp_path):
    proc = run_script_here("scripts/train_vq.py", "--out", str(tmp_path), "--steps", "30", "--batch-size", "8",
                      "--resolution", "32", "--holdout", "16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["heldout_psnr_db"] > 10 and (tmp_path / "model.safetensors").is_file()


def test_make_world(tmp_path):
    proc = run_script_here("scripts/make_world.py", "--out", str(tmp_path), "--n", "3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert Image.open(tmp_path / "test_00002.png").size == (64, 64)
    assert len(json.loads((tmp_path / "scenes.json").read_text())) == 3


def test_bench_quick(tmp_path, toy_cache):
    out = tmp_path / "bench.json"
    # training eager: compiling it would add 20 s (the compiled step is test_model's and test_training's;
    # timing that waits out compilation, test_bench's)
    proc = run_script("scripts/bench.py", "--preset", "toy", "--quick", "--batch-size", "8", "--batches", "4",
                      "--new-tokens", "4", "--no-compile", "--json", str(out), env={"UNIO_CACHE": toy_cache})
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    for key in ("world", "tasks", "train", "flops", "generate", "run", "data_pipeline_examples_per_s"):
        assert key in report
    assert report["train"]["ratio"] > 0 and report["generate"]["ratio"] > 0
    assert len(report["train"]["interleaved"]["to_t5"]["ratios"]) == 3 and report["train"]["interleaved"]["to_t5"]["ratio"] > 0
    assert report["generate"]["interleaved"]["to_t5"]["ratio"] > 0 and report["generate"]["interleaved"]["t5_mode"]
    work = report["train"]["work"]   # same examples: T5's padded batches do more FLOPs; ratio = work x rate
    assert work["t5_over_unio"] > 1 and work["flop_rate_ratio_to_t5"] == pytest.approx(
        report["train"]["interleaved"]["to_t5"]["ratio"] / work["t5_over_unio"])
    # without its padding unio would do less still; the bound adds a step of nothing but matmuls
    assert 0 <= work["unio_padding_share"] < 1 and work["t5_over_unio_unpadded"] >= work["t5_over_unio"]
    assert work["ratio_bound_to_t5"] == pytest.approx(work["t5_over_unio_unpadded"] * work["flop_rate_ratio_to_t5"]
                                                      / report["flops"]["fraction_of_matmul_ceiling"])
    # each model's generate() split into its encoder pass and the rest, per new token
    split = report["generate"]["split"]
    for name in ("unio_fp32", "t5_" + report["generate"]["t5"]["best_mode"]):
        assert split[name]["encoder_seconds"] > 0 and split[name]["call_seconds"] > 0, split
        assert split[name]["decoding_seconds_per_token"] == pytest.approx(
            (split[name]["call_seconds"] - split[name]["encoder_seconds"]) / 4)
    assert report["grammar"]["detection"]["kind"] == "automaton" and report["grammar"]["vqa"]["processor_ms_per_step"] > 0
    assert 0 < report["memory"]["import_only_mb"] < report["memory"]["toy"]["peak_rss_mb"], (report["memory"], report["peak_rss_mb"])
    # both models train in the precision this machine's probe picks (--precision auto); bf16 generation only with it
    precision = report["precision"]
    assert precision in ("bf16", "fp32") and report["precision_reason"].startswith("auto")
    assert report["flops"][f"matmul_{precision}_flop_per_s"] > 0
    assert report["train"]["unio_compiled"] is False and report["generate"]["unio"]["fp32_tokens_per_s"] > 0
    assert ("bf16_tokens_per_s" in report["generate"]["unio"]) == (precision == "bf16")
    assert 0 < report["flops"]["matmul_time_fraction"] < 1
    assert report["flops"]["matmul_ceiling"]["ceiling_fraction_of_matmul_rate"] > 0
    assert 0 < report["flops"]["fraction_of_matmul_ceiling"] < 1.5 and len(report["flops"]["ceiling_in_turns"]["fractions"]) == 3
    assert report["flops"]["memory_bytes_per_s"] > 0
    timing = report["train"]["unio"]["timing"]
    assert timing["repeats"] >= 3 and "spread" in timing
    assert isinstance(report["unclean_timings"], dict)
    assert all(report["readers"][kind]["records_per_s"] > 0 for kind in ("coco", "vqav2", "refcoco", "nyu"))
    # the guard, end to end: a report from a slower past passes; each figure's change is printed
    slower = json.loads(out.read_text())
    slower["train"]["unio"]["useful_tokens_per_s"] /= 2
    (tmp_path / "old.json").write_text(json.dumps(slower))
    proc = run_script_here("scripts/bench_compare.py", str(tmp_path / "old.json"), str(out))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "train.unio.useful_tokens_per_s: " in proc.stdout and "(+100.0%)" in proc.stdout
    assert "guard (same machine: tokens/s; train: the ratio timed in turns; generate: the ratio timed in turns)" in proc.stdout


def test_bench_latency_runs_in_a_fresh_process_and_needs_a_model(tmp_path, tiny_model_path):
    """`bench.py --only latency`: unio.run's latency per task, measured in a child process (without the
    allocator settings the bench's own process trains with); without --latency-model, a clear error."""
    out = tmp_path / "latency.json"
    proc = run_script_here("scripts/bench.py", "--only", "latency", "--quick", "--latency-model", str(tiny_model_path),
                           "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    latency = json.loads(out.read_text())["latency"]
    assert latency["tasks"]["vqa"]["p50_ms"] > 0 and latency["tasks"]["caption"]["batch_answers_per_s"] > 0
    proc = run_script_here("scripts/bench.py", "--only", "latency", "--quick")
    assert proc.returncode != 0 and "give --latency-model DIR" in proc.stderr


@pytest.mark.slow      # 2.5 minutes on 2 cores: run with `pytest -m slow` before changing scripts/gpu_check.sh
@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed not installed")
def test_gpu_check_on_the_cpu(tmp_path):
    """The prepared GPU check, shrunk to a CPU smoke test: every step runs and leaves its results."""
    import subprocess
    env = {**os.environ, "OUT": str(tmp_path / "out"), "WORK": str(tmp_path / "work"), "DEVICE": "cpu",
           "PRESETS": "toy:2", "TRAIN_PRESET": "toy", "BATCH": "4", "STEPS": "2", "VQ_STEPS": "10", "MINUTES": "1",
           "WHEELS": str(tmp_path / "no_wheels")}
    proc = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    utilisation = json.loads((tmp_path / "out" / "utilisation.json").read_text())
    assert utilisation["toy"]["fraction_of_matmul_rate"] > 0 and utilisation["toy"]["matmul_ceiling"]["matmul_calls"] > 0
    runs = json.loads((tmp_path / "out" / "gpu.json").read_text())
    assert runs["single"]["steps"] == 1 and runs["zero2"]["steps"] == 1


def test_probe_encoder_reports_each_attribute(tmp_path, tiny_model_path):
    """scripts/probe_encoder.py on a toy model: one result per attribute, accuracies in [0, 1]; an
    attribute the objects do not carry is a clear error."""
    out = tmp_path / "probe.json"
    proc = run_script_here("scripts/probe_encoder.py", "--model", str(tiny_model_path), "--attribute", "shape",
                      "--attribute", "color", "--train-n", "40", "--test-n", "20", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert [r["attribute"] for r in results] == ["shape", "color"]
    assert all(0 <= r[k] <= 1 for r in results for k in ("train_accuracy", "test_accuracy", "majority_baseline"))
    assert all(r["objects_test"] >= 20 for r in results)
    proc = run_script_here("scripts/probe_encoder.py", "--model", str(tiny_model_path), "--attribute", "weight",
                      "--train-n", "4", "--test-n", "4")
    assert proc.returncode != 0 and "no object of 'train' has the attribute 'weight'" in proc.stderr


def test_train_mixture_shortens_openmp_spinning_unless_told(monkeypatch):
    """scripts/train_mixture.py sets GOMP_SPINCOUNT before torch loads OpenMP (docs/training.md), keeping a value given."""
    script = os.path.join(ROOT, "scripts", "train_mixture.py")
    monkeypatch.setenv("GOMP_SPINCOUNT", "5")
    runpy.run_path(script, run_name="not_main")
    assert os.environ["GOMP_SPINCOUNT"] == "5"
    monkeypatch.delenv("GOMP_SPINCOUNT")
    runpy.run_path(script, run_name="not_main")
    assert os.environ["GOMP_SPINCOUNT"] == "1000"
    text = open(script).read()   # before anything that imports torch, or OpenMP has read its environment already
    assert text.index('os.environ.setdefault("GOMP_SPINCOUNT"') < text.index("from unio") and "import torch" not in text


def test_bench_moe_quick(tmp_path, toy_cache):
    """--only moe: a step with MoE layers (each routing, attribute routing dispatched both ways) against a dense
    step, in turns. Eager (--no-compile): compiling three arms took 50 s of the suite; each compiled MoE block is
    test_model's (test_compiled_moe_blocks_match_eager_training_and_keep_their_balancing_losses)."""
    out = tmp_path / "moe.json"
    proc = run_script("scripts/bench.py", "--preset", "toy", "--quick", "--batch-size", "8", "--only", "moe",
                      "--no-compile", "--json", str(out), env={"UNIO_CACHE": toy_cache})
    assert proc.returncode == 0, proc.stderr[-2000:]
    moe = json.loads(out.read_text())["moe"]
    arms = {"dense", "token", "attribute", "attribute_each_expert"}
    assert set(moe["seconds_per_step"]) == arms and all(v > 0 for v in moe["seconds_per_step"].values())
    assert set(moe["ratio_to_dense"]) == arms - {"dense"}
    assert moe["steps_timed_per_arm"] == 4 and moe["moe_layers"] >= 1 and moe["compiled"] is False


def test_bench_attention_quick(tmp_path, toy_cache):
    """--only attention: a decoding step's attention as two matmuls and a softmax against SDPA, eager and compiled,
    in turns; both decode the same tokens."""
    out = tmp_path / "attention.json"
    proc = run_script_here("scripts/bench.py", "--preset", "toy", "--quick", "--batch-size", "4", "--new-tokens", "3",
                           "--only", "attention", "--json", str(out), env={"UNIO_CACHE": toy_cache})
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["precision"] in ("bf16", "fp32")
    for mode in ("eager", "compiled"):
        arm = report["attention"][mode]
        assert arm["same_tokens"] is True and arm["ratio"] > 0 and len(arm["ratios"]) == 3


def test_bench_data_worker_quick(tmp_path, toy_cache):
    """--only data: the default command's step fed by its data worker against prebuilt batches, timed in turns."""
    out = tmp_path / "data.json"
    proc = run_script("scripts/bench.py", "--preset", "toy", "--quick", "--batch-size", "8", "--no-compile", "--only", "data",
                      "--json", str(out), env={"UNIO_CACHE": toy_cache})
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())["data"]
    for key in ("step_with_worker_over_prebuilt", "step_with_worker_normal_priority_over_prebuilt",
                "step_with_idle_worker_over_normal"):
        turns = data[key]
        assert turns["ratio"] > 0 and len(turns["ratios"]) == turns["rounds"] == 3
    assert data["worker_cpu_ms_per_batch"] > 0 and data["prebuilt_seconds_per_step"] > 0 and data["from_step"] == 1200
    assert data["worker_seconds_per_step"] > 0 and data["worker_normal_priority_seconds_per_step"] > 0


def test_final_losses_averages_each_task_over_the_last_steps(tmp_path):
    def write(run, rows):
        run.mkdir()
        (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    write(tmp_path / "a", [{"step": s, "loss": 2.0 if s <= 10 else 1.0, "task_loss": {"vqa": 0.5, "depth": 1.0 + s}}
                           for s in (10, 20, 30)] + [{"step": 30, "eval": {"vqa": 0.9}}])
    write(tmp_path / "b", [{"step": s, "loss": 1.5, "task_loss": {"vqa": 0.25}} for s in (10, 20, 30)])
    proc = run_script_here("scripts/final_losses.py", str(tmp_path / "a"), str(tmp_path / "b"), "--steps", "15")
    assert proc.returncode == 0, proc.stderr
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in proc.stdout.splitlines()[2:]]
    rows = {row[0]: row[1:] for row in cells}
    assert rows["total"][:3] == ["1.000", "1.500", "+50.0%"]         # steps 20 and 30 only: 10 is outside the last 15
    assert rows["depth"][0] == "26.000" and rows["depth"][1] == ""   # (21 + 31) / 2; run b logs no depth
    assert rows["vqa"][:3] == ["0.500", "0.250", "-50.0%"]
    bad = run_script_here("scripts/final_losses.py", str(tmp_path / "a"), "--steps", "0")
    assert bad.returncode != 0 and "--steps must be a positive" in bad.stderr

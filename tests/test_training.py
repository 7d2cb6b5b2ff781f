"""train_mixture.py end to end at toy size: outputs, falling loss, resume after SIGKILL, clear errors."""
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import ROOT, on_two_ranks, run_script

from unio.train.cli import main as train_main

TOY = ["--preset", "toy", "--batch-size", "8", "--vq-steps", "20", "--no-progress", "--lr", "3e-3", "--warmup", "10"]
EAGER = [*TOY, "--no-compile"]   # the compiled default is run once, by test_toy_training_run_writes_everything


def losses(run_dir):
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


def test_toy_training_run_writes_everything(tmp_path, toy_cache):
    out = tmp_path / "run"
    proc = run_script("scripts/train_mixture.py", "--tasks", "vqa,caption,refexp,depth", "--steps", "48",
                      "--eval-n", "8", "--eval-every", "24", "--log-every", "1", "--out", str(out), *TOY,
                      env={"UNIO_CACHE": toy_cache})
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("metrics.jsonl", "eval.json", "report.png", "model/config.json", "model/model.safetensors",
                 "model/vocab.json", "model/tokenizers/text/spiece.model", "model/tokenizers/depth_codes/model.safetensors"):
        assert (out / name).is_file(), name
    curve = [loss for _, loss in losses(out)]
    first, last = sum(curve[:8]) / 8, sum(curve[-8:]) / 8
    assert last < 0.8 * first, (first, last)
    logged = [json.loads(line) for line in open(out / "metrics.jsonl") if '"task_loss"' in line]
    assert set().union(*(row["task_loss"] for row in logged)) == {"vqa", "caption", "refexp", "depth"}
    card = (out / "model" / "README.md").read_text()   # the table: the weights the tasks declare, their shares
    # of the run's examples with the first stage counted: its 20 of 48 megabatches draw refexp 0.4, depth 0.6;
    # the rest vqa 1/5.5, caption 2/5.5, refexp 1/5.5, depth 1.5/5.5 (so depth 41%, not its weight's 27%)
    for row in ("| vqa | world | 1 | 11% |", "| caption | world | 2 | 21% |", "| refexp | world | 1 | 27% |",
                "| depth | world | 1.5 | 41% |"):
        assert row in card, (row, card)
    assert "- first stage (40% of the steps): refexp, depth" in card and "- loss mean: sqrt" in card
    assert "- batches: tasks mixed as drawn, decoded in up to 2 groups of like target lengths" in card
    config = json.loads((out / "model" / "config.json").read_text())   # what it knows travels with it
    assert config["trained_tasks"] == ["caption", "depth", "refexp", "vqa"]
    assert "precision: bf16 autocast" in proc.stdout or "precision: fp32" in proc.stdout
    periodic = [json.loads(line) for line in open(out / "metrics.jsonl") if '"eval"' in line]
    assert [row["step"] for row in periodic] == [24, 48] and set(periodic[0]["eval"]) == {"vqa", "caption", "refexp", "depth"}
    evaluation = json.loads((out / "eval.json").read_text())
    assert set(evaluation["model"]) == {"vqa", "caption", "refexp", "depth"}
    assert "majority" in evaluation["baselines"]["vqa"]
    assert "baselines" in proc.stdout and "refexp" in proc.stdout
    assert "Writing model shards" not in proc.stderr   # no bar a checkpoint in the log


def _start(out, cache, steps):
    args = [sys.executable, "scripts/train_mixture.py", "--tasks", "refexp,vqa", "--steps", str(steps),
            "--checkpoint-every", "10", "--log-every", "1", "--out", str(out), "--no-eval", *EAGER]
    return subprocess.Popen(args, cwd=ROOT, env={**os.environ, "UNIO_CACHE": cache},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_resume_after_sigkill_continues_the_same_run(tmp_path, toy_cache):
    steps = 60
    reference = tmp_path / "reference"
    proc = run_script("scripts/train_mixture.py", "--tasks", "refexp,vqa", "--steps", str(steps), "--checkpoint-every",
                      "10", "--log-every", "1", "--out", str(reference), "--no-eval", *EAGER, env={"UNIO_CACHE": toy_cache})
    assert proc.returncode == 0, proc.stderr[-2000:]
    killed = tmp_path / "killed"
    proc = _start(killed, toy_cache, steps)
    state = killed / "checkpoint" / "trainer_state.pt"
    deadline = time.time() + 300
    while not state.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved_step = torch.load(state, weights_only=False)["step"]
    assert saved_step < steps, "the run finished before it could be killed"
    proc = run_script("scripts/train_mixture.py", "--tasks", "refexp,vqa", "--steps", str(steps), "--checkpoint-every",
                      "10", "--log-every", "1", "--out", str(killed), "--no-eval", "--resume", *EAGER,
                      env={"UNIO_CACHE": toy_cache})
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = dict(losses(reference))
    got = dict(losses(killed))   # later lines (the resumed run) overwrite the killed run's
    after = [s for s in want if s >= saved_step]
    assert after and all(abs(got[s] - want[s]) <= 1e-4 * max(1.0, abs(want[s])) for s in after), \
        [(s, got[s], want[s]) for s in after[:5]]


def test_two_runs_started_together_share_one_tokenizer_cache(tmp_path):
    """The default command started twice on an empty cache: one builds the tokenizers, the other waits for
    them, both train; the cache ends with one whole folder."""
    cache = tmp_path / "cache"
    runs = [subprocess.Popen([sys.executable, "scripts/train_mixture.py", "--tasks", "refexp,vqa", "--steps", "2",
                              "--log-every", "1", "--out", str(tmp_path / f"run{i}"), "--no-eval", *EAGER], cwd=ROOT,
                             env={**os.environ, "UNIO_CACHE": str(cache)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for i in range(2)]
    outputs = [proc.communicate(timeout=600) for proc in runs]
    assert [proc.returncode for proc in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    assert sum("training the tokenizers into" in out for out, _ in outputs) == 1      # the other waited, or loaded
    built = [p for p in cache.iterdir() if p.is_dir()]
    assert len(built) == 1 and (built[0] / "vocab.json").is_file(), sorted(cache.iterdir())
    assert all(losses(tmp_path / f"run{i}") for i in range(2))


@pytest.mark.parametrize("tasks, message", [("vqa,nope", "unknown task 'nope'"), ("vqa:x", "malformed weight"),
                                            ("vqa:-1", "weights must be positive")])
def test_bad_mixture_fails_before_training(tasks, message, tmp_path, monkeypatch):
    """The script's main() in this process (a subprocess would only add its start-up)."""
    monkeypatch.setenv("UNIO_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=re.escape(message)):
        train_main(["--tasks", tasks, "--out", str(tmp_path / "r"), *EAGER])
    assert not (tmp_path / "r").exists() and not (tmp_path / "cache").exists()


def test_mismatched_tokenizers_fail_before_training(tmp_path, modalities):
    modalities.save(tmp_path / "tok")
    data = json.loads((tmp_path / "tok" / "vocab.json").read_text())
    data["ranges"][0]["signature"] = "spm:something-else"
    (tmp_path / "tok" / "vocab.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="vocabulary range 'text'"):
        train_main(["--tasks", "vqa", "--tokenizers", str(tmp_path / "tok"), "--out", str(tmp_path / "r"), *EAGER])
    assert not (tmp_path / "r").exists()


def test_non_finite_loss_is_skipped_not_trained_on(modalities):
    from unio.train.trainer import Trainer, TrainOptions
    trainer = Trainer(TrainOptions(tasks="vqa", preset="toy"))
    trainer.mods = modalities
    from unio.model.presets import model_from_preset
    trainer.model = model_from_preset("toy", modalities.vocab.size)
    trainer.optimizer = torch.optim.AdamW(trainer.model.parameters(), lr=1e-2)
    trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(trainer.optimizer, lambda s: 1.0)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    batch = {"pixel_values": torch.full((2, 3, 32, 32), float("nan")), "input_ids": torch.ones(2, 3, dtype=torch.long),
             "attention_mask": torch.ones(2, 3, dtype=torch.long), "labels": torch.ones(2, 2, dtype=torch.long)}
    assert trainer.train_step([batch]) is None
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


def test_tokenizer_cache_is_keyed_by_the_config_and_the_corpus():
    """Runs whose mixtures add nothing beyond the config's corpus tasks share their tokenizers."""
    from unio.train.tokenizer_setup import cache_name, corpus_pairs, load_tokenizer_config
    config = load_tokenizer_config()
    name = lambda pairs, res=64, cfg=config, specs=None: cache_name(corpus_pairs(pairs, cfg), cfg, res, specs or {})
    assert name([("vqa", "world"), ("depth", "world")]) == name([("caption", "world")])
    assert name([("vqa", "world"), ("count", "world")]) != name([("vqa", "world")])
    assert name([("vqa", "world")], 256) != name([("vqa", "world")])
    assert name([("vqa", "world")], cfg=load_tokenizer_config(num_bins=100)) != name([("vqa", "world")])
    assert name([("caption", "mine")], specs={"mine": "hf:/a"}) != name([("caption", "mine")], specs={"mine": "hf:/b"})
    assert {t["steps"] for t in load_tokenizer_config(steps=20)["tokenizers"].values() if "steps" in t} == {20}
    from unio.registries import TASKS
    from unio.task_set import TaskSet
    frame_masks = name([("segment", "world")])
    boxed = TaskSet({"segment": {"mask_in": "box"}})       # its VQ-VAE learns from other images
    assert cache_name(corpus_pairs([("segment", "world")], config), config, 64, {}, boxed) != frame_masks
    assert name([("segment", "world")]) == frame_masks and TASKS.get("segment").mask_in == "image"


def test_a_tokenizer_learns_from_the_tasks_its_config_names():
    """`learn_from: [generate]` narrows a tokenizer's corpus (the generation config's RGB-only VQ-VAE)."""
    from unio.data.mixture import DEFAULT_SOURCE
    from unio.data.sources import build_source
    from unio.train.tokenizer_setup import Corpus, corpus_for, corpus_pairs, load_tokenizer_config
    config = load_tokenizer_config("generation")
    assert config["tokenizers"]["vq"]["learn_from"] == ["generate", "inpaint"]
    world = build_source(DEFAULT_SOURCE, None, 32)
    corpus = Corpus(corpus_pairs([("generate", DEFAULT_SOURCE)], config), {DEFAULT_SOURCE: world}, 32)
    assert ("depth", DEFAULT_SOURCE) in corpus.pairs
    images = corpus_for(corpus, ["generate", "inpaint"]).images()
    assert all(next(images).shape[0] == 3 for _ in range(6))         # RGB scenes, no 1-channel depth map
    everything = corpus.images()
    assert {next(everything).shape[0] for _ in range(4)} == {1, 3}   # the whole corpus: depth maps too
    with pytest.raises(ValueError, match="learn_from .*names no task"):
        corpus_for(corpus, ["segment"])
    from unio.train.cli import options_from, parser
    assert options_from(parser().parse_args(["--tokenizer-config", "generation"])).tokenizer_config == "generation"


def test_a_task_without_a_weight_takes_its_default():
    from unio.data.mixture import parse_mixture
    known = ["vqa", "refexp"]
    defaults = {"vqa": 1.0, "refexp": 2.5}.get
    assert parse_mixture("vqa,refexp", known, defaults) == {("vqa", "world"): 1.0, ("refexp", "world"): 2.5}
    assert parse_mixture("vqa,refexp@mine:1", known, defaults) == {("vqa", "world"): 1.0, ("refexp", "mine"): 1.0}
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        parse_mixture("nope", known, defaults)


def test_task_losses_are_each_tasks_mean_token_cross_entropy():
    from unio.train.balance import example_losses
    from unio.train.logs import TaskLosses
    logits = torch.randn(3, 4, 10)
    labels = torch.tensor([[1, 2, -100, -100], [3, 4, 5, 6], [7, -100, -100, -100]])
    meter = TaskLosses(["a", "b"])
    meter.add(example_losses(logits, labels), torch.tensor([0, 1, 0]))
    token = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
    first, second, third = token[0, :2].mean(), token[1].mean(), token[2, :1]
    means = meter.pop()
    assert means["a"] == pytest.approx(float((first + third) / 2), abs=1e-4)
    assert means["b"] == pytest.approx(float(second), abs=1e-4)
    assert meter.pop() == {}


def test_spatial_first_stage_samples_only_the_non_text_tasks_then_all(modalities):
    from unio.data.batching import BUCKETS
    from unio.data.mixture import Mixture
    from unio.train.curriculum import spatial_stage
    from unio.train.trainer import Trainer, TrainOptions

    def stage(tasks, **options):
        trainer = Trainer(TrainOptions(tasks=tasks, **options))
        stages = spatial_stage(trainer.opts, trainer.weights, trainer.tasks, modalities, 32)
        return trainer, (stages.first, stages.first_until)
    trainer, (first_tasks, first_until) = stage("vqa,caption,refexp,depth", steps=100, spatial_first=0.4)
    assert set(first_tasks) == {"refexp", "depth"} and first_until == 40    # batches (one a megabatch by default)
    assert stage("vqa,caption,refexp,depth", steps=100, spatial_first=0.4, buckets=BUCKETS)[1][1] == math.ceil(40 / BUCKETS)
    mixture = Mixture(trainer.tasks, trainer.sources, trainer.weights, 32, 100, 0, 0, first_tasks, first_until)
    early = {ex.task for i in range(first_until) for ex in mixture.megabatch(i, 8)}
    late = {ex.task for i in range(first_until, first_until + 8) for ex in mixture.megabatch(i, 8)}
    assert early == {"refexp", "depth"} and late == {"vqa", "caption", "refexp", "depth"}
    assert stage("vqa,caption", spatial_first=0.4)[1] == ((), 0)
    assert stage("refexp,depth", spatial_first=0.4)[1] == ((), 0)
    # --first-tasks names the first stage's pairs instead (a box task alone, before the others)
    assert stage("detection,find_all,refexp", steps=100, spatial_first=0.2, first_tasks="detection")[1] == (
        ("detection",), 20)
    # a pair only --first-tasks names is trained in the first stage alone (a warm-up)
    trainer, (first_tasks, first_until) = stage("vqa,caption,refexp,depth", steps=100, spatial_first=0.4,
                                                first_tasks="detection,refexp,depth")
    assert "detection" in trainer.tasks and set(first_tasks) == {"detection", "refexp", "depth"}
    mixture = Mixture(trainer.tasks, trainer.sources, trainer.weights, 32, 100, 0, 0, first_tasks, first_until,
                      first_only=("detection",))
    early = {ex.task for i in range(first_until) for ex in mixture.megabatch(i, 8)}
    late = {ex.task for i in range(first_until, first_until + 8) for ex in mixture.megabatch(i, 8)}
    assert early == {"detection", "refexp", "depth"} and late == {"vqa", "caption", "refexp", "depth"}
    with pytest.raises(ValueError, match="adds detection to the first stage only, but --spatial-first is 0"):
        stage("vqa,refexp", spatial_first=0, first_tasks="detection")
    with pytest.raises(ValueError, match="unknown task 'detektion'"):
        stage("vqa,refexp", spatial_first=0.2, first_tasks="detektion")


def test_buckets_sort_each_megabatch_by_target_length_across_its_batches(modalities):
    from unio.data.batching import BatchStream, Collator
    from unio.data.mixture import Mixture
    from unio.train.trainer import Trainer, TrainOptions
    trainer = Trainer(TrainOptions(tasks="vqa,caption,refexp,depth", spatial_first=0))
    mixture = Mixture(trainer.tasks, trainer.sources, trainer.weights, 32, 100, 0)
    collate = Collator(trainer.tasks, modalities, 48, 72)
    lengths = lambda stream, step: sorted(len(t) for t in stream.examples(step)[1])   # noqa: E731
    drawn = BatchStream(mixture, collate, 8, buckets=1)
    for step in range(3):    # one batch a megabatch: the examples drawn for it, their tasks mixed
        assert sorted(e.prompt for e in drawn.examples(step)[0]) == sorted(e.prompt for e in mixture.megabatch(step, 8))
    for buckets in (2, 4):
        stream = BatchStream(mixture, collate, 8, buckets=buckets)
        batches = [lengths(stream, step) for step in range(buckets)]        # megabatch 0, its batches shuffled
        assert sorted(n for b in batches for n in b) == sorted(len(t) for t in collate.target_ids(mixture.megabatch(0, 8 * buckets)))
        assert all(a[-1] <= b[0] or b[-1] <= a[0] for a in batches for b in batches if a is not b)
    with pytest.raises(ValueError, match="--buckets 0: the batches a megabatch is cut into"):
        Trainer(TrainOptions(tasks="vqa,refexp", buckets=0))


def test_a_task_named_without_a_weight_has_the_weight_it_declares():
    from unio.task_set import TaskSet
    from unio.train.builders import build_mixture, expand_all
    from unio.train.trainer import TrainOptions

    def weights(spec):
        opts = expand_all(TrainOptions(tasks=spec), TaskSet())
        return {task: w for (task, _), w in build_mixture(opts, TaskSet())[0].items()}
    assert weights("vqa,caption,refexp,depth") == {"vqa": 1.0, "caption": 2.0, "refexp": 1.0, "depth": 1.5}
    assert weights("vqa,caption:1,depth:3") == {"vqa": 1.0, "caption": 1.0, "depth": 3.0}    # given weights win
    every = weights("all")
    assert every["caption"] == 2.0 and every["depth"] == 1.5 and every["detection"] == 1.0
    assert set(weights("all:0.5").values()) == {0.5} and weights("all,caption:1")["caption"] == 1.0


def test_v02s_no_warm_up_flag_still_parses_and_says_it_changes_nothing(capsys):
    from unio.train.cli import options_from, parser
    assert options_from(parser().parse_args(["--no-warm-up"])) == options_from(parser().parse_args([]))
    assert "no task declares a warm-up since v0.3" in capsys.readouterr().out


def test_model_overrides_from_the_command_line():
    from unio.train.cli import model_overrides
    assert model_overrides(["stem=conv", "share_encoder_embeddings=false", "d_model=256"]) == {
        "stem": "conv", "share_encoder_embeddings": False, "d_model": 256}
    with pytest.raises(ValueError, match="model config field, got 'width=3'.*d_model"):
        model_overrides(["width=3"])


def _finite_on_rank(rank: int, port: int, results) -> None:
    import torch.distributed as dist

    from unio.train.trainer import Trainer
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    results[rank] = Trainer._finite_everywhere(torch.tensor(float("nan") if rank == 1 else 1.0))
    dist.destroy_process_group()


def test_ranks_agree_to_skip_a_step_when_one_has_a_non_finite_loss():
    """Under DeepSpeed a rank skipping alone would leave the others waiting in its collectives."""
    assert on_two_ranks(_finite_on_rank) == {0: False, 1: False}


def write_shapes_folder(folder, n_train=24, n_test=8):
    """A second source in the folder format: images of several sizes, each with one coloured box,
    its caption and its referring expression (a JSON list of records per split)."""
    import numpy as np
    from PIL import Image
    colours = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220)}
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        records = []
        for i in range(n):
            w, h = (int(v) for v in rng.integers(40, 120, 2))
            name = list(colours)[i % 3]
            x1, y1 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
            x2, y2 = x1 + int(rng.integers(8, w // 2)), y1 + int(rng.integers(8, h // 2))
            image = np.full((h, w, 3), 128, np.uint8)
            image[y1:y2, x1:x2] = colours[name]
            Image.fromarray(image).save(folder / f"{split}_{i}.png")
            records.append({"image": f"{split}_{i}.png", "captions": [f"a {name} box."],
                            "objects": [{"box": [x1, y1, x2, y2], "category": f"{name} box"}],
                            "refexps": [[f"the {name} box", 0]]})
        (folder / f"{split}.json").write_text(json.dumps(records))


def test_a_mixture_of_world_tasks_and_a_second_source_trains_and_evaluates(tmp_path, toy_cache):
    """World pairs beside pairs on a folder source with images of several sizes, through the real script."""
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    write_shapes_folder(shapes)
    out = tmp_path / "run"
    proc = run_script("scripts/train_mixture.py", "--tasks", "vqa,refexp,caption@shapes,refexp@shapes:2",
                      "--source", f"shapes=folder:{shapes}", "--steps", "24", "--eval-n", "8", "--log-every", "1",
                      "--out", str(out), *EAGER, env={"UNIO_CACHE": toy_cache})
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluation = json.loads((out / "eval.json").read_text())
    assert set(evaluation["model"]) == {"vqa", "refexp", "caption@shapes", "refexp@shapes"}
    assert {"centre_box", "mean_box"} <= set(evaluation["baselines"]["refexp@shapes"])
    logged = [json.loads(line) for line in open(out / "metrics.jsonl") if '"task_loss"' in line]
    assert {"refexp@shapes", "caption@shapes"} <= set().union(*(row["task_loss"] for row in logged))
    assert (out / "report.png").is_file() and "refexp@shapes" in proc.stdout


def test_a_task_on_a_source_without_its_keys_fails_before_training(tmp_path, monkeypatch):
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    write_shapes_folder(shapes, 2, 1)
    monkeypatch.setenv("UNIO_CACHE", str(tmp_path / "c"))
    with pytest.raises(ValueError, match="task 'vqa' needs the record key 'questions', which source 'shapes' does not have"):
        train_main(["--tasks", "vqa@shapes", "--source", f"shapes=folder:{shapes}", "--out", str(tmp_path / "r"), *EAGER])
    assert not (tmp_path / "c").exists(), "it failed before building tokenizers"


class _Evil:
    """A pickle that runs code when loaded."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_checkpoint_holding_a_malicious_pickle_is_refused(tmp_path):
    from unio.train import checkpoint as ckpt
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    marker = tmp_path / "pwned"
    torch.save({"step": 3, "extra": {}, "payload": _Evil(marker)}, folder / ckpt.STATE)
    with pytest.raises(ValueError, match=r"refusing to load .*trainer_state.pt.*could run code"):
        ckpt.load_state(folder)
    assert not marker.exists(), "loading ran the pickle's code"


def test_checkpoint_files_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    """A power loss, not only a kill, leaves the previous checkpoint or the new one whole."""
    import os

    from unio.train import checkpoint as ckpt
    tmp = tmp_path / "checkpoint.tmp"
    (tmp / "model").mkdir(parents=True)
    for name in ("trainer_state.pt", "model/model.safetensors"):
        (tmp / name).write_bytes(b"x" * 10)
    synced, renamed = [], []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def replace(a, b):
        renamed.append((str(a), len(synced)))
        real_replace(a, b)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    ckpt.commit(tmp, tmp_path / "checkpoint")
    files = {str(tmp / "trainer_state.pt"), str(tmp / "model" / "model.safetensors")}
    commit_rename = [n for a, n in renamed if a == str(tmp)][0]
    assert files <= set(synced[:commit_rename]), "every file is on disk before the rename commits it"
    assert str(tmp_path) in synced[commit_rename:], "the folder holding the rename is synced after it"
    assert (tmp_path / "checkpoint" / "trainer_state.pt").is_file()


def test_the_default_command_trains_what_session_37s_explicit_command_trained(modalities):
    """`train_mixture.py` with no options is step for step docs/results.md's `--tasks vqa,caption:2,refexp,
    depth:1.5 --buckets 1 --sub-batches 2 --loss-mean sqrt --steps 2400` (records default-s37-cap2-depth15-sqrt-2400)."""
    from unio.data.batching import BatchStream, Collator
    from unio.data.mixture import Mixture
    from unio.train.curriculum import spatial_stage
    from unio.train.trainer import Trainer, TrainOptions
    runs = [Trainer(TrainOptions()), Trainer(TrainOptions(tasks="vqa,caption:2,refexp,depth:1.5", buckets=1, sub_batches=2,
                                                          loss_mean="sqrt", steps=2400))]
    assert replace(runs[0].opts, tasks=None) == replace(runs[1].opts, tasks=None)
    assert list(runs[0].weights.items()) == list(runs[1].weights.items())
    assert runs[0].out == runs[1].out == Path("runs/vqa-caption-refexp-depth-tiny-s0")
    plans = [spatial_stage(t.opts, t.weights, t.tasks, modalities, 32) for t in runs]
    assert plans[0] == plans[1] and set(plans[0].first) == {"refexp", "depth"} and plans[0].first_until == 960
    streams = [BatchStream(Mixture(t.tasks, t.sources, t.weights, 32, 1000, 0, 0, p.first, p.first_until, 1.0),
                           Collator(t.tasks, modalities, 48, 72), 16, buckets=t.opts.buckets) for t, p in zip(runs, plans)]
    for step in (0, 959, 960):
        drawn = [[(e.task, e.prompt, str(e.target), e.image.tobytes()) for e in s.examples(step)[0]] for s in streams]
        assert drawn[0] == drawn[1]


class _PolicyStream:
    """A stand-in for BatchStream: each 'batch' says which scheduling policy built it."""

    def batch(self, step: int) -> dict:
        return {"step": step, "policy": os.sched_getscheduler(0)}


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux's scheduling policies only")
@pytest.mark.parametrize("flag, policy", [([], "SCHED_IDLE"), (["--data-worker", "normal"], "SCHED_OTHER"),
                                          (["--data-worker", "thread"], "SCHED_OTHER")])
def test_the_data_worker_builds_on_the_cores_the_step_leaves_idle(flag, policy):
    """The trainer's data worker runs at Linux's idle policy by default (the training step's threads are never
    preempted for it); --data-worker normal keeps the normal one, thread builds in the training process; the
    trainer's own process is untouched either way."""
    from unio.data.batching import Prefetcher, WorkerPrefetcher, prefetcher
    from unio.train.cli import options_from, parser
    opts = options_from(parser().parse_args(flag))
    worker = prefetcher(_PolicyStream(), 5, opts.data_workers, idle=opts.idle_data_worker)
    assert isinstance(worker, Prefetcher if flag[-1:] == ["thread"] else WorkerPrefetcher)
    try:
        batches = [worker.next() for _ in range(3)]
    finally:
        worker.close()
    assert [b["step"] for b in batches] == [5, 6, 7]
    assert {b["policy"] for b in batches} == {getattr(os, policy)}
    assert os.sched_getscheduler(0) == os.SCHED_OTHER

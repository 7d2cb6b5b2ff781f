"""Shared fixtures: tiny tokenizers trained once per session, a tiny model config, a saved tiny model
and a runner on it; helpers that several test files use (scripts, world examples, overfitting a batch,
two gloo ranks)."""
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from unio.modalities import Modalities  # noqa: E402
from unio.registries import TOKENIZERS  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_MODEL = dict(d_model=64, num_heads=4, d_ff=128, encoder_layers=2, decoder_layers=2, image_size=32,
                  patch_size=8, max_text_length=48, max_target_length=40)


@pytest.fixture(scope="session")
def modalities(tmp_path_factory) -> Modalities:
    """Text (trained on world texts), coordinates (32 bins) and an untrained-but-valid VQ-VAE (32 px -> 4x4)."""
    from unio.train.tokenizer_setup import world_corpus
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tokenizers")
    corpus = world_corpus(["vqa", "caption", "refexp", "depth"], 32, texts_per_pair=200)
    text = TOKENIZERS.get("text").build(corpus, directory / "text", vocab_size=400)
    vq = TOKENIZERS.get("vq")(hidden=16, downsample=8).eval()
    mods = Modalities({"text": text, "coordinates": TOKENIZERS.get("coordinates")(num_bins=32), "vq": vq})
    mods.save(directory / "saved")
    return Modalities.load(directory / "saved")


@pytest.fixture()
def tiny_config(modalities):
    from unio.model import UnioConfig
    return UnioConfig(vocab_size=modalities.vocab.size, **TINY_MODEL)


@pytest.fixture(scope="session")
def tiny_model_path(modalities, tmp_path_factory):
    """A saved tiny model (seed 0, untrained) with its tokenizers. Read it, copy it before changing it."""
    from unio.model import UnioConfig, UnioModel
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model")
    UnioModel(UnioConfig(vocab_size=modalities.vocab.size, **TINY_MODEL)).save_pretrained(path)
    modalities.save(path / "tokenizers")
    return path


@pytest.fixture(scope="session")
def toy_cache(tmp_path_factory) -> str:
    """A UNIO_CACHE shared by the session's script runs: runs whose tokenizers match (the default config with
    --vq-steps 20, the world's four corpus tasks, toy size) build them once, the rest load them; the precision
    probe runs once. A test about building the cache, or one that must find it empty, takes its own."""
    return str(tmp_path_factory.mktemp("unio_cache"))


# One toy run of every task, shared by the tests that read a trained run folder of their tasks (test_all_tasks,
# test_regions, test_masks_keypoints, test_generation): the detection option and the pair on world_single are
# what test_regions reads back; 6 steps and 6 test examples per pair.
ALL_TASKS_RUN = ["--tasks", "all,classify@world_single", "--preset", "toy", "--batch-size", "8", "--vq-steps", "5",
                 "--steps", "6", "--warmup", "1", "--no-compile", "--no-progress", "--eval-n", "6",
                 "--task-option", "detection.order=x", "--task-option", "generate.guidance=[0,2]"]


@pytest.fixture(scope="session")
def all_tasks_run(tmp_path_factory):
    """train_mixture.py's run folder (`.out`) and stdout (`.stdout`) for ALL_TASKS_RUN. Read it; write
    elsewhere."""
    from types import SimpleNamespace
    root = tmp_path_factory.mktemp("all_tasks")
    proc = run_script("scripts/train_mixture.py", *ALL_TASKS_RUN, "--out", str(root / "run"),
                      env={"UNIO_CACHE": str(root / "cache")}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return SimpleNamespace(out=root / "run", stdout=proc.stdout)


@pytest.fixture(scope="module")
def runner(tiny_model_path):
    """unio.load of the tiny model; one per test module, so no module sees another's runner."""
    import unio
    return unio.load(tiny_model_path)


def load_script(name: str):
    """scripts/NAME.py as a module, by path (putting scripts/ on sys.path would shadow packages: `evaluate`)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"script_{name}", os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*args, env=None, timeout=600, in_process=False):
    """Run a repo script in a subprocess; returns CompletedProcess (check=True). METEOR is left out
    (UNIO_METEOR=0: its Java start costs 8 s a process) unless `env` asks for it. `in_process`: run it in
    this process instead, for scripts that leave no global state behind (no training), sparing the 6 s a
    new interpreter spends importing torch and transformers."""
    import subprocess
    if in_process:
        return _run_in_process(args, {"UNIO_METEOR": "0", **(env or {})})
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "UNIO_METEOR": "0", **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def run_script_here(*args, env=None, timeout=None):
    """run_script(..., in_process=True): for scripts that train nothing (make_world, evaluate, bench_compare ...);
    `timeout` is not enforced in process."""
    return run_script(*args, env=env, in_process=True)


def _run_in_process(args, env: dict):
    """`python ARGS` as __main__ here, with the argv, environment, working folder and sys.path[0] a
    subprocess would have; stdout and stderr captured; the exit status as Python's would be."""
    import contextlib
    import io
    import runpy
    import subprocess
    import traceback
    out, err, code = io.StringIO(), io.StringIO(), 0
    saved = sys.argv, list(sys.path), dict(os.environ), os.getcwd()
    module = args[1] if args[0] == "-m" else None
    argv = list(args[2:] if module else args[1:])
    script = None if module else os.path.join(ROOT, args[0])
    sys.argv = [script or module, *argv]
    sys.path.insert(0, ROOT if module else os.path.dirname(script))
    os.environ.update(env)
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=True) if module else \
                    runpy.run_path(script, run_name="__main__")
            except SystemExit as exit_:
                if isinstance(exit_.code, str):          # sys.exit("message"): printed, status 1
                    err.write(exit_.code + "\n")
                code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
            except Exception:                            # noqa: BLE001 - an uncaught error: traceback, status 1
                err.write(traceback.format_exc())
                code = 1
    finally:
        sys.argv, sys.path[:] = saved[0], saved[1]
        os.environ.clear()
        os.environ.update(saved[2])
        os.chdir(saved[3])
    return subprocess.CompletedProcess([sys.executable, *args], code, out.getvalue(), err.getvalue())


def world_examples(task, split: str, n: int, resolution: int) -> list:
    """Examples 0..n of a task on a world split, as evaluation makes them."""
    from unio.data.sources import build_source
    from unio.infer.evaluation import split_examples
    return split_examples(task, build_source("world", None, resolution), split, n, resolution)


def overfit(model, batch: dict, steps: int, lr: float = 3e-3) -> float:
    """Train `model` on one batch for `steps` AdamW steps; the last step's loss."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


def free_port() -> int:
    """A local TCP port that nothing listens on now."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def on_two_ranks(target) -> dict:
    """`target(rank, port, results)` in 2 spawned processes (a free port for gloo); what they put in results."""
    import torch.multiprocessing as mp
    results = mp.Manager().dict()
    mp.spawn(target, args=(free_port(), results), nprocs=2)
    return dict(results)

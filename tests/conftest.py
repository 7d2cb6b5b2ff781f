"""Shared fixtures: tiny tokenizers trained once per session, and a tiny model config."""
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
    from unio.bootstrap import world_corpus
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


def run_script(*args, env=None, timeout=600):
    """Run a repo script in a subprocess; returns CompletedProcess (check=True)."""
    import subprocess
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def world_examples(task, split: str, n: int, resolution: int) -> list:
    """Examples 0..n of a task on a world split, as evaluation makes them."""
    from unio.evaluation import split_examples
    from unio.sources import build_source
    return split_examples(task, build_source("world", None, resolution), split, n, resolution)

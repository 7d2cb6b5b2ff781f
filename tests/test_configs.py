"""Every config file in the repo loads, builds, and matches what it states."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT

from unio.model import UnioConfig, UnioModel
from unio.model.presets import load_preset

MODEL_CONFIGS = sorted(Path(ROOT, "configs", "model").glob("*.yaml"))
DEEPSPEED_CONFIGS = sorted(Path(ROOT, "configs", "deepspeed").glob("*.json"))


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=lambda p: p.stem)
def test_model_config_parameter_count(path):
    stated = yaml.safe_load(path.read_text())
    with torch.device("meta"):
        model = UnioModel(UnioConfig(vocab_size=stated["reference_vocab_size"], **load_preset(path.stem)))
    assert sum(p.numel() for p in model.parameters()) == stated["parameters"]


def test_unified_io_sizes():
    for name, width, layers in (("small", 512, 8), ("base", 768, 12), ("large", 1024, 24)):
        preset = load_preset(name)
        assert (preset["d_model"], preset["encoder_layers"], preset["decoder_layers"]) == (width, layers, layers)


@pytest.mark.parametrize("path", DEEPSPEED_CONFIGS, ids=lambda p: p.stem)
def test_deepspeed_configs(path):
    config = json.loads(path.read_text())
    assert config["zero_optimization"]["stage"] == int(path.stem[-1])
    assert config["bf16"]["enabled"] is True


def test_unknown_preset_lists_presets():
    with pytest.raises(ValueError, match="presets: .*tiny"):
        load_preset("gigantic")


def test_single_process_training_does_not_import_deepspeed():
    code = "import sys, unio.train.trainer, unio.train.cli; assert 'deepspeed' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0

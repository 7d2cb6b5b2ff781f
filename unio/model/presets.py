"""Model size presets (configs/model/*.yaml) -> plain arguments -> a model."""
from __future__ import annotations

from pathlib import Path

import yaml

from unio.plugins import builtin_dir

META_KEYS = ("parameters", "reference_vocab_size")
DEFAULT_PRESET = "tiny"   # what train_mixture.py trains without --preset


def preset_path(name: str | Path) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"no model config at {path}")
        return path
    folder = builtin_dir("configs") / "model"
    path = folder / f"{name}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise ValueError(f"unknown preset {name!r}; presets: {names}, or the path of a YAML file")
    return path


def load_preset(name: str | Path) -> dict:
    """The model arguments of a preset, without its metadata keys."""
    data = yaml.safe_load(preset_path(name).read_text())
    return {k: v for k, v in data.items() if k not in META_KEYS}


def model_from_preset(name: str | Path, vocab_size: int, **overrides):
    from unio.model import UnioConfig, UnioModel
    args = {**load_preset(name), **{k: v for k, v in overrides.items() if v is not None}}
    return UnioModel(UnioConfig(vocab_size=vocab_size, **args))

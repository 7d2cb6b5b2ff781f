"""Loading a saved model folder (`save_pretrained` weights + config, `tokenizers/`, `vocab.json`)
with an error that names the file and what is wrong, for every way a folder can be broken."""
from __future__ import annotations

import json
from pathlib import Path

from unio.modalities import Modalities
from unio.vocab import Vocabulary, VocabularyMismatch

FORMAT = 1   # the model folder layout this unio writes and reads; recorded in config.json
WEIGHTS = "model.safetensors"


def model_folder(path: str | Path) -> Path:
    """A run folder or its model/ folder -> the model folder."""
    path = Path(path)
    return path / "model" if (path / "model" / "config.json").is_file() else path


def read_config(folder: Path) -> dict:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder} is not a unio model folder: it has no config.json (a model folder "
                                f"holds config.json, {WEIGHTS} and tokenizers/, as train_mixture.py writes them)")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_file} is not valid JSON ({error})") from None
    if config.get("model_type") != "unio":
        raise ValueError(f"{config_file} describes a {config.get('model_type')!r} model, not a unio model")
    if config.get("unio_format", FORMAT) > FORMAT:
        raise ValueError(f"{config_file} was written by a newer unio (folder format {config['unio_format']}, "
                         f"this unio reads {FORMAT}); upgrade unio")
    return config


def check_weights(folder: Path) -> None:
    """Reads the safetensors header: a truncated or corrupt file fails here, named."""
    from safetensors import safe_open
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{folder} has no {WEIGHTS}: the model's weights are missing")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            handle.keys()
    except Exception as error:  # safetensors raises its own error types
        raise ValueError(f"{weights} is truncated or corrupt ({error}); copy it again or re-export the model") from None


def load_tokenizers(folder: Path, vocab_size: int) -> Modalities:
    tokenizers = folder / "tokenizers"
    if not (tokenizers / "vocab.json").is_file():
        raise FileNotFoundError(f"{tokenizers / 'vocab.json'} is missing: the model's tokenizers are not beside it")
    mods = Modalities.load(tokenizers)
    beside = folder / "vocab.json"
    if beside.is_file():
        Vocabulary.load(beside).check_same(mods.vocab, what=str(beside))
    if mods.vocab.size != vocab_size:
        raise VocabularyMismatch(f"the tokenizers in {tokenizers} give {mods.vocab.size} ids but the model in "
                                 f"{folder} has {vocab_size}; they do not belong together")
    return mods


def load_model_folder(path: str | Path) -> tuple:
    """(model, modalities) from a model or run folder, or an error naming what is wrong."""
    from unio.model import UnioModel
    folder = model_folder(path)
    config = read_config(folder)
    check_weights(folder)
    mods = load_tokenizers(folder, config.get("vocab_size"))
    try:
        model = UnioModel.from_pretrained(folder)
    except (OSError, RuntimeError, ValueError, TypeError) as error:
        raise ValueError(f"cannot load the model in {folder}: {error}") from None
    return model, mods

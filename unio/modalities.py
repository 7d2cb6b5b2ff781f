"""The set of tokenizers a model uses, with the unified vocabulary laid out over them.

Saved as a folder: one sub-folder per tokenizer (its own files plus `tokenizer.json` naming its
plugin) and `vocab.json`. Loading rebuilds the layout from the installed plugins and checks it
against the saved one, so a model never runs on shifted ids.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from unio.registries import TOKENIZERS
from unio.vocab import Vocabulary

MANIFEST = "tokenizer.json"


class Modalities:
    """`tokenizers`: name -> tokenizer; `plugins`: name -> the plugin that made it, where they differ (a
    config may build several tokenizers of one plugin, e.g. a `vq` codebook per image modality)."""

    def __init__(self, tokenizers: Mapping[str, object], plugins: Mapping[str, str] | None = None):
        self.tokenizers = dict(tokenizers)
        self.plugins = {name: (plugins or {}).get(name, name) for name in self.tokenizers}
        self.vocab = Vocabulary.build(self.tokenizers)
        prompt = [name for name, tok in self.tokenizers.items() if getattr(tok, "prompt", False)]
        if len(prompt) > 1:
            raise ValueError(f"tokenizers {', '.join(prompt)} all claim to encode prompts (prompt = True); one may")
        self.prompt_name = prompt[0] if prompt else None   # the tokenizer of prompts and text answers

    def __getitem__(self, name: str):
        if name not in self.tokenizers:
            raise KeyError(f"no tokenizer {name!r} in this model; it has: {', '.join(self.tokenizers)}")
        return self.tokenizers[name]

    def __contains__(self, name: str) -> bool:
        return name in self.tokenizers

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        for name, tok in self.tokenizers.items():
            tok.save(directory / name)
            (directory / name / MANIFEST).write_text(json.dumps({"plugin": self.plugins[name]}))
        self.vocab.save(directory / "vocab.json")

    @classmethod
    def load(cls, directory: str | Path) -> "Modalities":
        directory = Path(directory)
        if not (directory / "vocab.json").is_file():
            raise FileNotFoundError(f"no tokenizers at {directory} (vocab.json missing)")
        saved = Vocabulary.load(directory / "vocab.json")
        tokenizers, plugins = {}, {}
        for name in saved.ranges:
            manifest = directory / name / MANIFEST
            plugins[name] = json.loads(manifest.read_text())["plugin"] if manifest.is_file() else name
            tokenizers[name] = TOKENIZERS.get(plugins[name]).load(directory / name)
        modalities = cls(tokenizers, plugins)
        modalities.vocab.check_same(saved, what=str(directory))
        return modalities

    # -- text in global ids, through the prompt tokenizer ------------------------------------
    def _prompt_tokenizer(self):
        if self.prompt_name is None:
            raise ValueError(f"none of this model's tokenizers ({', '.join(self.tokenizers)}) encodes prompts; "
                             "a text tokenizer plugin sets `prompt = True`")
        return self.tokenizers[self.prompt_name]

    def text_ids(self, text: str) -> list[int]:
        return self.vocab.to_global(self.prompt_name, self._prompt_tokenizer().encode(text))

    def text_from_ids(self, ids) -> str:
        return self._prompt_tokenizer().decode(self.vocab.to_local(self.prompt_name, ids))

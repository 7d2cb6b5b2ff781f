"""Text tokenizer plugin: a sentencepiece unigram model, trained by unio or loaded from a file.

Trained with byte fallback, so any text encodes (unknown characters become UTF-8 byte pieces).
Local ids are sentencepiece's own piece ids (pad 0, eos 1, unk 2, like T5's spiece.model), so a
T5 `spiece.model` a user has on disk works unchanged. `hf_tokenizer()` exposes the same model as
a transformers tokenizer with identical ids.
"""
from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path
from typing import Iterable

import sentencepiece as spm

from unio.registries import register_tokenizer

MODEL_FILE = "spiece.model"


@register_tokenizer("text")
class TextTokenizer:
    order = 0
    prompt = True        # unio encodes prompts (and text answers) with this tokenizer

    def __init__(self, model_file: str | Path):
        model_file = Path(model_file)
        if not model_file.is_file():
            raise FileNotFoundError(f"no sentencepiece model at {model_file}; train one with scripts/train_text_tokenizer.py")
        self.model_bytes = model_file.read_bytes()
        self.sp = spm.SentencePieceProcessor(model_proto=self.model_bytes)
        self.size = self.sp.get_piece_size()

    @classmethod
    def train(cls, texts: Iterable[str], out_dir: str | Path, vocab_size: int = 1000) -> "TextTokenizer":
        """Train a unigram model on `texts` and write `out_dir/spiece.model`."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        texts = [t for t in texts if t.strip()]
        if not texts:
            raise ValueError("cannot train a text tokenizer on no text")
        proto = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=proto, model_type="unigram", vocab_size=vocab_size,
            pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, character_coverage=1.0,
            byte_fallback=True,
            minloglevel=2)
        tmp = out_dir / (MODEL_FILE + ".tmp")
        tmp.write_bytes(proto.getvalue())
        tmp.replace(out_dir / MODEL_FILE)
        return cls(out_dir / MODEL_FILE)

    @classmethod
    def build(cls, corpus, directory: str | Path, vocab_size: int = 1000) -> "TextTokenizer":
        """The tokenizer plugin protocol: learn from the corpus's texts (unio/train/tokenizer_setup.py)."""
        return cls.train(corpus.texts(), directory, vocab_size=vocab_size)

    @classmethod
    def load(cls, directory: str | Path) -> "TextTokenizer":
        return cls(Path(directory) / MODEL_FILE)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MODEL_FILE).write_bytes(self.model_bytes)

    def signature(self) -> str:
        return "spm:" + hashlib.sha256(self.model_bytes).hexdigest()[:16]

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return self.sp.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.size]
        if bad:
            raise ValueError(f"text ids {bad[:5]} are outside 0..{self.size - 1}")
        return self.sp.decode(ids)

    def hf_tokenizer(self, cache_dir: str | Path | None = None):
        """The same model as a transformers tokenizer (sentencepiece backend), ids identical to `encode`."""
        import tempfile
        directory = Path(cache_dir or tempfile.mkdtemp(prefix="unio_spm_"))
        self.save(directory)
        return hf_tokenizer_class().from_pretrained(str(directory))


def hf_tokenizer_class():
    """A transformers tokenizer over spiece.model that runs sentencepiece itself (byte fallback included).

    transformers' T5Tokenizer converts the model to a `tokenizers` graph that drops byte fallback,
    so ids would differ from sentencepiece's on unseen characters; this backend keeps them equal.
    """
    from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

    class UnioTextTokenizer(SentencePieceBackend):
        vocab_files_names = {"vocab_file": MODEL_FILE}
        model_input_names = ["input_ids", "attention_mask"]

        def __init__(self, vocab_file, **kwargs):
            kwargs.setdefault("pad_token", "<pad>")
            kwargs.setdefault("eos_token", "</s>")
            kwargs.setdefault("unk_token", "<unk>")
            super().__init__(vocab_file=vocab_file, legacy=True, **kwargs)

    return UnioTextTokenizer

"""unio: a unified sequence-to-sequence generalist model for vision and language, in plain PyTorch."""
from unio.inference import Result, Runner, caption, depth, load, refexp, run, vqa
from unio.modalities import Modalities
from unio.registries import TASKS, TOKENIZERS, register_task, register_tokenizer
from unio.task import Example, Grammar, Segment
from unio.vocab import Vocabulary, VocabularyMismatch

__version__ = "0.1.0"
__all__ = ["Example", "Grammar", "Modalities", "Result", "Runner", "Segment", "TASKS", "TOKENIZERS",
           "Vocabulary", "VocabularyMismatch", "caption", "depth", "load", "refexp", "register_task",
           "register_tokenizer", "run", "vqa"]

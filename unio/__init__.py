"""unio: a unified sequence-to-sequence generalist model for vision and language, in plain PyTorch."""
from unio.grammar import Grammar, Repeat, Segment
from unio.infer.chain import Step, chain
from unio.infer.hf import register_auto_classes
from unio.infer.processor import UnioProcessor
from unio.infer.runner import Result, Runner, load, run, task_helper
from unio.modalities import Modalities
from unio.registries import SOURCES, TASKS, TOKENIZERS, register_source, register_task, register_tokenizer
from unio.task import Example
from unio.vocab import Vocabulary, VocabularyMismatch

__version__ = "0.2.0.dev0"
register_auto_classes()   # AutoConfig / AutoModelForSeq2SeqLM / AutoProcessor load unio folders
__all__ = ["Example", "Grammar", "Modalities", "Repeat", "Result", "Runner", "SOURCES", "Segment", "Step", "TASKS",
           "TOKENIZERS", "UnioProcessor", "Vocabulary", "VocabularyMismatch", "load", "register_source", "register_task",
           "register_tokenizer", "run", "chain"]


def __getattr__(name: str):
    """Every registered task is a helper: unio.caption(image), unio.vqa(image, question), ...; a task
    may also name its helper otherwise (its `helper` attribute)."""
    if not name.startswith("_") and name in TASKS:
        return task_helper(name)
    named = [t for t in TASKS.names() if getattr(TASKS.get(t), "helper", None) == name] if not name.startswith("_") else []
    if named:
        return task_helper(named[0])
    raise AttributeError(f"module 'unio' has no attribute {name!r}")

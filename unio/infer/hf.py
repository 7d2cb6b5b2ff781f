"""unio in transformers' Auto classes: after `import unio`, AutoConfig, AutoModelForSeq2SeqLM and
AutoProcessor load a saved unio model folder (registered through transformers' own `register`)."""
from __future__ import annotations


def register_auto_classes() -> None:
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoProcessor

    from unio.infer.processor import UnioProcessor
    from unio.model import UnioConfig, UnioModel
    AutoConfig.register(UnioConfig.model_type, UnioConfig, exist_ok=True)
    AutoModelForSeq2SeqLM.register(UnioConfig, UnioModel, exist_ok=True)
    AutoProcessor.register(UnioConfig, UnioProcessor, exist_ok=True)

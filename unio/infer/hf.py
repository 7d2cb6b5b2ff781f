"""unio in transformers' Auto classes: after `import unio`, AutoConfig, AutoModelForSeq2SeqLM,
AutoModelForImageTextToText (so `pipeline("image-text-to-text", model=folder)` finds it) and AutoProcessor
load a saved unio model folder (registered through transformers' own `register`)."""
from __future__ import annotations


def register_auto_classes() -> None:
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoModelForSeq2SeqLM, AutoProcessor

    from unio.infer.processor import UnioProcessor
    from unio.model import UnioConfig, UnioModel
    AutoConfig.register(UnioConfig.model_type, UnioConfig, exist_ok=True)
    AutoModelForSeq2SeqLM.register(UnioConfig, UnioModel, exist_ok=True)
    AutoModelForImageTextToText.register(UnioConfig, UnioModel, exist_ok=True)
    AutoProcessor.register(UnioConfig, UnioProcessor, exist_ok=True)

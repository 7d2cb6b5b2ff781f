"""The two plugin registries. Built-ins load lazily, on first look-up, never at import."""
from unio import plugins
from unio.registry import Registry

TOKENIZERS = Registry("tokenizer", on_first_use=plugins.load_builtin_tokenizers)
TASKS = Registry("task", on_first_use=plugins.load_builtin_tasks)


def register_tokenizer(name: str, obj=None, *, replace: bool = False):
    return TOKENIZERS.register(name, obj, replace=replace)


def register_task(name: str, obj=None, *, replace: bool = False):
    return TASKS.register(name, obj, replace=replace)

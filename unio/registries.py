"""The two plugin registries. Built-ins load lazily, on first look-up, never at import."""
from unio import plugins
from unio.registry import Registry

TOKENIZERS = Registry("tokenizer", on_first_use=plugins.load_builtin_tokenizers)
TASKS = Registry("task", on_first_use=plugins.load_builtin_tasks)


def register_tokenizer(name: str, obj=None, *, replace: bool = False):
    return TOKENIZERS.register(name, obj, replace=replace)


def register_task(name: str, obj=None, *, replace: bool = False):
    """Register a task; a class is registered as one instance (tasks keep caches), and returned as is."""
    if obj is None:
        return lambda o: register_task(name, o, replace=replace)
    TASKS.register(name, obj() if isinstance(obj, type) else obj, replace=replace)
    return obj

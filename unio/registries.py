"""The plugin registries: tokenizers, tasks and data sources. Built-ins load lazily, on first look-up, never at import."""
from unio import plugins
from unio.registry import Registry

TOKENIZERS = Registry("tokenizer", on_first_use=plugins.load_builtin_tokenizers)
TASKS = Registry("task", on_first_use=plugins.load_builtin_tasks)
SOURCES = Registry("source", on_first_use=plugins.load_builtin_sources)


def register_tokenizer(name: str, obj=None, *, replace: bool = False):
    return TOKENIZERS.register(name, obj, replace=replace)


def register_task(name=None, obj=None, *, replace: bool = False):
    """Register a task under its own `name` (`@register_task` on a class, `register_task(task)`), or under
    the name given (`register_task("x", obj)`, `@register_task("x")`); a class is registered as one
    instance (tasks keep caches), and returned as is."""
    if name is None:                                     # @register_task(replace=True)
        return lambda o: register_task(o, replace=replace)
    if not isinstance(name, str):                        # the task itself: it names itself
        name, obj = name.name, name
    if obj is None:
        return lambda o: register_task(name, o, replace=replace)
    TASKS.register(name, obj() if isinstance(obj, type) else obj, replace=replace)
    return obj


def register_source(name: str, obj=None, *, replace: bool = False):
    """Register a source factory: called with its configuration, it returns an object with `splits()`,
    `split(name)` (len + records by index) and `keys` (the record keys it fills)."""
    return SOURCES.register(name, obj, replace=replace)

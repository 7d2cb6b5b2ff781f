"""The plugin registries: tokenizers, tasks and data sources. Built-ins load lazily, on first look-up, never at import."""
from unio import plugins
from unio.registry import Registry

TOKENIZERS = Registry("tokenizer", on_first_use=plugins.load_builtin_tokenizers)
TASKS = Registry("task", on_first_use=plugins.load_builtin_tasks)
SOURCES = Registry("source", on_first_use=plugins.load_builtin_sources)


def register_tokenizer(name: str, obj=None, *, replace: bool = False):
    return TOKENIZERS.register(name, obj, replace=replace)


def register_task(name: str, obj=None, *, replace: bool = False):
    """Register a task; a class is registered as one instance (tasks keep caches), and returned as is."""
    if obj is None:
        return lambda o: register_task(name, o, replace=replace)
    TASKS.register(name, obj() if isinstance(obj, type) else obj, replace=replace)
    return obj


def configure_task(name: str, options: dict):
    """Re-register task `name` as a new instance of its class built with `options` (its constructor's
    keyword arguments, e.g. {"order": "x"} for detection); a key the constructor lacks is an error
    naming the keys it takes. Returns the new instance."""
    import inspect
    task = TASKS.get(name)
    cls = type(task)
    accepted = [p for p in inspect.signature(cls.__init__).parameters.values()
                if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(options) - {p.name for p in accepted})
    if unknown:
        takes = ", ".join(p.name for p in accepted) or "none"
        raise ValueError(f"task {name!r} has no option {unknown[0]!r}; its options: {takes}")
    try:
        configured = cls(**options)
    except (TypeError, ValueError) as error:
        raise ValueError(f"task {name!r}: bad options {options}: {error}") from None
    TASKS.register(name, configured, replace=True)
    return configured


def configure_tasks(options: dict) -> None:
    """{task: {option: value}} -> configure_task for each task."""
    for name, task_options in options.items():
        configure_task(name, task_options)


def parse_task_options(items: list) -> dict:
    """['detection.order=x', 'itm.easy=0.2'] -> {'detection': {'order': 'x'}, 'itm': {'easy': 0.2}}
    (values read as YAML)."""
    import yaml
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        task, dot, option = key.partition(".")
        if not sep or not dot or not task or not option:
            raise ValueError(f"a task option is TASK.OPTION=VALUE, e.g. detection.order=x; got {item!r}")
        out.setdefault(task, {})[option] = yaml.safe_load(value)
    return out


def register_source(name: str, obj=None, *, replace: bool = False):
    """Register a source factory: called with its configuration, it returns an object with `splits()`,
    `split(name)` (len + records by index) and `keys` (the record keys it fills)."""
    return SOURCES.register(name, obj, replace=replace)

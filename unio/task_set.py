"""The tasks one trainer, loaded model or processor uses: the registered tasks, with the ones it was given
options for built anew from their class. Looking a task up here never changes the global registry, so two
models trained with different options for a task answer by their own options in one process."""
from __future__ import annotations

import inspect

from unio.registries import TASKS


def configured_task(name: str, options: dict):
    """A new instance of task `name`'s class built with `options` (its constructor's keyword arguments,
    e.g. {"order": "x"} for detection); a key the constructor lacks is an error naming the keys it takes."""
    cls = type(TASKS.get(name))
    accepted = [p for p in inspect.signature(cls.__init__).parameters.values()
                if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(options) - {p.name for p in accepted})
    if unknown:
        takes = ", ".join(p.name for p in accepted) or "none"
        raise ValueError(f"task {name!r} has no option {unknown[0]!r}; its options: {takes}")
    try:
        return cls(**options)
    except (TypeError, ValueError) as error:
        raise ValueError(f"task {name!r}: bad options {options}: {error}") from None


class TaskSet:
    """{task name: task}: the registry's tasks, and for each task in `options` ({task: {option: value}}) an
    instance of its own. `known_only` drops options of tasks this unio does not have (a loaded model's)."""

    def __init__(self, options: dict | None = None, known_only: bool = False):
        options = {name: dict(o) for name, o in (options or {}).items() if not known_only or name in TASKS}
        self.options = {name: o for name, o in options.items() if o}
        self._own = {name: configured_task(name, o) for name, o in self.options.items()}

    def get(self, name: str):
        return self._own[name] if name in self._own else TASKS.get(name)

    def names(self) -> list:
        return TASKS.names()

    def __contains__(self, name: str) -> bool:
        return name in self._own or name in TASKS

    def __repr__(self) -> str:
        return f"TaskSet(options={self.options})"


def with_source_options(given: dict, pairs, tasks, sources) -> dict:
    """The task options a model saves: `given` ({task: {option: value}}), and for each task of `pairs` ((task,
    source) pairs) with `options_from_sources` what the training splits of its sources tell it (a panoptic
    source's class names), under the options given, which win."""
    options = {name: dict(o) for name, o in given.items()}
    for name in dict.fromkeys(task for task, _ in pairs):
        read = getattr(tasks[name], "options_from_sources", None)
        if read is None:
            continue
        splits = [sources[source].split("train") for task, source in pairs if task == name]
        found = {**read(splits), **options.get(name, {})}
        if found:
            options[name] = found
    return options


def merge_task_options(base: dict, override: dict | None) -> dict:
    """Per-task options of `base` with `override`'s laid over them, task by task and option by option."""
    override = override or {}
    return {t: {**base.get(t, {}), **override.get(t, {})} for t in {*base, *override}}


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

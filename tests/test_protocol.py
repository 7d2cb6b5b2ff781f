"""The task protocol is written down in one place (unio/task.py): every hook the core reads from a task is
either a member of `Task` or in `OPTIONAL_HOOKS`, and every built-in task implements `Task` (or is answered
through another task, `via`)."""
import ast
from pathlib import Path

from conftest import ROOT

from unio.registries import TASKS
from unio.task import OPTIONAL_HOOKS, Task

REQUIRED = {name for name in vars(Task) if not name.startswith("_")} | set(Task.__annotations__)
TASK_LIKE = ("task", "handler", "other")    # the names the core gives the task objects it holds


def hooks_read(path: Path) -> set:
    """The attribute names read from task objects in one module: getattr/hasattr with a literal name, and
    `task.attribute` on a name the core uses for tasks."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
            holder = ast.unparse(node.args[0]).lower()
            if any(word in holder for word in TASK_LIKE) and isinstance(node.args[1], ast.Constant):
                found.add(node.args[1].value)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in TASK_LIKE:
            found.add(node.attr)
    return found


def test_the_core_reads_only_the_written_hooks():
    unlisted = {}
    for path in sorted((Path(ROOT) / "unio").rglob("*.py")):
        extra = hooks_read(path) - REQUIRED - set(OPTIONAL_HOOKS)
        if extra:
            unlisted[str(path.relative_to(ROOT))] = sorted(extra)
    assert not unlisted, f"hooks read from tasks but missing from unio/task.py's protocol: {unlisted}"


def test_the_scan_sees_a_hook_read(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('def f(task, other):\n    return getattr(task, "shiny", 1), other.gleam\n')
    assert hooks_read(module) == {"shiny", "gleam"}


def test_every_builtin_task_implements_the_protocol():
    for name in TASKS.names():
        task = TASKS.get(name)
        missing = sorted(hook for hook in REQUIRED if not hasattr(task, hook))
        assert not missing or getattr(task, "via", None), f"task {name!r} lacks {missing} of the Task protocol"
        assert task.name == name


def test_every_optional_hook_is_used_by_a_builtin_task():
    tasks = [TASKS.get(name) for name in TASKS.names()]
    unused = sorted(hook for hook in OPTIONAL_HOOKS if not any(hasattr(task, hook) for task in tasks))
    assert not unused, f"optional hooks no built-in task has (use them or delete them): {unused}"

"""Finding and loading plugin files.

`tokenizers/` and `tasks/` are plugin folders, not Python packages (a top-level `tokenizers`
package would shadow Hugging Face's). Their files are loaded by path under private module
names. Sources, in order: the built-in folders (checkout or wheel), the entry-point groups
`unio.tokenizers` / `unio.tasks` / `unio.sources`, and any file a user names with `load(path)` / `--plugin`.
Loading a plugin only registers what it defines.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

KINDS = ("tokenizers", "tasks")
_PACKAGE_DIR = Path(__file__).resolve().parent
_loaded: dict[Path, ModuleType] = {}


def _is_checkout(root: Path) -> bool:
    pyproject = root / "pyproject.toml"
    return pyproject.is_file() and 'name = "unio"' in pyproject.read_text()


def builtin_dir(kind: str) -> Path:
    """The folder holding the built-in plugins of `kind` ('tokenizers', 'tasks' or 'configs')."""
    in_wheel = _PACKAGE_DIR / "_builtin" / kind
    if in_wheel.is_dir() and any(in_wheel.iterdir()):
        return in_wheel
    root = _PACKAGE_DIR.parent
    if _is_checkout(root):
        return root / kind
    raise FileNotFoundError(f"unio's built-in {kind}/ folder is missing (looked in {in_wheel} and {root}); reinstall unio")


def load(path: str | Path) -> ModuleType:
    """Load one plugin file by path (idempotent); it registers its tokenizers or tasks."""
    path = Path(path).resolve()
    if path in _loaded:
        return _loaded[path]
    if not path.is_file() or path.suffix != ".py":
        raise FileNotFoundError(f"plugin {path} is not a .py file; pass the path of a plugin file such as tasks/count.py")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    name = f"unio._plugins.{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _loaded[path] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name], _loaded[path]
        raise
    return module


def load_folder(kind: str) -> None:
    for path in sorted(builtin_dir(kind).glob("*.py")):
        load(path)


def load_entry_points(kind: str) -> None:
    for entry_point in importlib.metadata.entry_points(group=f"unio.{kind}"):
        obj = entry_point.load()
        if isinstance(obj, (str, Path)):
            load(obj)


def load_builtin_tokenizers() -> None:
    load_folder("tokenizers")
    load_entry_points("tokenizers")


def load_builtin_tasks() -> None:
    load_folder("tasks")
    load_entry_points("tasks")


def load_builtin_sources() -> None:
    """The world, the generic readers and the official-format readers (unio/data/readers/) live in the core;
    further sources come as entry points (group `unio.sources`: a plugin file's path, or an importable
    object registered on import)."""
    importlib.import_module("unio.data.world.source")
    importlib.import_module("unio.data.sources")
    importlib.import_module("unio.data.readers")
    load_entry_points("sources")

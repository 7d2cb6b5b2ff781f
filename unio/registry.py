"""Named registries for plugins: one for tokenizers, one for tasks.

A registry refuses a duplicate name unless asked to replace it, lists what it has when a
name is unknown, and can register something for the duration of a `with` block (tests).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator


class RegistryError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


class Registry:
    def __init__(self, kind: str, on_first_use: Callable[[], None] | None = None):
        self.kind = kind
        self._items: dict[str, Any] = {}
        self._on_first_use = on_first_use
        self._used = False
        self._lock = threading.RLock()   # threads asking at once all wait for the built-ins

    def _ensure_loaded(self) -> None:
        if self._used:
            return
        with self._lock:
            if not self._used:
                if self._on_first_use is not None:
                    self._on_first_use()
                self._used = True

    def register(self, name: str, obj: Any = None, *, replace: bool = False):
        """Register `obj` under `name`; without `obj`, return a decorator."""
        if obj is None:
            return lambda o: self.register(name, o, replace=replace)
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{self.kind} name must be an identifier like 'my_{self.kind}', got {name!r}")
        if name in self._items and self._items[name] is not obj and not replace:
            raise RegistryError(
                f"a {self.kind} named {name!r} is already registered ({self._items[name]!r}); "
                f"pick another name or pass replace=True")
        self._items[name] = obj
        return obj

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    def get(self, name: str) -> Any:
        self._ensure_loaded()
        if name not in self._items:
            raise RegistryError(f"unknown {self.kind} {name!r}; available: {', '.join(self.names()) or '(none)'}")
        return self._items[name]

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._ensure_loaded()
        return name in self._items

    @contextmanager
    def temporary(self, name: str, obj: Any, *, replace: bool = False) -> Iterator[Any]:
        """Register `obj` for the duration of the block, then restore what was there."""
        self._ensure_loaded()
        previous = self._items.get(name)
        self.register(name, obj, replace=replace)
        try:
            yield obj
        finally:
            if previous is None:
                self._items.pop(name, None)
            else:
                self._items[name] = previous

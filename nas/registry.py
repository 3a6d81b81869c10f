"""Name -> object registries: a dict plus a decorator, loud on duplicates and misses, lazy by module.

A registry may declare names before their objects exist: `declare("nas.controllers.rl", "rl")` says
that importing that module registers "rl". The name is known at once (listings, validation, help),
and the module is imported on the name's first lookup, so a registry is complete whatever was
imported before it and heavy modules (torch, Optuna) load only when used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError, ValueError):
    """A name no registry entry has; the message lists the known names."""

    def __str__(self) -> str:
        return str(self.args[0])  # KeyError would quote the message


class Registry(Generic[T]):
    """Registered objects by name; names declared lazily are imported from their module on first lookup."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._objects: dict[str, T] = {}
        self._modules: dict[str, str] = {}  # declared name -> module whose import registers it

    def declare(self, module: str, *names: str) -> None:
        """Promise that importing module registers these names."""
        for name in names:
            if name in self:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._modules[name] = module

    def add(self, name: str, obj: T) -> T:
        """Register obj under name; a name registered before fails (a declared one is filled in)."""
        if name in self._objects:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._objects[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of add."""
        return lambda obj: self.add(name, obj)

    def declared_module(self, name: str) -> str | None:
        """The module declared to register name, None for a name registered without a declaration."""
        return self._modules.get(name)

    def loaded(self, name: str) -> T | None:
        """name's object if it is already registered, without importing anything."""
        return self._objects.get(name)

    def __getitem__(self, name: str) -> T:
        if name not in self._objects:
            if name not in self._modules:
                raise UnknownName(f"unknown {self.kind} '{name}' (known: {', '.join(self)})")
            importlib.import_module(self._modules[name])
            if name not in self._objects:
                raise ImportError(f"{self._modules[name]} does not register the {self.kind} '{name}'")
        return self._objects[name]

    def __contains__(self, name: object) -> bool:
        return name in self._objects or name in self._modules

    def __iter__(self) -> Iterator[str]:
        """The names, sorted (declared ones included, nothing imported)."""
        return iter(sorted(set(self._objects) | set(self._modules)))

    def __len__(self) -> int:
        return len(set(self._objects) | set(self._modules))

    def items(self) -> list[tuple[str, T]]:
        """Every (name, object), importing what was only declared."""
        return [(name, self[name]) for name in self]

    def values(self) -> list[T]:
        """Every object, importing what was only declared."""
        return [obj for _, obj in self.items()]

    def copy(self) -> Registry[T]:
        """A registry with the same entries and declarations (tests that register into a scratch copy)."""
        twin: Registry[T] = Registry(self.kind)
        twin._objects, twin._modules = dict(self._objects), dict(self._modules)
        return twin

    @contextmanager
    def temporary(self, name: str, obj: T) -> Iterator[T]:
        """Register obj under name for the duration of a with-block (tests, experiments)."""
        self.add(name, obj)
        try:
            yield obj
        finally:
            del self._objects[name]

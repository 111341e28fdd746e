"""Registries of pluggable parts: strategy classes, venue adapters and market-data feeds.

Each entry has a pydantic parameter model, so ``xmc validate`` checks a deployment's
parameters without starting anything, and an optional factory the runtime uses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    name: str
    params: type[BaseModel]
    factory: T | None = None
    doc: str = ""


@dataclass
class Registry(Generic[T]):
    kind: str
    entries: dict[str, Entry[T]] = field(default_factory=dict)

    def register(self, name: str, params: type[BaseModel], factory: T | None = None, doc: str = "") -> None:
        self.entries[name] = Entry(name, params, factory, doc)

    def get(self, name: str) -> Entry[T]:
        _load_builtins()
        try:
            return self.entries[name]
        except KeyError:
            known = ", ".join(sorted(self.entries)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        _load_builtins()
        return sorted(self.entries)


STRATEGIES: Registry[Callable[..., Any]] = Registry("strategy class")
ADAPTERS: Registry[Callable[..., Any]] = Registry("venue adapter")
FEEDS: Registry[Callable[..., Any]] = Registry("feed kind")

_loaded = False


def _load_builtins() -> None:
    """Import the built-in strategies, adapters and feeds once, so they register themselves."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    for mod in ("xmc_actors.strategies", "xmc_actors.venues", "xmc_actors.feeds"):
        importlib.import_module(mod)

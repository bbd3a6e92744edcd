"""A tiny name -> factory registry, shared by models, datasets and distillation methods.

Adding a model, a dataset or a method is one decorated function in one place; the CLI, the
app and the tests all discover it from here (the same idea as timm's ``create_model``).
"""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._meta: dict[str, dict] = {}

    def register(self, name: str, **meta) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            self._meta[name] = meta
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), self._entries, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(self._entries)}"
            ) from None

    def meta(self, name: str) -> dict:
        self.get(name)
        return dict(self._meta[name])

    def name_of(self, obj: object) -> str:
        """The name ``obj`` is registered under (its own name when it is not registered)."""
        return next((n for n, o in self._entries.items() if o is obj), getattr(obj, "__name__", str(obj)))

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

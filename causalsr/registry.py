"""A small explicit registry (after BasicSR's `basicsr/utils/registry.py`).

Usage::

    BACKBONES = Registry("backbone")

    @BACKBONES.register("efficient")
    class EfficientRestorer(nn.Module): ...

    cls = BACKBONES.get("efficient")

Nothing is discovered by scanning modules at import time: a name exists only
once the module defining it has been imported by whoever owns the registry.
Lazy entries (`register_lazy`) name a "module:attr" imported on first `get`,
so optional extras fail only when they are asked for.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any


class Registry:
    """Maps names to objects; duplicate or unknown names raise clear errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Any] = {}
        self._lazy: dict[str, tuple[str, str | None]] = {}

    def register(self, name: str | None = None) -> Callable[[Any], Any]:
        def deco(obj: Any) -> Any:
            self.add(name or obj.__name__, obj)
            return obj

        return deco

    def add(self, name: str, obj: Any) -> None:
        if name in self._items or name in self._lazy:
            raise KeyError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def register_lazy(self, name: str, target: str, extra: str | None = None) -> None:
        """Register "package.module:attr", imported on first use; `extra` names the pip extra it needs."""
        if name in self._items or name in self._lazy:
            raise KeyError(f"{self.kind} {name!r} is already registered")
        self._lazy[name] = (target, extra)

    def get(self, name: str) -> Any:
        if name in self._items:
            return self._items[name]
        if name in self._lazy:
            target, extra = self._lazy[name]
            module, _, attr = target.partition(":")
            try:
                obj = getattr(importlib.import_module(module), attr)
            except ImportError as e:
                hint = f"; install it with: pip install 'causalsr[{extra}]'" if extra else ""
                raise ImportError(f"{self.kind} {name!r} needs a missing package ({e.name}){hint}") from e
            self._items[name] = obj
            return obj
        raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or 'none'}")

    def names(self) -> list[str]:
        return sorted({*self._items, *self._lazy})

    def __contains__(self, name: str) -> bool:
        return name in self._items or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

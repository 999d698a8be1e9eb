"""Typed configuration: dataclasses loaded from YAML, keys equal to constructor arguments.

`load_config(path, overrides)` reads a YAML preset into a dataclass tree and
applies `--set a.b=value` overrides (values parsed as YAML scalars). Unknown
keys are errors, so a typo in a preset never passes silently.

A preset may name another as `base: other.yaml`: it is loaded first and the
preset's sections merge into it. A mapping tagged `!replace` replaces the
base's mapping instead of merging into it (e.g. the backbone arguments of a
different backbone, which must not keep the base backbone's keys).
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override does not match the dataclass it fills."""


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass `cls` from a mapping, recursing into nested dataclass fields."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cast(Any, cls))}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in data.items():
        hint = hints.get(name)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value, f"{where}.{name}" if where else name)
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        elif hint in (float, int) and isinstance(value, str):
            # YAML 1.1 reads "1e-4" as a string; numbers are coerced by the field's type.
            try:
                value = hint(value)
            except ValueError:
                key = f"{where}.{name}" if where else name
                raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r}") from None
        elif hint is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    """Dataclass tree to plain dict (tuples become lists, YAML friendly)."""
    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v

    return conv(obj)


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply `a.b.c=value` strings to a nested dict (value parsed as YAML)."""
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


class Replace(dict):
    """A mapping tagged `!replace` in YAML: it replaces the base preset's mapping instead of merging into it."""


class _Loader(yaml.SafeLoader):
    """yaml.safe_load plus the `!replace` tag."""


_Loader.add_constructor("!replace", lambda loader, node: Replace(loader.construct_mapping(node, deep=True)))


def merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """`child` over `base`, section by section (nested mappings merge, `Replace` ones and other values replace)."""
    out = dict(base)
    for k, v in child.items():
        if isinstance(v, Replace):
            out[k] = dict(v)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def _plain(node: Any) -> Any:
    """`node` with every `Replace` marker turned into a plain dict (the tag only matters while merging)."""
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    return node


def load_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML mapping; a top-level `base: other.yaml` (relative to this file) is loaded first and overridden."""
    path = Path(path)
    if path.resolve() in _seen:
        raise ConfigError(f"{path}: presets inherit from each other in a loop")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or {}  # a SafeLoader subclass
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    base = data.pop("base", None)
    if base is None:
        return _plain(data)
    return _plain(merge(load_yaml(path.parent / str(base), (*_seen, path.resolve())), data))


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Load dataclass `cls` from YAML `path` (or defaults) with `key=value` overrides."""
    data = load_yaml(path) if path is not None else {}
    return from_dict(cls, apply_overrides(data, overrides))

"""Typed configuration: dataclasses filled from YAML files and overridden by flags.

Every component declares its own config dataclass with help text on each field; this module only reads
them, rejecting unknown keys with the list of known ones.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from deepmmsearch.errors import ConfigError

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "config") -> T:
    """Build dataclass ``cls`` from nested dicts; unknown keys and bad values are one clear error."""
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    values = {}
    for name, value in data.items():
        hint = hints[name]
        nested = _dataclass_in(hint)
        if nested and isinstance(value, dict):
            values[name] = from_dict(nested, value, f"{where}.{name}")
        else:
            values[name] = _scalar(hint, value, f"{where}.{name}")
    try:
        return cls(**values)
    except (TypeError, ConfigError) as e:
        raise ConfigError(f"{where}: {e}") from None


def _scalar(hint: Any, value: Any, where: str) -> Any:
    """``value`` checked against a bool, int, float or str field (None passes; other hints are left alone)."""
    kinds = set(typing.get_args(hint)) if isinstance(hint, types.UnionType) else {hint}
    kinds.discard(type(None))
    if value is None or len(kinds) != 1 or (kind := kinds.pop()) not in (bool, int, float, str):
        return value
    if kind is float and isinstance(value, str):
        try:
            return float(value)  # YAML reads 1e-4 (no dot) as a string
        except ValueError:
            pass
    if kind is float:
        fits = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        fits = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))  # True is an int too
    if not fits:
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def _dataclass_in(hint: Any) -> type | None:
    if dataclasses.is_dataclass(hint):
        return hint  # type: ignore[return-value]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next((a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)), None)
    return None


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def load_config(cls: type[T], path: str | Path | None, overrides: dict[str, Any] | None = None) -> T:
    """Read ``cls`` from a YAML file (or defaults), then apply dotted-key overrides such as ``tools.k``."""
    data = load_yaml(path) if path else {}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return from_dict(cls, data, str(path) if path else "config")

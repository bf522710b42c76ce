"""Typed configuration: dataclasses filled from YAML files and overridden by flags, and the cache folder.

Every component declares its own config dataclass with help text on each field; this module only reads
them, rejecting unknown keys with the list of known ones, and lists their fields for the CLI to make flags of.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from deepmmsearch.errors import ConfigError

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "config", base: Any = None) -> T:
    """Build dataclass ``cls`` from nested dicts; unknown keys and bad values are one clear error.

    A key left out keeps ``base``'s value when given, else the field's default; a section given in part keeps the
    rest of its default (a config's own ``lora`` defaults survive ``lora: {rank: 4}``)."""
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    values = {name: getattr(base, name) for name in known} if base is not None else {}
    for name, value in data.items():
        hint = hints[name]
        nested = _dataclass_in(hint)
        if nested and isinstance(value, dict):
            inner = values[name] if name in values else _default(known[name])
            values[name] = from_dict(nested, value, f"{where}.{name}", inner if isinstance(inner, nested) else None)
        else:
            values[name] = _scalar(hint, value, f"{where}.{name}")
    try:
        return cls(**values)
    except (TypeError, ConfigError) as e:
        raise ConfigError(f"{where}: {e}") from None


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


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
    return float(value) if kind is float else value  # YAML's "epochs: 1" is an int: a float field holds 1.0


def _dataclass_in(hint: Any) -> type | None:
    if dataclasses.is_dataclass(hint):
        return hint  # type: ignore[return-value]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next((a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)), None)
    return None


def check_at_least(config: Any, minimum: int, *names: str, section: str = "") -> None:
    """A ConfigError naming ``section.name`` for the first of the ``names`` fields below ``minimum`` (None passes)."""
    for name in names:
        value = getattr(config, name)
        if value is not None and value < minimum:
            raise ConfigError(f"{section + '.' if section else ''}{name} must be at least {minimum}, got {value}")


def check_positive(config: Any, *names: str, section: str) -> None:
    """A ConfigError naming ``section.name`` for the first of the ``names`` fields that is not above 0."""
    for name in names:
        if getattr(config, name) <= 0:
            raise ConfigError(f"{section}.{name} must be positive, got {getattr(config, name)}")


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
    """Read ``cls`` from a YAML file (or defaults), then apply ``overrides``, nested like the YAML (``{"tools":
    {"k": 3}}``); a None value means "not given" and keeps the file's."""
    data = load_yaml(path) if path else {}
    return from_dict(cls, _merged(data, overrides or {}), str(path) if path else "config")


def _merged(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(data)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        elif value is not None:
            merged[key] = value
    return merged


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One scalar field of a config tree, as a flag sees it."""

    path: tuple[str, ...]  # ("tools", "web", "allow_private")
    kind: type  # bool, int, float or str
    help: str
    default: Any
    aliases: tuple[str, ...]  # more flag spellings, from the field's metadata


def leaves(cls: type, prefix: tuple[str, ...] = (), defaults: Any = None) -> list[Leaf]:
    """Every bool, int, float or str field of ``cls`` and of its sections, depth first, with its default as the
    owning config sets it; fields of other types (a mapping, say) are left to YAML."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        default = getattr(defaults, f.name) if defaults is not None else _default(f)
        nested = _dataclass_in(hint)
        if nested is not None:
            found += leaves(nested, (*prefix, f.name), default if isinstance(default, nested) else None)
            continue
        kinds = set(typing.get_args(hint)) if isinstance(hint, types.UnionType) else {hint}
        kinds.discard(type(None))
        if len(kinds) == 1 and (kind := kinds.pop()) in (bool, int, float, str):
            aliases = tuple(f.metadata.get("aliases", ()))
            found.append(Leaf((*prefix, f.name), kind, f.metadata.get("help", ""), default, aliases))
    return found


def cache_dir() -> Path:
    """Where built indexes, caches and fetched models live: ``$DMMS_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/deepmmsearch``, else ``~/.cache/deepmmsearch``."""
    if os.environ.get("DMMS_CACHE_DIR"):
        return Path(os.environ["DMMS_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "deepmmsearch"

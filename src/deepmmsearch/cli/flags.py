"""Flags made from config dataclasses: each field's help, type and default are written once, in its dataclass, as
TRL's ``HfArgumentParser`` reads ``field(metadata={"help": ...})``.

A field's flag is its path in the config, in kebab case: ``--learning-rate`` at the top, ``--tools.web.page-chars``
in a section, ``--hf.guided/--no-hf.guided`` for a bool; ``metadata={"aliases": ("--kb",)}`` adds shorter spellings
(``"--lora/--full"`` names both forms of a bool). Values are converted to the field's type here, and a bad one is a
one-line error that names the flag; the config's own checks then run on the whole.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from deepmmsearch.config import Leaf, leaves, load_config
from deepmmsearch.errors import InputError

_METAVARS = {int: "<int>", float: "<float>", str: "<str>"}


def flag_name(path: Sequence[str]) -> str:
    """The flag of a config field: ``("tools", "web", "page_chars")`` gives ``--tools.web.page-chars``."""
    return "--" + ".".join(part.replace("_", "-") for part in path)


def config_flags(
    cls: type, into: str, yaml: bool = False, only: Sequence[str] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command one flag per field of config ``cls`` (and ``--config FILE`` when ``yaml``); the command
    receives the config, built from the file then the flags, as its parameter ``into``. ``only`` keeps the fields
    under these dotted paths (``"tools.web"``)."""
    fields = [leaf for leaf in leaves(cls) if _kept(leaf, only)]
    missing = [p for p in only if not any(_kept(leaf, (p,)) for leaf in fields)]
    if missing:
        raise TypeError(f"{cls.__name__} has no field {', '.join(missing)}")  # a wiring bug, caught on import
    names = {leaf.path: f"{into}__" + "__".join(leaf.path) for leaf in fields}
    file_param = f"{into}__config_file"

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(command, eval_str=True)
        added = [_parameter(names[leaf.path], leaf) for leaf in fields]
        if yaml:
            option = typer.Option("--config", "-c", help=f"YAML file of {cls.__name__} fields (flags override it).")
            added.insert(0, _keyword(file_param, Annotated[Path | None, option]))
        kept = [p for p in own.parameters.values() if p.name != into]

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            overrides: dict[str, Any] = {}
            for leaf in fields:
                value = kwargs.pop(names[leaf.path])
                if value is not None:
                    _set(overrides, leaf.path, _converted(leaf, value))
            path = kwargs.pop(file_param, None)
            return command(**kwargs, **{into: load_config(cls, path, overrides)})

        wrapper.__signature__ = own.replace(parameters=[*kept, *added])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in [*kept, *added]}
        return wrapper

    return decorate


def _kept(leaf: Leaf, only: Sequence[str]) -> bool:
    return not only or any(leaf.path[: len(p.split("."))] == tuple(p.split(".")) for p in only)


def _parameter(name: str, leaf: Leaf) -> inspect.Parameter:
    flag = flag_name(leaf.path)
    panel = ".".join(leaf.path[:-1]) or None
    text = leaf.help
    if leaf.default not in (None, ""):
        text += f" (default: {leaf.default})"
    if leaf.kind is bool:
        off = "--no-" + flag.removeprefix("--")
        decls = [f"{flag}/{off}", *leaf.aliases]
        option = typer.Option(*decls, help=text, rich_help_panel=panel, show_default=False)
        return _keyword(name, Annotated[bool | None, option])
    option = typer.Option(
        flag, *leaf.aliases, help=text, rich_help_panel=panel, show_default=False, metavar=_METAVARS[leaf.kind]
    )
    return _keyword(name, Annotated[str | None, option])


def _keyword(name: str, annotation: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)


def _converted(leaf: Leaf, value: Any) -> Any:
    """``value`` as the field's type; bools come converted from their on/off flags."""
    if leaf.kind in (bool, str):
        return value
    try:
        return leaf.kind(value)
    except ValueError:
        raise InputError(f"{flag_name(leaf.path)}: expected {leaf.kind.__name__}, got {value!r}") from None


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value

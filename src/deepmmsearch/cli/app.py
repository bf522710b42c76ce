"""The ``dmms`` app, the entry point and the flags and helpers its commands share."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from deepmmsearch.errors import DmmsError

app = typer.Typer(
    name="dmms",
    help="Multimodal search agents in the style of DeepMMSearch-R1: ask, search, build data, train, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from deepmmsearch import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Multimodal search agents in the style of DeepMMSearch-R1."""


def main() -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit, never a traceback."""
    try:
        app()
    except DmmsError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(1)


def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def user_errors(command: Callable) -> Callable:
    """Turn our errors, and file-system errors on paths the user gave (a folder that is a file, no permission, a
    full disk), into one line on stderr and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except DmmsError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None
        except OSError as e:
            where = f": {e.filename}" if e.filename else ""
            typer.echo(f"error: {e.strerror or e}{where}", err=True)
            raise typer.Exit(1) from None

    return wrapper


# ---------------------------------------------------------------------------------------------- shared flags

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="Model SPEC: hf:PATH, vllm:PATH, openai:MODEL\\[@BASE_URL], script:FILE or oracle."
    ),
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML run config (flags override it).")]
TextSearchOpt = Annotated[str | None, typer.Option("--text-search", help="Text search backend.")]
ImageSearchOpt = Annotated[str | None, typer.Option("--image-search", help="Image search backend.")]
GrounderOpt = Annotated[str | None, typer.Option("--grounder", help="Grounding backend for crop search.")]
KbOpt = Annotated[Path | None, typer.Option("--kb", help="Knowledge-base folder for local search backends.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON records instead of text.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Call every search backend afresh.")]
AllowPrivateOpt = Annotated[
    bool,
    typer.Option("--allow-private", help="Let page fetching reach loopback and private addresses (local development)."),
]


@contextlib.contextmanager
def progress_callbacks(description: str) -> Iterator[tuple[Callable[[int, int], None], Callable[[Any], None]]]:
    """A progress bar on stderr, driven by ``on_start(total, already_done)`` and ``on_done(item)`` callbacks."""
    from deepmmsearch.progress import progress_bars

    with progress_bars(transient=True) as bars:
        yield bars.counter(description)


def tool_overrides(
    text_search: str | None = None,
    image_search: str | None = None,
    grounder: str | None = None,
    kb: Path | None = None,
    allow_private: bool = False,
    no_cache: bool = False,
) -> dict[str, Any]:
    """Dotted-key overrides of the ``tools`` section from the shared flags; a flag not given keeps the config's."""
    return {
        "tools.text_search": text_search,
        "tools.image_search": image_search,
        "tools.grounder": grounder,
        "tools.kb": kb,
        "tools.web.allow_private": allow_private or None,
        "tools.no_cache": no_cache or None,
    }


def run_config_from(config: Path | None, **overrides: Any) -> Any:
    from deepmmsearch.config import load_config
    from deepmmsearch.runner import RunConfig

    return load_config(RunConfig, config, {k: (str(v) if isinstance(v, Path) else v) for k, v in overrides.items()})

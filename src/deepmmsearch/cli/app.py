"""The ``dmms`` app, the entry point and the flags and helpers its commands share."""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer

from deepmmsearch.errors import DmmsError

app = typer.Typer(
    name="dmms",
    help="Multimodal search agents in the style of DeepMMSearch-R1: ask, search, build data, train, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # click's plain help: the long config flags wrap instead of being cut
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
    _deepspeed_logs_to_stderr()
    try:
        app()
    except DmmsError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(1)


def _deepspeed_logs_to_stderr() -> None:
    """DeepSpeed's logger writes to stdout (a warning on every run where it is installed and no GPU is seen), and
    stdout is a command's output (``--json``): its records go to stderr."""
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter("[DeepSpeed %(levelname)s] %(message)s"))

    def redirect(record: logging.LogRecord) -> bool:
        stderr.handle(record)
        return False  # not to DeepSpeed's own stdout handler

    logging.getLogger("DeepSpeed").addFilter(redirect)


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
        "--model", "-m", help="Model SPEC: hf:PATH, vllm:PATH, openai:MODEL[@BASE_URL], script:FILE or oracle."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON records instead of text.")]


@contextlib.contextmanager
def progress_callbacks(description: str) -> Iterator[tuple[Callable[[int, int], None], Callable[[Any], None]]]:
    """A progress bar on stderr, driven by ``on_start(total, already_done)`` and ``on_done(item)`` callbacks."""
    from deepmmsearch.progress import progress_bars

    with progress_bars(transient=True) as bars:
        yield bars.counter(description)

"""Progress bars on stderr, so that stdout stays for results and ``--json``: one rich display of named bars."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


class Bars:
    """Named bars in one display; a name's first use adds its bar. Built by :func:`progress_bars`."""

    def __init__(self, progress: Any = None) -> None:
        self._progress = progress  # None: show nothing
        self._tasks: dict[str, Any] = {}

    def update(
        self,
        name: str,
        completed: int | None = None,
        total: int | None = None,
        advance: int = 0,
        note: str | None = None,
    ) -> None:
        """Set a bar's ``completed`` count or ``advance`` it; ``total`` and ``note`` (shown after it) when known."""
        if self._progress is None:
            return
        if name not in self._tasks:
            self._tasks[name] = self._progress.add_task(name, total=total, note="")
        fields: dict[str, Any] = {} if note is None else {"note": note}
        if total is not None:
            fields["total"] = total
        if completed is not None:
            fields["completed"] = completed
        self._progress.update(self._tasks[name], advance=advance or None, **fields)

    def counter(self, name: str) -> tuple[Callable[[int, int], None], Callable[[Any], None]]:
        """``on_start(total, already_done)`` and ``on_done(item)`` callbacks (as evaluations take) for bar ``name``."""
        return (
            lambda total, done: self.update(name, completed=done, total=total),
            lambda _: self.update(name, advance=1),
        )


@contextlib.contextmanager
def progress_bars(show: bool = True, transient: bool = False) -> Iterator[Bars]:
    """A display of bars on stderr for the ``with`` block; ``show=False`` yields bars that draw nothing."""
    if not show:
        yield Bars()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
    )
    with Progress(*columns, console=Console(stderr=True, highlight=False), transient=transient) as progress:
        yield Bars(progress)

"""Building a folder atomically: build beside its final place, then rename it into place.

A reader never sees half a build, a killed build leaves only a hidden ``.NAME.building-XXXX`` sibling that nothing
reads, and of two processes racing to build the same folder, the one that renames first wins.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def build_beside(
    out: str | Path, *, replace: bool = True, complete: Callable[[Path], bool] | None = None
) -> Iterator[Path]:
    """Yield a fresh empty folder beside ``out`` to build into; it becomes ``out`` when the block ends without an
    error, and is removed otherwise.

    An existing ``out`` is replaced (it stays whole until the new build is in place), or, with ``replace=False``,
    kept and the new build discarded. ``complete(out)`` tells whether a folder another process renamed into place
    first is a finished build, to keep instead of failing (default: any folder is).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.building-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        _move_into_place(tmp, out, replace, complete or Path.is_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move_into_place(tmp: Path, out: Path, replace: bool, complete: Callable[[Path], bool]) -> None:
    if not out.exists():
        try:
            os.rename(tmp, out)  # atomic on one file system
        except OSError:
            if not complete(out):
                raise
            # else another process finished the same build first: keep theirs
        return
    if not replace and complete(out):
        return
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(out, old)  # the old build stays whole until the new one is in place
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)

"""``dmms demo``: the whole pipeline on the offline world, end to end, on a CPU."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from deepmmsearch.cli.app import app, stderr_console, user_errors


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder; a re-run reuses finished stages.")] = Path(
        "runs/demo"
    ),
    quick: Annotated[bool, typer.Option("--quick", help="A small smoke run (a few minutes).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the world and of training.")] = 0,
    lm: Annotated[
        str,
        typer.Option(help="The student's language model (smollm2-135m-instruct, a GGUF, a folder, a hub id)."),
    ] = "smollm2-135m-instruct",
) -> None:
    """Build the world and SFT data, align and train the student (SFT, then GRPO), evaluate five systems, print
    the table."""
    from deepmmsearch.demo import COLUMN_LEGEND, DemoConfig, run_demo, table_for_terminal

    console = stderr_console()
    config = DemoConfig.quick(seed, lm=lm) if quick else DemoConfig(seed=seed, lm=lm)
    start = time.perf_counter()
    result = run_demo(out, config, say=lambda line: console.print(line, markup=False))
    title = f"Accuracy (%) on the offline world's test split ({'quick' if quick else 'full'} run)"
    from rich.console import Console

    Console().print(table_for_terminal(result["table"], title))
    typer.echo(COLUMN_LEGEND)
    typer.echo(f"wall time {time.perf_counter() - start:.0f} s · report: {out / 'report.md'}")

"""``dmms doctor``: versions, devices and memory, then one SFT step, a save and reload of ``final/`` and one GRPO
step on a tiny model, each reported ok, failed or skipped."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from deepmmsearch.cli.app import JsonOpt, app, user_errors

GpuOpt = Annotated[bool, typer.Option("--gpu", help="Train on the GPUs and try vLLM rollouts (else on the CPU).")]
DoctorOutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder for its world, data and runs.")]


@app.command("doctor")
@user_errors
def doctor(gpu: GpuOpt = False, out: DoctorOutOpt = Path("runs/doctor"), as_json: JsonOpt = False) -> None:
    """Pre-flight before a long run: what is installed and seen, and whether each training path runs. Under
    `accelerate launch` it checks the launch config's sharding too."""
    from deepmmsearch.doctor import run_doctor

    main = int(os.environ.get("RANK", "0")) == 0  # one report per run, not per process
    report = run_doctor(out, gpu=gpu, say=typer.echo if main and not as_json else lambda _: None)
    if main and as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    if main and not as_json:
        failed = sum(c.status == "failed" for c in report.checks)
        typer.echo("all checks passed" if report.ok else f"{failed} check(s) failed")
    if not report.ok:
        raise typer.Exit(1)

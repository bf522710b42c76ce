"""``dmms data build``: DeepMMSearchVQA-style SFT data from seed questions and a teacher."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from deepmmsearch.cli.app import JsonOpt, app, progress_callbacks, user_errors
from deepmmsearch.cli.flags import config_flags
from deepmmsearch.data.build import DataBuildConfig
from deepmmsearch.runner import RunConfig

data_app = typer.Typer(help="Build training data with a teacher model and the real tools.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("build")
@user_errors
@config_flags(RunConfig, "run", yaml=True)
@config_flags(DataBuildConfig, "build")
def build(
    questions: Annotated[Path, typer.Option("--questions", "-q", help="Seed question records (JSONL).")],
    teacher: Annotated[str, typer.Option("--teacher", help="Teacher SPEC: oracle, openai:..., hf:...")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder; a re-run resumes where it stopped.")],
    build: DataBuildConfig,
    run: RunConfig,
    as_json: JsonOpt = False,
) -> None:
    """Run the teacher, keep its valid and correct episodes, sample them balanced, write the SFT dataset (--workers
    teacher episodes at once; --prompts short for a small model)."""
    from deepmmsearch.data.build import build_data
    from deepmmsearch.records import read_questions

    records = read_questions(questions)
    with progress_callbacks("teacher episodes") as (on_start, on_done):
        stats = asyncio.run(build_data(records, teacher, out, build, run, on_start, on_done))
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    typer.echo(
        f"kept {stats['kept']} of {stats['questions']} ({stats['qualified']} qualified, teacher accuracy "
        f"{stats['teacher_accuracy']}%, {stats['search_required_share']['kept']}% search-required) · "
        f"dataset: {out / 'sft'} · stats: {out / 'stats.md'}"
    )

"""``dmms data build``: DeepMMSearchVQA-style SFT data from seed questions and a teacher."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from deepmmsearch.cli.app import (
    ConfigOpt,
    GrounderOpt,
    ImageSearchOpt,
    JsonOpt,
    KbOpt,
    TextSearchOpt,
    app,
    progress_callbacks,
    run_config_from,
    tool_overrides,
    user_errors,
)

data_app = typer.Typer(help="Build training data with a teacher model and the real tools.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("build")
@user_errors
def build(
    questions: Annotated[Path, typer.Option("--questions", "-q", help="Seed question records (JSONL).")],
    teacher: Annotated[str, typer.Option("--teacher", help="Teacher SPEC: oracle, openai:..., hf:...")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder; a re-run resumes where it stopped.")],
    size: Annotated[
        int | None, typer.Option("--size", help="Conversations to keep (default: all that qualify).")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="Teacher episodes in flight at once.")] = 64,
    search_share: Annotated[float, typer.Option(help="Share of search-required conversations.")] = 0.5,
    classifier: Annotated[
        str | None, typer.Option(help="MODEL\\[@BASE_URL] that labels questions without a category.")
    ] = None,
    prompts: Annotated[
        str | None,
        typer.Option(
            help="Prompt style of the conversations: full (default), or short for a small model (the demo's)."
        ),
    ] = None,
    config: ConfigOpt = None,
    text_search: TextSearchOpt = None,
    image_search: ImageSearchOpt = None,
    grounder: GrounderOpt = None,
    kb: KbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the teacher, keep its valid and correct episodes, sample them balanced, write the SFT dataset."""
    from deepmmsearch.data.build import DataBuildConfig, build_data
    from deepmmsearch.records import read_questions

    if workers < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--workers")
    run_config = run_config_from(
        config,
        **tool_overrides(text_search=text_search, image_search=image_search, grounder=grounder, kb=kb),
        **{"agent.max_concurrent_episodes": workers},
        **({"agent.prompts": prompts} if prompts is not None else {}),
    )
    data_config = DataBuildConfig(size=size, search_share=search_share, classifier=classifier)
    records = read_questions(questions)
    with progress_callbacks("teacher episodes") as (on_start, on_done):
        stats = asyncio.run(build_data(records, teacher, out, data_config, run_config, on_start, on_done))
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    typer.echo(
        f"kept {stats['kept']} of {stats['questions']} ({stats['qualified']} qualified, teacher accuracy "
        f"{stats['teacher_accuracy']}%, {stats['search_required_share']['kept']}% search-required) · "
        f"dataset: {out / 'sft'} · stats: {out / 'stats.md'}"
    )

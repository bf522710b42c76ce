"""``dmms world build``: the offline world, a seeded synthetic web to run every stage on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from deepmmsearch.cli.app import JsonOpt, app, user_errors
from deepmmsearch.cli.flags import config_flags
from deepmmsearch.world.build import WorldConfig

world_app = typer.Typer(help="The offline world: entities, pages, pictures and questions.", no_args_is_help=True)
app.add_typer(world_app, name="world")


@world_app.command("build")
@user_errors
@config_flags(WorldConfig, "world")
def build(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the world into.")],
    world: WorldConfig,
    index: Annotated[bool, typer.Option("--index/--no-index", help="Also build the knowledge base in kb/.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Write a deterministic offline world: questions/{train,dev,test}.jsonl, images/, sources/ and kb/."""
    from deepmmsearch.errors import InputError
    from deepmmsearch.progress import progress_bars
    from deepmmsearch.world.build import build_world, index_world

    if out.exists() and any(out.iterdir()) and not (out / "world.json").is_file():
        raise InputError(f"{out}: exists and is not a world folder; choose an empty or new folder")
    with progress_bars() as bars:
        summary = build_world(
            out,
            world,
            lambda stage, done, total: bars.update(stage, completed=done, total=total),
        )
    if index:
        index_world(out)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        q = summary["questions"]
        typer.echo(
            f"world written to {out}: {summary['entities']} entities, {summary['pages']} pages, "
            f"{q['train']} train / {q['dev']} dev / {q['test']} test questions"
        )

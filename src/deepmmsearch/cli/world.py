"""``dmms world build``: the offline world, a seeded synthetic web to run every stage on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from deepmmsearch.cli.app import JsonOpt, app, user_errors

world_app = typer.Typer(help="The offline world: entities, pages, pictures and questions.", no_args_is_help=True)
app.add_typer(world_app, name="world")


@world_app.command("build")
@user_errors
def build(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the world into.")],
    seed: Annotated[int, typer.Option(help="Same seed, same world, byte for byte.")] = 0,
    entities: Annotated[int, typer.Option(help="Pictured entities (about 6 questions each).")] = 300,
    captions: Annotated[int, typer.Option(help="Captioned pictures to pre-train seeing on (captions.jsonl).")] = 3000,
    index: Annotated[bool, typer.Option("--index/--no-index", help="Also build the knowledge base in kb/.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Write a deterministic offline world: questions/{train,dev,test}.jsonl, images/, sources/ and kb/."""
    from deepmmsearch.errors import InputError
    from deepmmsearch.progress import progress_bars
    from deepmmsearch.world.build import WorldConfig, build_world, index_world

    if entities < 12:
        raise InputError("--entities must be at least 12 (two per category)")
    if captions < 0:
        raise InputError("--captions must not be negative")
    if out.exists() and any(out.iterdir()) and not (out / "world.json").is_file():
        raise InputError(f"{out}: exists and is not a world folder; choose an empty or new folder")
    with progress_bars() as bars:
        summary = build_world(
            out,
            WorldConfig(seed=seed, entities=entities, captions=captions),
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

"""``dmms kb``: build knowledge bases for the local search engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from deepmmsearch.cli.app import JsonOpt, app, stderr_console, user_errors

kb_app = typer.Typer(help="Build knowledge bases for the local search engine.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")


@kb_app.command("build")
@user_errors
def kb_build(
    text: Annotated[Path, typer.Option("--text", help="Pages JSONL: id, url, title, text per line.")],
    out: Annotated[Path, typer.Option("--out", help="Knowledge-base folder to create or replace.")],
    images: Annotated[
        Path | None, typer.Option("--images", help="Images JSONL: id, path, page_url, title, description.")
    ] = None,
    max_words: Annotated[int, typer.Option(min=20, help="Longest passage, in words.")] = 160,
    max_tokens: Annotated[
        int, typer.Option(min=16, max=256, help="Word pieces of each passage the embedder reads (cost grows with it).")
    ] = 128,
    as_json: JsonOpt = False,
) -> None:
    """Chunk pages into passages and build the BM25, dense and (with --images) image indexes."""
    from deepmmsearch.engine.kb import build_kb

    manifest = build_kb(text, out, images, max_words=max_words, max_tokens=max_tokens)
    if as_json:
        typer.echo(json.dumps({"out": str(out), **manifest}, indent=2))
        return
    stderr_console().print(
        f"built {out}: {manifest['pages']} pages, {manifest['passages']} passages, {manifest['images']} images "
        f"in {manifest['build_s']:.1f} s ({manifest['reused_vectors']} vectors reused)"
    )

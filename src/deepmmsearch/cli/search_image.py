"""``dmms search image``: reverse image search on an image or on a region named by a referring expression."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from deepmmsearch.cli.app import GrounderOpt, ImageSearchOpt, JsonOpt, KbOpt, stderr_console, user_errors
from deepmmsearch.cli.search import AllowPrivateOpt, ConfigOpt, NoCacheOpt, footer, run_tool, search_app, tools_config


@search_app.command("image")
@user_errors
def search_image(
    image: Annotated[str, typer.Argument(help="Image path or http(s) URL.")],
    crop: Annotated[
        str | None, typer.Option("--crop", help='Search only the region this names, e.g. "the red logo on the left".')
    ] = None,
    k: Annotated[int | None, typer.Option("-k", "--k", min=1, help="How many images (default: tools.k).")] = None,
    kb: KbOpt = None,
    image_search: ImageSearchOpt = None,
    grounder: GrounderOpt = None,
    config: ConfigOpt = None,
    allow_private: AllowPrivateOpt = False,
    no_cache: NoCacheOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Find the pages whose images look most like IMAGE (or the --crop region of it), with the image search
    backend the agent would use: titles, pages, scores."""
    tools = tools_config(
        config,
        image_search=image_search,
        grounder=grounder,
        kb=kb,
        allow_private=allow_private,
        no_cache=no_cache,
        k=k,
        summarizer="list",  # the hits are printed, not a summary of them
    )
    result = run_tool(tools, crop or "", image)
    if as_json:
        record = {
            "image": image,
            "crop": crop,
            "box": result.box,
            "backend": tools.image_search,
            "k": tools.k,
            "cached": result.cached,
            "hits": result.sources,
        }
        typer.echo(json.dumps(record, ensure_ascii=False, indent=2))
        return
    from rich.markup import escape

    console = stderr_console()
    if crop:
        where = f"box {result.box}" if result.box else "not found; searched the whole image"
        console.print(f"[dim]crop {escape(crop)!r}: {escape(where)}[/]")
    for i, hit in enumerate(result.sources, 1):
        score = f"  score={hit['score']:.3f}" if hit["score"] is not None else ""
        typer.echo(f"{i}. {hit['title']}  ({hit['url']}){score}")
        if hit["description"]:
            typer.echo(f"   {' '.join(hit['description'].split())[:240]}")
    console.print(footer(result, escape(tools.image_search)))

"""``dmms search image``: reverse image search on an image or on a region named by a referring expression."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from deepmmsearch.cli.app import JsonOpt, stderr_console, user_errors
from deepmmsearch.cli.flags import config_flags
from deepmmsearch.cli.search import IMAGE_TOOL_FLAGS, footer, run_tool, search_app, with_own_options
from deepmmsearch.runner import RunConfig


@search_app.command("image")
@user_errors
@config_flags(RunConfig, "run", yaml=True, only=IMAGE_TOOL_FLAGS)
def search_image(
    image: Annotated[str, typer.Argument(help="Image path or http(s) URL.")],
    run: RunConfig,
    crop: Annotated[
        str | None, typer.Option("--crop", help='Search only the region this names, e.g. "the red logo on the left".')
    ] = None,
    k: Annotated[int | None, typer.Option("-k", "--k", min=1, help="How many images (default: tools.k).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Find the pages whose images look most like IMAGE (or the --crop region of it), with the image search
    backend the agent would use: titles, pages, scores."""
    tools = with_own_options(run, k=k, summarizer="list")  # the hits are printed, not a summary of them
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

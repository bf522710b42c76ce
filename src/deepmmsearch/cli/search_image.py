"""``dmms search image``: reverse image search on an image or on a region named by a referring expression."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from deepmmsearch.cli.app import GrounderOpt, ImageSearchOpt, JsonOpt, KbOpt, stderr_console, user_errors
from deepmmsearch.cli.search import search_app


@search_app.command("image")
@user_errors
def search_image(
    image: Annotated[str, typer.Argument(help="Image path or http(s) URL.")],
    crop: Annotated[
        str | None, typer.Option("--crop", help='Search only the region this names, e.g. "the red logo on the left".')
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="How many images.")] = 5,
    kb: KbOpt = None,
    image_search: ImageSearchOpt = None,
    grounder: GrounderOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find the knowledge base's images most like IMAGE (or the --crop region of it): titles, pages, scores."""
    import asyncio

    from deepmmsearch.errors import ToolError
    from deepmmsearch.images import load_image
    from deepmmsearch.tools import GROUNDERS, IMAGE_SEARCH_BACKENDS, ToolsConfig, _pick

    config = ToolsConfig(
        image_search=image_search or "local", grounder=grounder or "local", kb=str(kb) if kb else None, k=k
    )
    picture = load_image(image)
    backend = _pick(IMAGE_SEARCH_BACKENDS, "image search", config.image_search, config)
    box = None
    query, image_ref = picture, image
    start = time.perf_counter()
    if crop:
        box = asyncio.run(_pick(GROUNDERS, "grounding", config.grounder, config).ground(picture, crop))
        box = box.clip(*picture.size) if box else None
        if box is not None:
            query, image_ref = picture.crop(tuple(box.as_list())), None
    try:
        hits = asyncio.run(backend.search(query, k, image_ref))
    except ToolError as e:
        raise ToolError(f"image search failed: {e}") from None
    elapsed_ms = (time.perf_counter() - start) * 1000

    if as_json:
        record = {
            "image": image,
            "crop": crop,
            "box": box.as_list() if box else None,
            "k": k,
            "hits": [h.to_source() for h in hits],
        }
        typer.echo(json.dumps(record, ensure_ascii=False, indent=2))
        return
    console = stderr_console()
    if crop:
        from rich.markup import escape

        where = f"box {box.as_list()} ({box.label})" if box else "not found; searched the whole image"
        console.print(f"[dim]crop {escape(crop)!r}: {escape(where)}[/]")
    for i, hit in enumerate(hits, 1):
        score = f"  score={hit.score:.3f}" if hit.score is not None else ""
        typer.echo(f"{i}. {hit.title}  ({hit.url}){score}")
        if hit.description:
            typer.echo(f"   {' '.join(hit.description.split())[:240]}")
    console.print(f"[dim]{len(hits)} hits · {config.image_search} · {elapsed_ms:.0f} ms (index opening included)[/]")

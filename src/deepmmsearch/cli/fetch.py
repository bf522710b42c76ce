"""``dmms fetch``: what the text-search tool would read from one page, fetched under the same rules."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Annotated

import typer

from deepmmsearch.cli.app import JsonOpt, app, user_errors
from deepmmsearch.cli.flags import config_flags
from deepmmsearch.runner import RunConfig


@app.command()
@user_errors
@config_flags(RunConfig, "run", yaml=True, only=("tools.web",))
def fetch(
    url: Annotated[str, typer.Argument(help="The http(s) URL of the page.")],
    run: RunConfig,
    max_chars: Annotated[
        int | None, typer.Option(help="Characters of text to show (default: tools.web.page_chars).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fetch one page safely and print its main text, as the text-search tool would read it."""
    from deepmmsearch.web.fetch import PageFetcher

    web = run.tools.web
    page = asyncio.run(PageFetcher(web).fetch(url))
    limit = max_chars if max_chars is not None else web.page_chars
    text = page.text if len(page.text) <= limit else page.text[:limit] + " ..."
    if as_json:
        typer.echo(json.dumps({**asdict(page), "text": text}, ensure_ascii=False, indent=2))
        return
    typer.echo(f"{page.title or '(no title)'}\n{page.url}")
    if page.redirects:
        typer.echo(f"(redirected {len(page.redirects)} time(s) from {page.requested_url})")
    truncated = ", truncated" if page.truncated else ""
    typer.echo(f"({page.content_type or 'unknown type'}, {page.bytes_read} bytes{truncated})\n\n{text}")

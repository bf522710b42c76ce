"""``dmms search``: the search tools on their own, as the agent would call them."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from deepmmsearch.cli.app import JsonOpt, KbOpt, app, stderr_console, user_errors

search_app = typer.Typer(help="Run a search tool directly: text search or reverse image search.", no_args_is_help=True)
app.add_typer(search_app, name="search")


# ---------------------------------------------------------------------------------------------- text


@search_app.command("text")
@user_errors
def search_text(
    query: Annotated[str, typer.Argument(help="What to search for.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="How many passages.")] = 5,
    kb: KbOpt = None,
    mode: Annotated[str, typer.Option("--mode", help="Retrieval: hybrid, bm25 or dense.")] = "hybrid",
    summarize: Annotated[
        bool, typer.Option("--summarize", help="Also print the extractive summary the agent would read.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Search the local knowledge base (default: the Wikipedia intros, indexed on first use)."""
    import asyncio

    from deepmmsearch.tools.local import LocalTextSearch

    backend = LocalTextSearch(kb, mode)
    start = time.perf_counter()
    hits = asyncio.run(backend.search(query, k))
    elapsed_ms = (time.perf_counter() - start) * 1000
    summary = None
    if summarize and hits:
        from deepmmsearch.tools.summarize import ExtractiveSummarizer

        summary = asyncio.run(ExtractiveSummarizer().summarize_text(query, query, hits))
    if as_json:
        record = {"query": query, "mode": mode, "k": k, "hits": [h.to_source() for h in hits]}
        if summary is not None:
            record["summary"] = summary
        typer.echo(json.dumps(record, ensure_ascii=False, indent=2))
        return
    from rich.markup import escape

    console = stderr_console()
    for i, hit in enumerate(hits, 1):
        snippet = " ".join(hit.text.split())
        snippet = snippet if len(snippet) <= 240 else snippet[:237].rsplit(" ", 1)[0] + "..."
        typer.echo(f"{i}. {hit.title}  ({hit.url})  score={hit.score:.4g}\n   {snippet}")
    if summary is not None:
        typer.echo(f"\nSummary:\n{summary}")
    console.print(f"[dim]{len(hits)} hits · {mode} · {elapsed_ms:.0f} ms (index opening included)[/]")
    if not hits:
        console.print(f"no passage matches {escape(query)!r}")

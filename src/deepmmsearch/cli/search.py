"""``dmms search``: the search tools on their own, called through the toolbox as the agent calls them (the
same backends, cache and timeout)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from deepmmsearch.cli.app import JsonOpt, KbOpt, app, stderr_console, user_errors

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML run config (flags override it).")]
TextSearchOpt = Annotated[str | None, typer.Option("--text-search", help="Text search backend.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Call every search backend afresh.")]
AllowPrivateOpt = Annotated[
    bool,
    typer.Option("--allow-private", help="Let page fetching reach loopback and private addresses (local development)."),
]

search_app = typer.Typer(help="Run a search tool directly: text search or reverse image search.", no_args_is_help=True)
app.add_typer(search_app, name="search")


def run_tool(tools: Any, query: str, image: str | None = None) -> Any:
    """One tool action through a toolbox of only the backends it needs: text search without ``image``, image
    search with it (crop search when ``query`` names a region). A failed call is a ToolError naming the tool."""
    import asyncio

    from deepmmsearch.errors import ToolError
    from deepmmsearch.images import load_image
    from deepmmsearch.protocol import Action, ActionKind
    from deepmmsearch.tools import build_toolbox

    if image is None:
        kind, picture = ActionKind.TEXT_SEARCH, None
    else:
        kind, picture = (ActionKind.CROP_SEARCH if query else ActionKind.IMAGE_SEARCH), load_image(image)
    toolbox = build_toolbox(tools, [kind])
    result = asyncio.run(toolbox.run(Action(kind, query), query, picture, image))
    if result.error:
        raise ToolError(f"{kind.value} with {result.backend}: {result.error}")
    return result


def tools_config(config: Path | None, **tools: Any) -> Any:
    """The run config's ``tools`` section from ``config`` and the given flags (None: not given)."""
    from deepmmsearch.config import load_config
    from deepmmsearch.runner import RunConfig

    given = {k: (str(v) if isinstance(v, Path) else v) for k, v in tools.items()}
    web = {"allow_private": given.pop("allow_private", None) or None}
    given["no_cache"] = given.pop("no_cache", None) or None
    return load_config(RunConfig, config, {"tools": {**given, "web": web}}).tools


def footer(result: Any, backend: str) -> str:
    """The dim last line: how many hits, from what, how fast, and whether the cache answered."""
    cached = " · from the cache" if result.cached else ""
    return f"[dim]{len(result.sources)} hits · {backend} · {result.latency_s * 1000:.0f} ms{cached}[/]"


# ---------------------------------------------------------------------------------------------- text


@search_app.command("text")
@user_errors
def search_text(
    query: Annotated[str, typer.Argument(help="What to search for.")],
    k: Annotated[int | None, typer.Option("-k", "--k", min=1, help="How many passages (default: tools.k).")] = None,
    text_search: TextSearchOpt = None,
    kb: KbOpt = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="Local retrieval: hybrid, bm25 or dense (default: hybrid).")
    ] = None,
    summarize: Annotated[
        bool, typer.Option("--summarize", help="Also print the summary the agent would read (tools.summarizer).")
    ] = False,
    config: ConfigOpt = None,
    allow_private: AllowPrivateOpt = False,
    no_cache: NoCacheOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Text search with the backend the agent would use (default: local, over the Wikipedia intros indexed on
    first use; --text-search brave, serpapi, ... for the web)."""
    # Without --summarize the list summarizer costs nothing; its text is not printed.
    summarizer = None if summarize else "list"
    tools = tools_config(
        config,
        text_search=text_search,
        kb=kb,
        allow_private=allow_private,
        no_cache=no_cache,
        k=k,
        retrieval=mode,
        summarizer=summarizer,
    )
    result = run_tool(tools, query)
    backend = f"{tools.text_search} ({tools.retrieval})" if tools.text_search == "local" else tools.text_search
    summary = result.observation if summarize and result.sources else None
    if as_json:
        record = {"query": query, "backend": tools.text_search, "k": tools.k, "cached": result.cached}
        record["hits"] = result.sources
        if tools.text_search == "local":
            record["mode"] = tools.retrieval
        if summary is not None:
            record["summary"] = summary
        typer.echo(json.dumps(record, ensure_ascii=False, indent=2))
        return
    from rich.markup import escape

    for i, hit in enumerate(result.sources, 1):
        snippet = " ".join(hit["text"].split())
        snippet = snippet if len(snippet) <= 240 else snippet[:237].rsplit(" ", 1)[0] + "..."
        score = f"  score={hit['score']:.4g}" if hit["score"] is not None else ""
        typer.echo(f"{i}. {hit['title']}  ({hit['url']}){score}\n   {snippet}")
    if summary is not None:
        typer.echo(f"\nSummary:\n{summary}")
    console = stderr_console()
    console.print(footer(result, escape(backend)))
    if not result.sources:
        console.print(f"no passage matches {escape(query)!r}")

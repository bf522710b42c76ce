"""``dmms search``: the search tools on their own, called through the toolbox as the agent calls them (the
same backends, cache and timeout)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated, Any

import typer

from deepmmsearch.cli.app import JsonOpt, app, stderr_console, user_errors
from deepmmsearch.cli.flags import config_flags
from deepmmsearch.runner import RunConfig

# The tool settings a search reads, as flags made from ToolsConfig; -k and --mode stay the commands' own options.
SHARED_TOOL_FLAGS = (
    "tools.kb",
    "tools.timeout_s",
    "tools.cache_path",
    "tools.cache_ttl_s",
    "tools.no_cache",
    "tools.web",
)
TEXT_TOOL_FLAGS = ("tools.text_search", "tools.summarizer", "tools.summarizer_model", *SHARED_TOOL_FLAGS)
IMAGE_TOOL_FLAGS = ("tools.image_search", "tools.grounder", "tools.grounder_model", *SHARED_TOOL_FLAGS)

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


def with_own_options(run: RunConfig, **changes: Any) -> Any:
    """The run config's ``tools`` section with the command's own options that were given (None: not given)."""
    return replace(run.tools, **{key: value for key, value in changes.items() if value is not None})


def footer(result: Any, backend: str) -> str:
    """The dim last line: how many hits, from what, how fast, and whether the cache answered."""
    cached = " · from the cache" if result.cached else ""
    return f"[dim]{len(result.sources)} hits · {backend} · {result.latency_s * 1000:.0f} ms{cached}[/]"


# ---------------------------------------------------------------------------------------------- text


@search_app.command("text")
@user_errors
@config_flags(RunConfig, "run", yaml=True, only=TEXT_TOOL_FLAGS)
def search_text(
    query: Annotated[str, typer.Argument(help="What to search for.")],
    run: RunConfig,
    k: Annotated[int | None, typer.Option("-k", "--k", min=1, help="How many passages (default: tools.k).")] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="Local retrieval: hybrid, bm25 or dense (default: tools.retrieval).")
    ] = None,
    summarize: Annotated[
        bool, typer.Option("--summarize", help="Also print the summary the agent would read (tools.summarizer).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Text search with the backend the agent would use (default: local, over the Wikipedia intros indexed on
    first use; --text-search brave, serpapi, ... for the web)."""
    # Without --summarize the list summarizer costs nothing; its text is not printed.
    tools = with_own_options(run, k=k, retrieval=mode, summarizer=None if summarize else "list")
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

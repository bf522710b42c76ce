"""``dmms search``: the search tools on their own, as the agent would call them."""

from __future__ import annotations

import typer

from deepmmsearch.cli.app import app

search_app = typer.Typer(help="Run a search tool directly: text search or reverse image search.", no_args_is_help=True)
app.add_typer(search_app, name="search")

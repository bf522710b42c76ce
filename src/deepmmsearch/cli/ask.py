"""``dmms ask``: one question about one image, answered by the agent."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from deepmmsearch.cli.app import JsonOpt, ModelOpt, app, stderr_console, user_errors
from deepmmsearch.cli.flags import config_flags
from deepmmsearch.errors import DmmsError
from deepmmsearch.runner import RunConfig

# ---------------------------------------------------------------------------------------------- ask


@app.command()
@user_errors
@config_flags(RunConfig, "run", yaml=True)
def ask(
    image: Annotated[str, typer.Argument(help="Image path or http(s) URL.")],
    question: Annotated[str, typer.Argument(help="The question about the image.")],
    run: RunConfig,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question about an image, searching as needed; prints the answer (--json: the trajectory)."""
    from deepmmsearch.protocol import StopReason
    from deepmmsearch.runner import ask as run_ask

    if not model:
        raise typer.BadParameter("give a model SPEC, e.g. --model openai:gpt-4o", param_hint="--model")
    trajectory = asyncio.run(run_ask(image, question, model, run))
    if as_json:
        typer.echo(json.dumps(trajectory.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_steps(trajectory)
    if trajectory.stop_reason == StopReason.POLICY_ERROR:
        raise DmmsError(trajectory.error or "the model failed")
    if not as_json:
        typer.echo(trajectory.answer if trajectory.answer is not None else f"(no answer: {trajectory.stop_reason})")


def _print_steps(trajectory: Any) -> None:
    """A readable trace of the episode on stderr; stdout keeps only the answer, for scripts."""
    from rich.markup import escape

    console = stderr_console()
    for message in trajectory.messages:
        if message.role == "assistant":
            if message.error:
                console.print(f"[red]✗ invalid reply[/]: {escape(message.error)}")
            elif message.action is not None:
                action = message.action
                console.print(f"[dim]reason:[/] {escape(action.reason[:300])}")
                if action.kind.is_tool:
                    what = action.query or "(whole image)"
                    console.print(f"[cyan]→ {action.kind.value}[/] {escape(what)}")
        elif message.tool is not None:
            tool = message.tool
            box = f" box={tool.box}" if tool.box else ""
            first = tool.observation.strip().splitlines()[0] if tool.observation.strip() else ""
            status = "[red]failed[/]" if tool.error else f"{len(tool.sources)} hits"
            console.print(
                f"[green]← {tool.tool}[/] {status}{box} {tool.latency_s * 1000:.0f} ms: {escape(first[:160])}"
            )
    calls = ", ".join(f"{k}={v}" for k, v in trajectory.tool_calls.items()) or "none"
    console.print(
        f"[dim]stop: {trajectory.stop_reason} · turns: {trajectory.turns} · tool calls: {calls} · "
        f"{trajectory.timings.get('total_s', 0):.2f} s[/]"
    )

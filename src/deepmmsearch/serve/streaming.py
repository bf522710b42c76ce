"""Streaming: trajectory messages become steps, and steps become server-sent ``chat.completion.chunk`` events.

The agent calls a hook synchronously right after each message is added; the hook only puts the message
on an :class:`asyncio.Queue`, and the response generator turns what it takes off the queue into chunks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from deepmmsearch.protocol import StopReason
from deepmmsearch.records import Message, Trajectory
from deepmmsearch.serve.schemas import chunk, error_body, finish_reason, usage

_MAX_TEXT = 4000  # per step field: a page of text is plenty to watch; the full text is in the trajectory


def message_steps(message: Message) -> list[dict[str, Any]]:
    """The steps a client sees for one message: reasoning, a search, its result, an answer, an invalid reply.

    Prompts the agent writes (system prompt, instructions, error feedback) are not steps.
    """
    if message.role == "assistant":
        if message.error is not None or message.action is None:
            return [{"type": "invalid", "error": message.error or "", "text": message.text[:_MAX_TEXT]}]
        action = message.action
        steps: list[dict[str, Any]] = []
        if action.reason:
            steps.append({"type": "reasoning", "text": action.reason[:_MAX_TEXT]})
        if action.kind.is_tool:
            steps.append({"type": "search", "tool": action.kind.value, "query": action.query})
        else:
            steps.append({"type": "answer", "text": action.query})
        return steps
    if message.role == "user" and message.tool is not None:
        tool = message.tool
        return [
            {
                "type": "result",
                "tool": tool.tool,
                "query": tool.query,
                "backend": tool.backend,
                "box": tool.box,
                "observation": tool.observation[:_MAX_TEXT],
                "sources": [{"title": s.get("title", ""), "url": s.get("url", "")} for s in tool.sources],
                "error": tool.error,
                "latency_ms": round(tool.latency_s * 1000, 1),
            }
        ]
    return []


def end_step(trajectory: Trajectory) -> dict[str, Any]:
    """The last step: how the episode ended and what it cost."""
    return {
        "type": "end",
        "stop_reason": trajectory.stop_reason,
        "answer": trajectory.answer,
        "error": trajectory.error,
        "turns": trajectory.turns,
        "tool_calls": dict(trajectory.tool_calls),
        "timings": {k: round(v, 4) for k, v in trajectory.timings.items()},
    }


def sse(data: dict[str, Any] | str) -> str:
    """One server-sent event line in the form OpenAI streams use."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n"


Episode = Callable[[Callable[[Trajectory, Message], None]], Awaitable[Trajectory]]


async def stream_episode(
    episode: Episode,
    completion_id: str,
    model: str,
    timeout_s: float,
    on_close: Callable[[], None],
    include_usage: bool = False,
) -> AsyncIterator[str]:
    """Run ``episode`` (given the message hook) and yield its steps as SSE chunks, ending with ``[DONE]``.

    A policy failure or running past ``timeout_s`` ends the stream with an OpenAI-style error event, which
    the official client raises as an error. ``on_close`` runs however the stream ends, a client that
    disconnects included, and the episode is cancelled if it is still running. ``include_usage`` adds the
    token counts as a last chunk with no choices (``stream_options.include_usage``).
    """
    created = int(time.time())
    queue: asyncio.Queue[Message | None] = asyncio.Queue()  # bounded in practice by the episode's turn limit

    async def run() -> Trajectory:
        async with asyncio.timeout(timeout_s):
            return await episode(lambda _trajectory, message: queue.put_nowait(message))

    task: asyncio.Task[Trajectory] | None = None
    try:
        task = asyncio.create_task(run())
        task.add_done_callback(lambda _: queue.put_nowait(None))
        yield sse(chunk(completion_id, model, created, {"role": "assistant", "content": ""}))
        while (message := await queue.get()) is not None:
            for step in message_steps(message):
                delta = {"content": step["text"]} if step["type"] == "answer" else {}
                yield sse(chunk(completion_id, model, created, delta, step=step))
        try:
            trajectory = task.result()
        except TimeoutError:
            yield sse(error_body(f"the agent did not finish within {timeout_s:g} s", "timeout", "timeout"))
            yield sse("[DONE]")
            return
        end = end_step(trajectory)
        if trajectory.stop_reason == StopReason.POLICY_ERROR:
            yield sse(chunk(completion_id, model, created, {}, step=end))
            yield sse(error_body(f"the model failed: {trajectory.error}", "server_error", "policy_error"))
            yield sse("[DONE]")
            return
        yield sse(chunk(completion_id, model, created, {}, step=end, finish=finish_reason(trajectory)))
        if include_usage:  # as OpenAI does: only when asked, since naive clients read choices[0] of every chunk
            yield sse(chunk(completion_id, model, created, {}, usage_=usage(trajectory)) | {"choices": []})
        yield sse("[DONE]")
    finally:
        if task is not None and not task.done():
            task.cancel()
        on_close()

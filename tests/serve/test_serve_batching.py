"""Concurrent requests to the server share one generation batcher: their turns reach the model together."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx

from deepmmsearch.agent import AgentConfig
from deepmmsearch.policies.base import Conversation, Generation, Policy
from deepmmsearch.serve.app import create_app, serve_in_thread


class CountingPolicy(Policy):
    """The scripted policy, recording how many conversations each generate call was given."""

    max_batch_size = 2

    def __init__(self, inner: Policy) -> None:
        self.inner, self.name, self.batches = inner, inner.name, []

    async def generate(self, conversations: Sequence[Conversation]) -> list[Generation]:
        self.batches.append(len(conversations))
        return await self.inner.generate(conversations)


async def _two_at_once(base: str, messages: list[dict]) -> list[httpx.Response]:
    body = {"model": "m", "messages": messages}
    async with httpx.AsyncClient(timeout=30) as http:
        return await asyncio.gather(*(http.post(f"{base}/v1/chat/completions", json=body) for _ in range(2)))


def test_two_concurrent_requests_are_batched_into_one_generate_call(make_agent, messages: list[dict]) -> None:
    agent = make_agent()
    policy = agent.policy = CountingPolicy(agent.policy)
    # A lone request would wait 5 s for company; a full batch of 2 goes at once. A batcher per request would
    # therefore show six calls of one conversation, and take 15 s.
    agent.config = AgentConfig(batch_window_s=5.0)
    with serve_in_thread(create_app(agent)) as base:
        responses = asyncio.run(_two_at_once(base, messages))
    assert [r.status_code for r in responses] == [200, 200]
    assert [r.json()["choices"][0]["message"]["content"] for r in responses] == ["38 metres", "38 metres"]
    assert policy.batches == [2, 2, 2]  # each of the three turns of both episodes in one call

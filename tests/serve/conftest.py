"""Fixtures for the server tests: an agent that replays a crop-search episode over the example KB, and a
factory that serves it with uvicorn in a thread on 127.0.0.1 (an ephemeral port)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from deepmmsearch.agent import Agent, AgentConfig
from deepmmsearch.policies.base import Conversation, Generation, Policy
from deepmmsearch.policies.scripted import ScriptedPolicy
from deepmmsearch.records import Box
from deepmmsearch.serve import ServeConfig
from deepmmsearch.serve.app import create_app, serve_in_thread
from deepmmsearch.tools import Toolbox
from deepmmsearch.tools.memory import ListSummarizer, MemoryGrounder, MemoryImageSearch, MemoryTextSearch

CROP = Box(120, 30, 200, 220)  # inside the 320x240 example photo
SCRIPT = [
    "<reason>The tower may be a known lighthouse; I will search with a crop of it.</reason>\n"
    "<img_search>the lighthouse tower</img_search>",
    "<reason>The image search says this is Korvath Point Lighthouse. I need its height.</reason>\n"
    "<text_search>Korvath Point Lighthouse height</text_search>",
    "<reason>The result says the tower is 38 metres tall.</reason>\n<answer>38 metres</answer>",
]


class SlowPolicy(Policy):
    """A scripted policy that takes ``delay_s`` per turn, like a real model would."""

    def __init__(self, inner: Policy, delay_s: float) -> None:
        self.inner, self.delay_s, self.name = inner, delay_s, inner.name
        self.max_batch_size = inner.max_batch_size

    async def generate(self, conversations: Sequence[Conversation]) -> list[Generation]:
        await asyncio.sleep(self.delay_s)
        return await self.inner.generate(conversations)


def build_test_agent(example_kb: Path, script: list[str] | None = None, delay_s: float = 0.0) -> Agent:
    # Built by hand, not from a ToolsConfig: no tool cache on disk, and defaults elsewhere cannot change it.
    toolbox = Toolbox(
        MemoryTextSearch.from_kb(example_kb),
        MemoryImageSearch.from_kb(example_kb),
        MemoryGrounder({"the lighthouse tower": CROP}),
        ListSummarizer(),
    )
    policy: Policy = ScriptedPolicy(script if script is not None else SCRIPT, name="script:test")
    if delay_s:
        policy = SlowPolicy(policy, delay_s)
    return Agent(policy, toolbox, AgentConfig())


Serve = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def make_agent(example_kb: Path) -> Callable[..., Agent]:
    """``make_agent(script=..., delay_s=...)``: the agent the server tests serve, to adjust before serving it."""
    return lambda script=None, delay_s=0.0: build_test_agent(example_kb, script, delay_s)


@pytest.fixture
def serve(example_kb: Path) -> Serve:
    """``with serve(delay_s=..., script=..., **ServeConfig fields) as base_url:`` runs a fresh server."""

    def start(script: list[str] | None = None, delay_s: float = 0.0, **config: object) -> AbstractContextManager[str]:
        agent = build_test_agent(example_kb, script, delay_s)
        return serve_in_thread(create_app(agent, ServeConfig(**config)))  # type: ignore[arg-type]

    return start


@pytest.fixture
def server(serve: Serve) -> Iterator[str]:
    """A running server with default limits and no auth."""
    with serve() as base_url:
        yield base_url


@pytest.fixture
def image_data_url(example_image: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(example_image.read_bytes()).decode()


@pytest.fixture
def messages(image_data_url: str) -> list[dict]:
    """One user turn: the example photo and a question about it."""
    parts = [{"type": "image_url", "image_url": {"url": image_data_url}}, {"type": "text", "text": "How tall is it?"}]
    return [{"role": "user", "content": parts}]

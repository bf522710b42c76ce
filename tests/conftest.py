"""Shared fixtures: a fake OpenAI-compatible server on 127.0.0.1 and the shipped example."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deepmmsearch.tools import ToolsConfig

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@dataclass
class FakeOpenAI:
    """A chat-completions server that answers from a script and records every request it receives.

    ``replies`` is consumed in order; an item may be a string (the assistant text) or a tuple
    ``(status, body_dict_or_text, headers)`` to answer with an error.
    """

    replies: list = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    base_url: str = ""
    responder: Callable[[dict], object] | None = None

    def next_reply(self, body: dict) -> object:
        if self.responder is not None:
            return self.responder(body)
        return self.replies.pop(0) if self.replies else (500, {"error": {"message": "script exhausted"}}, {})


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            fake.requests.append(body)
            fake.headers.append({k.lower(): v for k, v in self.headers.items()})
            reply = fake.next_reply(body)
            if isinstance(reply, tuple):
                status, payload, extra = reply
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
            else:
                status, data = 200, json.dumps(_completion(body, str(reply))).encode()
                self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _completion(body: dict, text: str) -> dict:
    # Like real servers, drop the stop string that ended generation.
    finish = "stop"
    for stop in body.get("stop") or []:
        if text.endswith(stop):
            text = text[: -len(stop)]
            break
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory, monkeypatch):
    """Keep every test's caches (tool cache, default indexes) out of the user's ~/.cache."""
    monkeypatch.setenv("DMMS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "dmms-cache"))


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> Path:
    """A small offline world (24 pictured entities) with its knowledge base, built once per test session."""
    from deepmmsearch.world.build import WorldConfig, build_world, index_world

    out = tmp_path_factory.mktemp("world")
    build_world(out, WorldConfig(seed=0, entities=24, captions=48))
    index_world(out, show_progress=False)
    return out


def memory_tools(kb: Path) -> ToolsConfig:
    """The in-memory tools over a small knowledge base: fast, and no cache between tests."""
    return ToolsConfig(
        text_search="memory", image_search="memory", grounder="none", summarizer="list", kb=str(kb), no_cache=True
    )


@pytest.fixture
def example_tools(example_kb: Path) -> ToolsConfig:
    return memory_tools(example_kb)


@pytest.fixture
def example_kb() -> Path:
    return EXAMPLES / "kb"


@pytest.fixture
def example_image() -> Path:
    return EXAMPLES / "lighthouse.png"

"""A fake web on 127.0.0.1: one threaded HTTP server that plays search APIs and web pages."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from deepmmsearch.web.config import WebConfig


@dataclass
class Reply:
    """One canned answer. ``body`` may be a dict/list (sent as JSON), str or bytes."""

    body: Any = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    content_type: str | None = None


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeWeb:
    """Routes are path -> list of replies (served in order, the last one repeats) or a callable."""

    Reply = Reply  # so that tests build replies without importing this conftest

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply] | Callable[[Seen], Reply]] = {}
        self.requests: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, *replies: Reply | Callable[[Seen], Reply]) -> None:
        self.routes[path] = replies[0] if len(replies) == 1 and callable(replies[0]) else list(replies)

    def seen(self, path: str) -> list[Seen]:
        return [r for r in self.requests if r.path == path]

    def answer(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
            route = self.routes.get(seen.path)
            if route is None:
                return Reply({"error": "no such route"}, status=404)
            if callable(route):
                return route(seen)
            return route.pop(0) if len(route) > 1 else route[0]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(web: FakeWeb) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length", 0) or 0)
            seen = Seen(
                self.command,
                parts.path,
                {k: v[-1] for k, v in parse_qs(parts.query).items()},
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length) if length else b"",
            )
            reply = web.answer(seen)
            with web._lock:
                web.in_flight += 1
                web.max_in_flight = max(web.max_in_flight, web.in_flight)
            counted = True
            try:
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                # Counted out before the reply goes back: once the client has its answer it may start the next
                # request, which must not find this one still counted.
                with web._lock:
                    web.in_flight -= 1
                counted = False
                body = reply.body
                content_type = reply.content_type
                if isinstance(body, dict | list):
                    body, content_type = json.dumps(body).encode(), content_type or "application/json"
                elif isinstance(body, str):
                    body = body.encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", content_type or "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                pass
            finally:
                if counted:
                    with web._lock:
                        web.in_flight -= 1

        do_GET = do_POST = _serve

    return Handler


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch) -> None:
    """The tool cache of every test here lives in its own folder, never in the user's cache."""
    monkeypatch.setenv("DMMS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def web() -> Iterator[FakeWeb]:
    fake = FakeWeb()
    yield fake
    fake.close()


@pytest.fixture
def fast_config() -> WebConfig:
    """Limits that make retry and timeout tests take milliseconds."""
    return WebConfig(timeout_s=0.5, max_retries=2, backoff_s=0.01, max_backoff_s=2.0, per_host_rps=1000.0)


ARTICLE = """<html><head><title>Korvath Point Lighthouse - Coastal Towers</title></head><body>
<nav><a href="/">Home</a> | <a href="/towers">Towers</a> | <a href="/shop">Shop</a></nav>
<article><h1>Korvath Point Lighthouse</h1>
%s
<p>Korvath Point Lighthouse stands on the northern cape. The tower is 38 metres tall and was first lit in 1871
by the harbour board, which still maintains the light and its keeper's cottage today.</p>
<p>The lantern was automated in 1962; the cottage is now a small museum about the keepers and their families,
open to visitors from April to October every year.</p>
</article>
<footer>Copyright Coastal Towers. Cookie settings. Subscribe to our newsletter.</footer>
</body></html>"""


@pytest.fixture
def article() -> Callable[[str], str]:
    """A news-like page; the argument is extra HTML at the top of the article."""
    return lambda extra="": ARTICLE % extra

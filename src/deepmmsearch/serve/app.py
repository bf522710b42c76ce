"""The server: one agent behind an OpenAI-compatible chat-completions API, and a web page to watch it work.

Each request is one episode of the agent built at start-up. Admission is bounded: at most ``max_active``
episodes run and at most ``max_queue`` requests wait for a slot; one more is refused at once with 429, and a
request that waits longer than ``queue_timeout_s`` gets 503. Both carry ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager, contextmanager
from importlib.resources import files
from typing import TYPE_CHECKING, Any

# This module is the web server, so FastAPI is imported at its top; nothing imports it but `dmms serve`.
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from deepmmsearch.errors import InputError, ToolError
from deepmmsearch.images import ImageLimits, decode_image, is_url, read_image_bytes
from deepmmsearch.protocol import StopReason
from deepmmsearch.records import Message, Question, Trajectory
from deepmmsearch.serve.config import ServeConfig
from deepmmsearch.serve.schemas import (
    ChatRequest,
    completion_response,
    error_body,
    new_completion_id,
    question_and_image,
)
from deepmmsearch.serve.streaming import stream_episode
from deepmmsearch.web.config import WebConfig
from deepmmsearch.web.fetch import PageFetcher
from deepmmsearch.web.safety import Resolver, UnsafeURLError

if TYPE_CHECKING:
    from PIL import Image

    from deepmmsearch.agent import Agent


class ServeError(Exception):
    """An HTTP error in OpenAI's shape: status, message, error type and code, plus headers."""

    def __init__(
        self, status: int, message: str, type_: str, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.headers = headers or {}


class Admission:
    """A bounded queue in front of a fixed number of episode slots."""

    def __init__(self, max_active: int, max_queue: int, queue_timeout_s: float) -> None:
        self.max_active = max_active
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self.active = 0
        self.waiting = 0
        self._slots = asyncio.Semaphore(max_active)

    async def acquire(self) -> Callable[[], None]:
        """Wait for a slot; returns its release function, which is safe to call more than once."""
        if self.active + self.waiting >= self.max_active + self.max_queue:
            raise ServeError(
                429,
                f"the server is at capacity ({self.max_active} running, {self.waiting} waiting); retry shortly",
                "rate_limit_exceeded",
                "queue_full",
                {"Retry-After": "1"},
            )
        self.waiting += 1
        try:
            async with asyncio.timeout(self.queue_timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            raise ServeError(
                503,
                f"no free slot within {self.queue_timeout_s:g} s; the server is overloaded, retry later",
                "server_overloaded",
                "queue_timeout",
                {"Retry-After": str(max(1, round(self.queue_timeout_s)))},
            ) from None
        finally:
            self.waiting -= 1
        self.active += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.active -= 1
                self._slots.release()

        return release


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413, declared or chunked alike.

    Not FastAPI's ``max_body_size``: that one answers a declared oversize body in plain text, while OpenAI
    clients and our page read the error from OpenAI's JSON shape.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        # Chunked bodies declare no length: read them here, up to the limit, and replay them to the app.
        body, more = bytearray(), True
        while more:
            event = await receive()
            if event["type"] != "http.request":
                await self.app(scope, _replay(bytes(body), receive, event), send)
                return
            body += event.get("body", b"")
            more = event.get("more_body", False)
            if len(body) > self.max_bytes:
                await self._refuse(send)
                return
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _refuse(self, send: Send) -> None:
        message = f"the request body is larger than {self.max_bytes:,} bytes"
        data = json.dumps(error_body(message, "invalid_request_error", "too_large")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": data})


def _replay(body: bytes, receive: Receive, pending: MutableMapping[str, Any] | None = None) -> Receive:
    sent = False

    async def replay() -> MutableMapping[str, Any]:
        nonlocal sent, pending
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if pending is not None:
            event, pending = pending, None
            return event
        return await receive()  # after the body, only http.disconnect is left to hear

    return replay


def create_app(agent: Agent, config: ServeConfig | None = None, resolver: Resolver | None = None) -> FastAPI:
    """The ASGI app serving ``agent``: ``POST /v1/chat/completions``, ``GET /v1/models``, ``/health``, ``/``.

    The app owns the agent: its policy is closed when the server shuts down. ``resolver`` resolves the hosts of
    image URLs (tests inject one; default: the system's).
    """
    config = config or ServeConfig()
    key = config.api_key()
    model_name = config.model_name or agent.policy.name
    limits = ImageLimits(config.max_image_bytes, config.max_image_pixels, config.image_timeout_s)
    page = (files("deepmmsearch.serve") / "static" / "index.html").read_text(encoding="utf-8")
    started = time.time()
    admission = Admission(config.max_active, config.max_queue, config.queue_timeout_s)
    counts = {"episodes": 0}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        yield
        await agent.policy.aclose()

    app = FastAPI(
        title="deepmmsearch",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(ServeError)
    async def _serve_error(_request: Request, e: ServeError) -> JSONResponse:
        return JSONResponse(error_body(e.message, e.type, e.code), status_code=e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, e: StarletteHTTPException) -> JSONResponse:
        # Framework errors (404, 405) in the same shape as ours.
        return JSONResponse(error_body(str(e.detail), "invalid_request_error"), e.status_code, e.headers)

    @app.exception_handler(InputError)
    async def _input_error(_request: Request, e: InputError) -> JSONResponse:
        return JSONResponse(error_body(str(e), "invalid_request_error", "invalid_input"), status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"invalid request: {where + ': ' if where else ''}{first.get('msg', 'malformed body')}"
        return JSONResponse(error_body(message, "invalid_request_error", "invalid_request", where or None), 400)

    async def authorize(request: Request) -> None:
        if key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
            raise ServeError(
                401,
                "missing or wrong API key: send 'Authorization: Bearer KEY'",
                "invalid_request_error",
                "invalid_api_key",
                {"WWW-Authenticate": "Bearer"},
            )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": model_name,
            "active": admission.active,
            "waiting": admission.waiting,
            "max_active": config.max_active,
            "max_queue": config.max_queue,
            "episodes": counts["episodes"],
            "uptime_s": round(time.time() - started, 1),
        }

    @app.get("/v1/models", dependencies=[Depends(authorize)])
    async def models() -> dict[str, Any]:
        entry = {"id": model_name, "object": "model", "created": int(started), "owned_by": "deepmmsearch"}
        return {"object": "list", "data": [entry]}

    # Image URLs are fetched as the text-search tool fetches pages: every hop vetted, and each connection made to
    # the vetted address itself, so a name that changes its answer (DNS rebinding) cannot turn the server inward.
    web = WebConfig(
        allow_private=config.allow_private_image_urls,
        timeout_s=config.image_timeout_s,
        max_retries=0,
        max_page_bytes=config.max_image_bytes,
        per_host_rps=1000.0,  # admission already bounds the load; one busy image host must not queue the rest
        max_in_flight=config.max_active,
    )
    image_fetcher = PageFetcher(web, resolver=resolver, service="image fetch")

    async def fetch_image(url: str) -> bytes:
        try:
            async with asyncio.timeout(config.image_timeout_s):
                response, _ = await image_fetcher.get(url, accept="image/*")
        except UnsafeURLError as e:
            raise InputError(str(e)) from None
        except (ToolError, TimeoutError) as e:
            why = str(e) or f"not downloaded within {config.image_timeout_s:g} s"
            raise InputError(f"{url[:200]}: could not download the image ({why})") from None
        if response.status >= 400:
            raise InputError(f"{url[:200]}: could not download the image (HTTP {response.status})")
        if response.truncated:
            raise InputError(f"{url[:200]}: image is larger than {config.max_image_bytes // 2**20} MiB")
        return response.content

    async def read_image(image_url: str) -> Image.Image:
        data = await fetch_image(image_url) if is_url(image_url) else None
        # Decoding (and a data URL's base64) blocks; keep it off the event loop that serves everyone else.
        return await asyncio.to_thread(
            lambda: decode_image(data if data is not None else read_image_bytes(image_url, limits), "image", limits)
        )

    @app.post("/v1/chat/completions", dependencies=[Depends(authorize)], response_model=None)
    async def chat_completions(body: ChatRequest) -> JSONResponse | StreamingResponse:
        # One agent serves every request, so the request's "model" names nothing here and is not checked.
        question_text, image_url = question_and_image(body)
        if is_url(image_url) and not config.allow_image_urls:
            raise InputError("this server takes images only as data URLs (image URLs are turned off)")
        if not (is_url(image_url) or image_url.startswith("data:")):
            raise InputError("image_url must be a data URL or an http(s) URL")
        release = await admission.acquire()
        try:
            image = await read_image(image_url)
        except BaseException:
            release()
            raise
        # The trajectory keeps a URL as is; an inline image is not echoed back in every response.
        completion_id = new_completion_id()
        image_ref = image_url if is_url(image_url) else "inline"
        question = Question(id=completion_id, image=image_ref, question=question_text)

        def episode(hook: Callable[[Trajectory, Message], None] | None = None) -> Awaitable[Trajectory]:
            counts["episodes"] += 1
            return agent.run(question, image, on_message=hook)

        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            stream = stream_episode(
                episode, completion_id, model_name, config.request_timeout_s, release, include_usage
            )
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

            async def release_async() -> None:  # async, so that Starlette runs it on the loop, not in a thread
                release()

            # The stream releases its slot when it ends; the background task covers a stream that never started.
            return StreamingResponse(
                stream, media_type="text/event-stream", headers=headers, background=BackgroundTask(release_async)
            )
        try:
            async with asyncio.timeout(config.request_timeout_s):
                trajectory = await episode()
        except TimeoutError:
            raise ServeError(
                504, f"the agent did not finish within {config.request_timeout_s:g} s", "timeout", "timeout"
            ) from None
        finally:
            release()
        if trajectory.stop_reason == StopReason.POLICY_ERROR:
            raise ServeError(502, f"the model failed: {trajectory.error}", "server_error", "policy_error")
        return JSONResponse(completion_response(completion_id, model_name, trajectory))

    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    return app


@contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, **uvicorn_options: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread; yields its base URL (port 0: an ephemeral port).

    For tests and benchmarks: the socket is bound before the thread starts, so the port is known at once.
    """
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    options = {"log_level": "warning", "timeout_graceful_shutdown": 2, **uvicorn_options}
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="dmms-serve")
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start (see the log above)")
            time.sleep(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

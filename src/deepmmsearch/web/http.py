"""The one HTTP helper every web backend and the page fetcher share.

It owns what a bare ``httpx.post`` lacks: timeouts, a cap on bytes read, a bounded number of requests in
flight, a per-host rate limit, retries with exponential backoff and jitter on 429 (honouring Retry-After),
5xx, timeouts and dropped connections, and translation of every httpx and JSON error into a
:class:`~deepmmsearch.errors.ToolError` whose message never contains an API key.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpcore
import httpx

from deepmmsearch.errors import ToolError
from deepmmsearch.web.config import WebConfig
from deepmmsearch.web.safety import AddressGuard

# ---------------------------------------------------------------------------------------------- secrets

_SECRETS: set[str] = set()
# httpx logs every request URL at INFO level, and SerpAPI takes its key in the query string.
_LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy")


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


_FILTER = _RedactingFilter()


def register_secret(value: str) -> None:
    """Remember an API key so that :func:`redact` and the HTTP loggers hide it from now on."""
    if value:
        _SECRETS.add(value)
        for name in _LOGGERS:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)


def redact(text: str) -> str:
    """``text`` with every registered secret (plain or URL-encoded) replaced by ``***``."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***").replace(quote(secret, safe=""), "***")
    return text


# ---------------------------------------------------------------------------------------------- transport


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the guard approves, and to the approved address itself, so that the name
    is not resolved a second time between the check and the connection."""

    def __init__(self, guard: AddressGuard) -> None:
        self.guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        last: Exception | None = None
        for address in await self.guard.addresses(host, port):
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as e:  # try the next address, as a plain client would
                last = e
        raise last or httpcore.ConnectError(f"no address of {host} accepted the connection")

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        raise httpcore.ConnectError("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(
    guard: AddressGuard, config: WebConfig, ssl_context: ssl.SSLContext | None = None
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection goes through ``guard`` (no proxies from the environment:
    a proxy would connect on our behalf, past the guard)."""
    ssl_context = ssl_context or httpx.create_ssl_context(trust_env=False)
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, trust_env=False)
    # httpx has no public hook for httpcore's network backend; swapping the pool is the documented-by-source
    # way to get one, and it keeps httpx's request/response mapping intact.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=config.max_in_flight,
        network_backend=_GuardedBackend(guard),
    )
    return transport


# ---------------------------------------------------------------------------------------------- client


@dataclass
class Response:
    """A response read in full (up to the byte cap)."""

    url: str
    status: int
    headers: httpx.Headers
    content: bytes
    truncated: bool = False

    @property
    def text(self) -> str:
        return self.content.decode(_charset(self.headers) or "utf-8", errors="replace")


def _charset(headers: httpx.Headers) -> str | None:
    for part in headers.get("content-type", "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            try:
                "".encode(value.strip('"'))
                return value.strip('"')
            except LookupError:
                return None
    return None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (now if now is not None else datetime.now(UTC).timestamp()))


def provider_message(content: bytes, limit: int = 200) -> str:
    """The human part of an API error body ({"error": ...}, {"detail": {"error": ...}}, {"message": ...})."""
    try:
        data: Any = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        text = " ".join(content[:limit].decode("utf-8", "replace").split())
        return redact(text)
    for _ in range(3):
        if isinstance(data, dict):
            data = next((data[k] for k in ("error", "detail", "message", "msg") if data.get(k)), None)
        else:
            break
    return redact(" ".join(str(data).split())[:limit]) if isinstance(data, str | int | float) else ""


def backoff_delay(config: WebConfig, attempt: int, retry_after: float | None = None) -> float:
    """Seconds before retry ``attempt + 1``: exponential with jitter, never less than Retry-After."""
    base = min(config.max_backoff_s, config.backoff_s * 2**attempt)
    # Jitter spreads the retries of many concurrent episodes so that they do not hit the API in step.
    return max(base * random.uniform(0.5, 1.0), retry_after or 0.0)


class HttpClient:
    """Requests for one service (a search API, or page fetching) under the limits of a :class:`WebConfig`.

    Holds no connection between calls: :meth:`session` opens an ``httpx.AsyncClient`` for one unit of
    work, so the object can be built before the event loop starts and used from any loop. The in-flight
    cap and the rate limit are shared by all sessions of the object.
    """

    def __init__(
        self,
        config: WebConfig,
        service: str,
        *,
        guard: AddressGuard | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.service = service
        self.guard = guard
        self._transport = transport
        self._sleep = sleep
        self._ssl_context: ssl.SSLContext | None = None
        self._next_slot: dict[str, float] = {}
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"HttpClient({self.service!r})"

    @asynccontextmanager
    async def session(self) -> Any:
        """An ``httpx.AsyncClient`` with our timeouts and limits; redirects are never followed blindly."""
        trust_env = self.guard is None
        if self._ssl_context is None:  # loading the CA bundle takes tens of milliseconds: once per object
            self._ssl_context = httpx.create_ssl_context(trust_env=trust_env)
        transport = self._transport
        if transport is None and self.guard is not None:
            transport = guarded_transport(self.guard, self.config, self._ssl_context)
        client = httpx.AsyncClient(
            verify=self._ssl_context,
            timeout=httpx.Timeout(self.config.timeout_s),
            limits=httpx.Limits(max_connections=self.config.max_in_flight),
            headers={"User-Agent": self.config.user_agent},
            follow_redirects=False,
            transport=transport,
            trust_env=trust_env,
        )
        try:
            yield client
        finally:
            # A shared injected transport (tests) must outlive one session.
            if self._transport is None:
                await client.aclose()

    async def send(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str | httpx.URL,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        max_bytes: int,
    ) -> Response:
        """One request with retries. Returns the first response that is not 429 or 5xx (any status, for the
        caller to judge); raises ToolError when the retries run out or the request cannot be made."""
        attempts = self.config.max_retries + 1
        request = client.build_request(method, url, params=params, headers=headers, json=json_body)
        host = request.url.host
        problem = ""
        for attempt in range(attempts):
            await self._wait_turn(host)
            retry_after: float | None = None
            try:
                async with self._in_flight():
                    response = await self._send_once(client, request, max_bytes)
            except httpx.TimeoutException:
                problem = f"timed out after {self.config.timeout_s:g} s"
            except (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as e:
                problem = f"connection failed ({type(e).__name__})"
            except httpx.HTTPError as e:
                raise ToolError(f"{self.service}: request failed ({type(e).__name__})") from None
            else:
                if response.status != 429 and response.status < 500:
                    return response
                message = provider_message(response.content)
                problem = f"HTTP {response.status}" + (f": {message}" if message else "")
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                if retry_after is not None and retry_after > self.config.max_backoff_s:
                    raise ToolError(
                        f"{self.service}: rate limited ({problem}); the server asks to wait {retry_after:.0f} s"
                    )
            if attempt + 1 < attempts:
                await self._sleep(backoff_delay(self.config, attempt, retry_after))
        raise ToolError(f"{self.service}: {problem} (gave up after {attempts} attempts)")

    async def get_json(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        key_env: str | None = None,
    ) -> Any:
        """Call a JSON API: a 2xx response parsed, or a ToolError that says what went wrong."""
        async with self.session() as client:
            response = await self.send(
                client,
                method,
                url,
                params=params,
                headers=headers,
                json_body=json_body,
                max_bytes=self.config.max_api_bytes,
            )
        if not 200 <= response.status < 300:
            message = provider_message(response.content)
            detail = f": {message}" if message else ""
            if response.status in (401, 403) and key_env:
                raise ToolError(
                    f"{self.service}: the API key was rejected (HTTP {response.status}{detail}); check {key_env}"
                )
            raise ToolError(f"{self.service}: HTTP {response.status}{detail}")
        if response.truncated:
            raise ToolError(f"{self.service}: the response is larger than {self.config.max_api_bytes} bytes")
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as e:
            raise ToolError(f"{self.service}: the response is not valid JSON ({type(e).__name__})") from None

    async def _send_once(self, client: httpx.AsyncClient, request: httpx.Request, max_bytes: int) -> Response:
        response = await client.send(request, stream=True)
        try:
            chunks, total, truncated = [], 0, False
            # Counted after decompression, so a small gzip bomb cannot get past the cap.
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                total += len(chunk)
                if total > max_bytes:
                    truncated = True
                    break
            content = b"".join(chunks)[:max_bytes]
        finally:
            await response.aclose()
        return Response(str(response.url), response.status_code, response.headers, content, truncated)

    async def _wait_turn(self, host: str) -> None:
        # No lock needed: the slot is read and booked with no await in between.
        now = time.monotonic()
        slot = max(now, self._next_slot.get(host, 0.0))
        self._next_slot[host] = slot + 1.0 / self.config.per_host_rps
        if slot > now:
            await asyncio.sleep(slot - now)

    def _in_flight(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop not in self._slots:
            self._slots[loop] = asyncio.Semaphore(self.config.max_in_flight)
        return self._slots[loop]

"""A persistent cache of tool calls in SQLite, so that RL epochs and re-runs replay searches for free.

What is cached is what a backend returns, not what the model reads: the summary depends on the question, the
hits do not. Keys are a hash of the kind of call, the backend's identity and the normalized arguments:

- text search: backend + normalized query + k;
- image search: backend + a hash of the pixels + k;
- grounding: backend + a hash of the pixels + normalized expression;
- summaries: summarizer + question + query + the hits.

The database runs in WAL mode with a busy timeout, so threads and processes may write at once; each write is
one transaction, so a writer killed mid-write (even by SIGKILL) leaves every committed entry intact and the
half-written one absent. Entries older than the TTL are ignored and overwritten.

Whether a tool call was served from the cache is tracked per call with a context variable: the toolbox
opens a :func:`track` scope around each call, and every cached backend reports into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import os
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PIL import Image

from deepmmsearch.errors import ConfigError
from deepmmsearch.tools.base import (
    Box,
    Grounder,
    ImageHit,
    ImageSearchBackend,
    Summarizer,
    TextHit,
    TextSearchBackend,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL
)
"""
MISS = object()  # what ToolCache.get returns for an absent or expired entry


def default_cache_path() -> Path:
    """``tools.sqlite`` in the folder where built indexes are cached too (``$DMMS_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/deepmmsearch`` or ``~/.cache/deepmmsearch``)."""
    from deepmmsearch.config import cache_dir

    return cache_dir() / "tools.sqlite"


def normalize_text(text: str) -> str:
    """The form of a query or expression that keys the cache: NFKC, case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def image_digest(image: Image.Image) -> str:
    """A hash of the pixels (and size and mode), so the same picture keys the same entry whatever file it came
    from; a crop hashes as the crop."""
    digest = hashlib.sha256(f"{image.mode}:{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


class ToolCache:
    """A key-value store of JSON values with a TTL, in one SQLite file shared by threads and processes."""

    def __init__(self, path: str | Path, ttl_s: float | None = 7 * 24 * 3600, namespace: str = "") -> None:
        """``ttl_s`` of None or 0 keeps entries forever; ``namespace`` separates, for example, knowledge bases
        served by backends of the same name."""
        self.path = Path(path)
        self.ttl_s = ttl_s or None
        self.namespace = namespace
        self._local = threading.local()  # a connection per thread: sqlite3 connections are not shared safely
        self._pid = os.getpid()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = self._connection()
            connection.execute("PRAGMA journal_mode=WAL")  # persistent: set once, readers never block writers
            connection.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(
                f"tool cache {self.path}: cannot open it ({e}); set another path or use --no-cache"
            ) from None

    def _connection(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:  # a forked child must never use its parent's connections (SQLite forbids it)
            self._pid, self._local, self._connections = os.getpid(), threading.local(), []
        connection = getattr(self._local, "connection", None)
        if connection is None:
            # autocommit mode (isolation_level=None): each statement is its own atomic transaction.
            # A writer waits up to 15 s for the lock; past that the entry is skipped, the tool call goes on.
            connection = sqlite3.connect(self.path, timeout=15.0, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA synchronous=NORMAL")  # in WAL mode still safe against process crashes
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def key(self, kind: str, *parts: Any) -> str:
        """The key of a call: a hash of its kind, the namespace and its (already normalized) arguments."""
        blob = json.dumps([kind, self.namespace, *parts], ensure_ascii=False, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> Any:
        """The value stored under ``key``, or :data:`MISS` when absent or older than the TTL."""
        try:
            row = self._connection().execute("SELECT value, created FROM entries WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error:
            return MISS  # a cache that cannot be read is a cache miss, never a failed tool call
        if row is None or (self.ttl_s is not None and time.time() - row[1] > self.ttl_s):
            return MISS
        return json.loads(row[0])

    def put(self, key: str, kind: str, value: Any) -> None:
        """Store a JSON-serializable value under ``key``, replacing any older one."""
        blob = json.dumps(value, ensure_ascii=False)
        with contextlib.suppress(sqlite3.Error):  # failing to cache must not fail the tool call
            self._connection().execute(
                "INSERT OR REPLACE INTO entries (key, kind, value, created) VALUES (?, ?, ?, ?)",
                (key, kind, blob, time.time()),
            )

    def purge(self) -> int:
        """Delete expired entries; returns how many."""
        if self.ttl_s is None:
            return 0
        cursor = self._connection().execute("DELETE FROM entries WHERE created < ?", (time.time() - self.ttl_s,))
        return cursor.rowcount

    def __len__(self) -> int:
        return self._connection().execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    async def cached(self, kind: str, key: str, compute: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value for ``key``, or ``await compute()`` stored; reports the hit or miss to :func:`track`."""
        value = await asyncio.to_thread(self.get, key)
        hit = value is not MISS
        _report(hit)
        if not hit:
            value = await compute()
            await asyncio.to_thread(self.put, key, kind, value)
        return value


# ---------------------------------------------------------------------------------------------- hit tracking

_calls: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar("dmms_cache_calls", default=None)


@contextlib.contextmanager
def track() -> Iterator[list[bool]]:
    """Collect, for the code inside, whether each cached backend call was a hit (True) or a miss (False)."""
    calls: list[bool] = []
    token = _calls.set(calls)
    try:
        yield calls
    finally:
        _calls.reset(token)


def _report(hit: bool) -> None:
    calls = _calls.get()
    if calls is not None:
        calls.append(hit)


# ---------------------------------------------------------------------------------------------- wrappers


def _identity(backend: Any) -> str:
    # A backend may name what it serves (e.g. "local:<index hash>") so two knowledge bases never share entries.
    return str(getattr(backend, "cache_id", None) or backend.name)


class _Delegating:
    """A backend wrapped with the cache. Attributes the wrapper lacks are the wrapped backend's (its index, its
    settings), so callers that inspect ``toolbox.text_search`` see through the cache."""

    inner: Any

    def __init__(self, inner: Any, cache: ToolCache) -> None:
        self.inner, self.cache, self.name = inner, cache, inner.name

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet: no recursion through __getattr__
            raise AttributeError(name)
        return getattr(self.inner, name)


class CachedTextSearch(_Delegating, TextSearchBackend):
    async def search(self, query: str, k: int) -> list[TextHit]:
        key = self.cache.key("text", _identity(self.inner), normalize_text(query), k)

        async def compute() -> list[dict]:
            return [asdict(h) for h in await self.inner.search(query, k)]

        return [TextHit(**h) for h in await self.cache.cached("text", key, compute)]


class CachedImageSearch(_Delegating, ImageSearchBackend):
    async def search(self, image: Image.Image, k: int, image_ref: str | None = None) -> list[ImageHit]:
        digest = await asyncio.to_thread(image_digest, image)
        key = self.cache.key("image", _identity(self.inner), digest, k)

        async def compute() -> list[dict]:
            return [asdict(h) for h in await self.inner.search(image, k, image_ref)]

        return [ImageHit(**h) for h in await self.cache.cached("image", key, compute)]


class CachedGrounder(_Delegating, Grounder):
    async def ground(self, image: Image.Image, expression: str) -> Box | None:
        digest = await asyncio.to_thread(image_digest, image)
        key = self.cache.key("ground", _identity(self.inner), digest, normalize_text(expression))

        async def compute() -> dict | None:
            box = await self.inner.ground(image, expression)
            return asdict(box) if box is not None else None  # "nothing found" is worth caching too

        value = await self.cache.cached("ground", key, compute)
        return Box(**value) if value is not None else None


class CachedSummarizer(_Delegating, Summarizer):
    async def summarize_text(self, question: str, query: str, hits: list[TextHit]) -> str:
        key = self.cache.key("summary-text", _identity(self.inner), question, query, [asdict(h) for h in hits])
        return await self.cache.cached("summary", key, lambda: self.inner.summarize_text(question, query, hits))

    async def summarize_images(self, question: str, hits: list[ImageHit]) -> str:
        key = self.cache.key("summary-images", _identity(self.inner), question, [asdict(h) for h in hits])
        return await self.cache.cached("summary", key, lambda: self.inner.summarize_images(question, hits))

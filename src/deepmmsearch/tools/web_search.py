"""Web search backends: one small class per provider, all speaking through the web client (:mod:`deepmmsearch.web`).

Text: SerpAPI (Google), Brave Search, SearXNG, DuckDuckGo (through ``ddgs``), Tavily; each reads its top hits'
pages (:class:`PageReadingTextSearch`) unless ``tools.web.fetch_pages`` is off. Images: SerpAPI Google Lens and
Google reverse image search. Keys come from environment variables, are registered for
redaction the moment they are read, and are never stored anywhere else; every endpoint can be moved with
``DMMS_<BACKEND>_URL`` or ``tools.web.endpoints``.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import io
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import httpx
from PIL import Image

from deepmmsearch.errors import ConfigError, ToolError
from deepmmsearch.tools.base import ImageHit, ImageSearchBackend, TextHit, TextSearchBackend
from deepmmsearch.web.config import WebConfig
from deepmmsearch.web.fetch import Page, PageFetcher
from deepmmsearch.web.http import HttpClient, backoff_delay, redact, register_secret

if TYPE_CHECKING:
    from deepmmsearch.tools.config import ToolsConfig

log = logging.getLogger(__name__)
_TAG_RE = re.compile(r"<[^>]{0,200}>")


def api_key(env: str, backend: str) -> str:
    """The API key in environment variable ``env``; a ConfigError naming the variable when it is unset."""
    value = os.environ.get(env, "").strip()
    if not value:
        raise ConfigError(f"the {backend!r} search backend needs an API key: set the environment variable {env}")
    register_secret(value)
    return value


def _plain(text: Any) -> str:
    """Provider snippets carry highlighting markup (<strong>) and entities; the model reads plain text."""
    return " ".join(html.unescape(_TAG_RE.sub("", str(text or ""))).split())


def _rows(data: Any, service: str, *path: str) -> list[dict]:
    node = data
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if node is None:
        return []
    if not isinstance(node, list):
        raise ToolError(f"{service}: unexpected response ({'.'.join(path)} is not a list)")
    return [row for row in node if isinstance(row, dict)]


def _score(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


class _Api:
    """What every HTTP API backend holds: its endpoint, its key when ``key_env`` names one, and a shared-policy HTTP
    client."""

    name = "web"
    endpoint_name: str | None = None  # the endpoint setting's name, when not the backend's own
    default_endpoint: str | None = None
    key_env: str | None = None

    def __init__(self, config: WebConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.endpoint = config.endpoint(self.endpoint_name or self.name, self.default_endpoint)
        self.http = HttpClient(config, self.name, transport=transport)
        self._key = api_key(self.key_env, self.name) if self.key_env else None

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}(endpoint={self.endpoint!r})"

    @property
    def cache_id(self) -> str:
        """What the tool cache keys this backend by: two endpoints never share entries (and no key in it)."""
        return f"{self.name}@{self.endpoint}"


# ---------------------------------------------------------------------------------------------- SerpAPI


def _serpapi_error(data: Any) -> str | None:
    error = data.get("error") if isinstance(data, dict) else None
    if not error:
        return None
    # SerpAPI reports an empty result page as an "error" with HTTP 200; for us it is just no hits.
    return None if "hasn't returned any results" in str(error) else redact(str(error))[:200]


class SerpApiSearch(_Api, TextSearchBackend):
    """Google web search through SerpAPI (``organic_results``)."""

    name = "serpapi"
    default_endpoint = "https://serpapi.com/search.json"
    key_env = "SERPAPI_API_KEY"

    async def search(self, query: str, k: int) -> list[TextHit]:
        params = {"engine": "google", "q": query, "num": k, "api_key": self._key}
        data = await self.http.get_json("GET", self.endpoint, params=params, key_env=self.key_env)
        if error := _serpapi_error(data):
            raise ToolError(f"serpapi: {error}")
        rows = _rows(data, self.name, "organic_results")
        return [
            TextHit(_plain(r.get("title")), str(r.get("link", "")), _plain(r.get("snippet")))
            for r in rows[:k]
            if r.get("link")
        ]


class SerpApiImageSearch(_Api, ImageSearchBackend):
    """Reverse image search through SerpAPI: Google Lens (``visual_matches``) or Google reverse image search
    (``image_results``). Both take only a public image URL (see :func:`public_image_url`)."""

    endpoint_name = "serpapi"  # one key and one endpoint for all SerpAPI engines: DMMS_SERPAPI_URL moves them together
    default_endpoint = "https://serpapi.com/search.json"
    key_env = "SERPAPI_API_KEY"
    _ENGINES: ClassVar[dict[str, tuple[str, str, str]]] = {
        "serpapi-lens": ("google_lens", "url", "visual_matches"),
        "serpapi-reverse-image": ("google_reverse_image", "image_url", "image_results"),
    }

    def __init__(
        self, config: WebConfig, name: str = "serpapi-lens", *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        if name not in self._ENGINES:
            raise ConfigError(f"unknown SerpAPI image engine {name!r}; known: {', '.join(self._ENGINES)}")
        self.name = name
        super().__init__(config, transport=transport)

    async def search(self, image: Image.Image, k: int, image_ref: str | None = None) -> list[ImageHit]:
        engine, param, field = self._ENGINES[self.name]
        url = await asyncio.to_thread(public_image_url, image, image_ref, self.config, self.name)
        params = {"engine": engine, param: url, "api_key": self._key}
        data = await self.http.get_json("GET", self.endpoint, params=params, key_env=self.key_env)
        if error := _serpapi_error(data):
            raise ToolError(f"{self.name}: {error}")
        hits = []
        for r in _rows(data, self.name, field)[:k]:
            if not r.get("link"):
                continue
            description = _plain(r.get("snippet") or r.get("source") or "")
            image_url = r.get("image") or r.get("thumbnail") or r.get("original")
            hits.append(ImageHit(_plain(r.get("title")), str(r["link"]), description, image_url))
        return hits


def public_image_url(image: Image.Image, image_ref: str | None, config: WebConfig, backend: str) -> str:
    """A URL a web API can download the image from.

    http(s) references pass through. Local files and crops have none, so they are copied (as PNG, named by
    content hash) into ``web.image_host_dir``, which the user serves at ``web.image_url_base``.
    """
    if image_ref and image_ref.startswith(("http://", "https://")):
        return image_ref
    what = "a crop of the image" if image_ref is None else "a local image"
    if not (config.image_url_base and config.image_host_dir):
        raise ToolError(
            f"{backend} cannot search {what}: web reverse image search needs a public image URL. Pass an "
            "http(s) image, or serve a folder publicly and set tools.web.image_host_dir and "
            "tools.web.image_url_base"
        )
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    data = buffer.getvalue()
    name = hashlib.sha256(data).hexdigest()[:24] + ".png"
    folder = Path(config.image_host_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / name).exists():
            (folder / name).write_bytes(data)
    except OSError as e:
        raise ToolError(f"{backend}: cannot write to tools.web.image_host_dir {folder} ({e.strerror})") from None
    return config.image_url_base.rstrip("/") + "/" + quote(name)


# ---------------------------------------------------------------------------------------------- others


class BraveSearch(_Api, TextSearchBackend):
    """Brave Search web results (``web.results``); the key goes in the X-Subscription-Token header."""

    name = "brave"
    default_endpoint = "https://api.search.brave.com/res/v1/web/search"
    key_env = "BRAVE_API_KEY"

    async def search(self, query: str, k: int) -> list[TextHit]:
        headers = {"X-Subscription-Token": self._key, "Accept": "application/json"}
        params = {"q": query, "count": min(k, 20)}  # the API's maximum page size is 20
        data = await self.http.get_json("GET", self.endpoint, params=params, headers=headers, key_env=self.key_env)
        return [
            TextHit(_plain(r.get("title")), str(r.get("url", "")), _plain(r.get("description")))
            for r in _rows(data, self.name, "web", "results")[:k]
            if r.get("url")
        ]


class SearxngSearch(_Api, TextSearchBackend):
    """A SearXNG instance's JSON API (``results``). Self-hosted, so it has no default endpoint and no key."""

    name = "searxng"

    def __init__(self, config: WebConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(config, transport=transport)
        if self.endpoint is None:
            raise ConfigError(
                "the 'searxng' search backend needs your instance's URL: set DMMS_SEARXNG_URL or "
                "tools.web.endpoints.searxng (e.g. http://localhost:8888)"
            )
        base = self.endpoint.rstrip("/")
        self.endpoint = base if base.endswith("/search") else base + "/search"

    async def search(self, query: str, k: int) -> list[TextHit]:
        try:
            data = await self.http.get_json("GET", self.endpoint, params={"q": query, "format": "json"})
        except ToolError as e:
            if "HTTP 403" in str(e):  # SearXNG answers 403 when the JSON format is not enabled
                raise ToolError(f"{e}; enable 'json' under search.formats in the instance's settings.yml") from None
            raise
        return [
            TextHit(_plain(r.get("title")), str(r.get("url", "")), _plain(r.get("content")), _score(r.get("score")))
            for r in _rows(data, self.name, "results")[:k]
            if r.get("url")
        ]


class TavilySearch(_Api, TextSearchBackend):
    """Tavily search (``results``); the key goes in an Authorization: Bearer header."""

    name = "tavily"
    default_endpoint = "https://api.tavily.com/search"
    key_env = "TAVILY_API_KEY"

    async def search(self, query: str, k: int) -> list[TextHit]:
        headers = {"Authorization": f"Bearer {self._key}"}
        body = {"query": query, "max_results": min(k, 20), "search_depth": "basic"}
        data = await self.http.get_json("POST", self.endpoint, json_body=body, headers=headers, key_env=self.key_env)
        return [
            TextHit(_plain(r.get("title")), str(r.get("url", "")), _plain(r.get("content")), _score(r.get("score")))
            for r in _rows(data, self.name, "results")[:k]
            if r.get("url")
        ]


class DuckDuckGoSearch(TextSearchBackend):
    """DuckDuckGo through ``ddgs``, which scrapes the result page itself. ddgs hard-codes its URLs, so the
    endpoint setting is its proxy; tests inject a client instead."""

    name = "duckduckgo"

    def __init__(self, config: WebConfig, client_factory: Callable[[], Any] | None = None) -> None:
        self.config = config
        self.proxy = config.endpoint(self.name, None)
        self._client_factory = client_factory or self._ddgs
        self.cache_id = self.name  # the proxy does not change the results

    def _ddgs(self) -> Any:
        from ddgs import DDGS

        return DDGS(proxy=self.proxy, timeout=int(self.config.timeout_s))

    async def search(self, query: str, k: int) -> list[TextHit]:
        from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

        attempts = self.config.max_retries + 1
        problem = ""
        for attempt in range(attempts):
            try:
                # ddgs is synchronous (its own threads and HTTP client): keep it off the event loop.
                rows = await asyncio.to_thread(self._client_factory().text, query, max_results=k, backend=self.name)
            except RatelimitException:
                problem = "rate limited"
            except TimeoutException:
                problem = f"timed out after {self.config.timeout_s:g} s"
            except DDGSException as e:
                if "no results" in str(e).lower():
                    return []
                raise ToolError(f"duckduckgo: {redact(' '.join(str(e).split()))[:200]}") from None
            else:
                return [
                    TextHit(_plain(r.get("title")), str(r.get("href", "")), _plain(r.get("body")))
                    for r in rows[:k]
                    if isinstance(r, dict) and r.get("href")
                ]
            if attempt + 1 < attempts:
                await asyncio.sleep(backoff_delay(self.config, attempt))
        raise ToolError(f"duckduckgo: {problem} (gave up after {attempts} attempts)")


# ---------------------------------------------------------------------------------------------- page reading


class PageReadingTextSearch(TextSearchBackend):
    """A text search whose top hits carry their page's main text instead of the engine's snippet.

    The summarizer then condenses real page text; hits whose page cannot be read keep their snippet, and
    every hit stays in the trajectory's sources with its URL.
    """

    def __init__(self, inner: TextSearchBackend, fetcher: PageFetcher, config: WebConfig) -> None:
        self.inner = inner
        self.fetcher = fetcher
        self.config = config
        self.name = inner.name
        # Reading pages changes the hits, so the cache must not mix them with snippet-only ones.
        inner_id = getattr(inner, "cache_id", None) or inner.name
        self.cache_id = (
            f"{inner_id}|pages:top={config.fetch_top},chars={config.page_chars},private={config.allow_private}"
        )

    async def search(self, query: str, k: int) -> list[TextHit]:
        hits = await self.inner.search(query, k)
        targets = [h for h in hits[: self.config.fetch_top] if h.url.startswith(("http://", "https://"))]
        pages = await self.fetcher.fetch_many([h.url for h in targets], self.config.fetch_budget_s)
        for hit, page in zip(targets, pages, strict=True):
            if isinstance(page, Page) and page.text:
                hit.text = _cut(page.text, self.config.page_chars)
            elif isinstance(page, ToolError):
                log.info("kept the snippet of %s: %s", hit.url, redact(str(page)))
        return hits


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


# ---------------------------------------------------------------------------------------------- factories
# The registry in deepmmsearch.tools names these as "module:function" strings, imported only when chosen.


TEXT_APIS: dict[str, Callable[[WebConfig], TextSearchBackend]] = {
    "serpapi": SerpApiSearch,
    "brave": BraveSearch,
    "searxng": SearxngSearch,
    "tavily": TavilySearch,
    "duckduckgo": DuckDuckGoSearch,
}


def web_text_search(config: ToolsConfig) -> TextSearchBackend:
    """The search API ``tools.text_search`` names (a key of :data:`TEXT_APIS`), reading the top pages when
    ``web.fetch_pages`` is on."""
    backend = TEXT_APIS[config.text_search](config.web)
    if not config.web.fetch_pages:
        return backend
    return PageReadingTextSearch(backend, PageFetcher(config.web), config.web)


def serpapi_image_search(config: ToolsConfig) -> ImageSearchBackend:
    """SerpAPI's Google Lens or Google reverse image search, as ``tools.image_search`` names it."""
    return SerpApiImageSearch(config.web, config.image_search)

"""Safe page fetching and main-text extraction: what the text-search tool reads behind each hit.

Every hop of a redirect chain is checked by :class:`~deepmmsearch.web.safety.AddressGuard`, bytes and hops
are capped, and the text is extracted with trafilatura. The text is data for the model: it reaches the
model only through the observation, which the protocol neutralizes and wraps in ``<information>``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

import httpx

from deepmmsearch.errors import ToolError
from deepmmsearch.protocol import clean_text
from deepmmsearch.web.config import WebConfig
from deepmmsearch.web.http import HttpClient, Response
from deepmmsearch.web.safety import AddressGuard, Resolver

_REDIRECTS = (301, 302, 303, 307, 308)
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_TEXT_TYPES = ("text/plain",)
_ACCEPT = "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.8,*/*;q=0.1"
_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


@dataclass
class Page:
    """One fetched page: where it ended up, and its main text."""

    url: str  # after redirects
    requested_url: str
    title: str
    text: str
    content_type: str
    status: int
    bytes_read: int
    truncated: bool = False  # the page was longer than max_page_bytes
    redirects: list[str] = field(default_factory=list)


def extract_main_text(body: str, url: str, content_type: str) -> tuple[str, str]:
    """(title, main text) of a page; boilerplate (menus, footers, ads) is dropped for HTML. Control bytes
    (terminal escapes included) are removed, since the text is printed, stored and tokenized."""
    if content_type in _TEXT_TYPES:
        return "", clean_text(body).strip()
    import trafilatura

    document = trafilatura.bare_extraction(body, url=url, with_metadata=True, include_comments=False)
    title = (getattr(document, "title", None) or "").strip()
    text = (getattr(document, "text", None) or "").strip()
    if not text:  # trafilatura finds no "main" block on very short pages; keep all their text instead
        text = (trafilatura.html2txt(body) or "").strip()
    if not title and (match := _TITLE_RE.search(body)):
        title = " ".join(match.group(1).split())
    return clean_text(title), clean_text(text)


class PageFetcher:
    """Fetches pages (or, with :meth:`get`, any resource) under the safety rules and limits of a
    :class:`WebConfig`: each hop vetted, and each connection made to the vetted address itself."""

    def __init__(
        self,
        config: WebConfig,
        *,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        service: str = "page fetch",
    ) -> None:
        self.config = config
        self.guard = AddressGuard(config.allow_private, resolver)
        self.http = HttpClient(config, service, guard=self.guard, transport=transport)

    async def get(self, url: str, accept: str = _ACCEPT) -> tuple[Response, list[str]]:
        """GET ``url``, following redirects by hand: the final response (any status, its body capped at
        ``max_page_bytes``) and the URLs redirected to. Raises ToolError (UnsafeURLError when refused)."""
        current = await self.guard.check_url(url)
        redirects: list[str] = []
        async with self.http.session() as client:
            while True:
                response = await self.http.send(
                    client, "GET", current, headers={"Accept": accept}, max_bytes=self.config.max_page_bytes
                )
                if response.status not in _REDIRECTS:
                    return response, redirects
                location = response.headers.get("location")
                if not location:
                    raise ToolError(f"{_short(url)}: HTTP {response.status} redirect without a Location")
                if len(redirects) >= self.config.max_redirects:
                    raise ToolError(f"{_short(url)}: more than {self.config.max_redirects} redirects")
                # Every hop is checked again: a public page may redirect to an internal one.
                current = await self.guard.check_url(current.join(location))
                redirects.append(str(current))

    async def fetch(self, url: str) -> Page:
        """Fetch one page and extract its main text. Raises ToolError (UnsafeURLError when refused)."""
        response, redirects = await self.get(url)
        if response.status >= 400:
            raise ToolError(f"{_short(url)}: HTTP {response.status}")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type and content_type not in _HTML_TYPES + _TEXT_TYPES:
            raise ToolError(f"{_short(url)}: not a web page ({content_type})")
        title, text = await asyncio.to_thread(
            extract_main_text, response.text, response.url, content_type or "text/html"
        )
        return Page(
            url=response.url,
            requested_url=url,
            title=title,
            text=text,
            content_type=content_type,
            status=response.status,
            bytes_read=len(response.content),
            truncated=response.truncated,
            redirects=redirects,
        )

    async def fetch_many(self, urls: list[str], budget_s: float | None = None) -> list[Page | ToolError]:
        """Fetch pages concurrently; a page that fails, or is not done within ``budget_s``, is a ToolError."""
        if not urls:
            return []
        tasks = [asyncio.create_task(self.fetch(u)) for u in urls]
        _, pending = await asyncio.wait(tasks, timeout=budget_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        results: list[Page | ToolError] = []
        for url, task in zip(urls, tasks, strict=True):
            if task in pending:
                results.append(ToolError(f"{_short(url)}: not read within {budget_s:g} s"))
            elif isinstance(error := task.exception(), ToolError):
                results.append(error)
            elif error is not None:
                raise error  # not a tool failure: our bug, and it must fail loudly
            else:
                results.append(task.result())
        return results


def _short(url: str) -> str:
    return url if len(url) <= 120 else url[:117] + "..."

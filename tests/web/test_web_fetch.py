"""Page fetching on the fake web (loopback, so allow_private=True) and the page-reading text search."""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest
from typer.testing import CliRunner

from deepmmsearch.cli import app
from deepmmsearch.errors import ToolError
from deepmmsearch.tools.base import TextHit, TextSearchBackend
from deepmmsearch.tools.web_search import PageReadingTextSearch
from deepmmsearch.web.config import WebConfig
from deepmmsearch.web.fetch import PageFetcher


def local(**overrides) -> WebConfig:
    return WebConfig(**{"allow_private": True, "per_host_rps": 1000.0, "backoff_s": 0.01, **overrides})


def test_fetch_extracts_the_main_text_without_boilerplate(web, article) -> None:
    web.route("/k", web.Reply(article()))
    page = asyncio.run(PageFetcher(local()).fetch(web.url("/k")))
    assert page.title == "Korvath Point Lighthouse"  # trafilatura drops the site name
    assert "38 metres tall" in page.text and "automated in 1962" in page.text
    assert "Cookie settings" not in page.text and "Shop" not in page.text
    assert page.status == 200 and page.content_type == "text/html" and not page.truncated


def test_redirects_are_followed_recorded_and_capped(web, article) -> None:
    web.route("/old", web.Reply(status=301, headers={"Location": "/mid"}))
    web.route("/mid", web.Reply(status=302, headers={"Location": web.url("/k")}))
    web.route("/k", web.Reply(article()))
    page = asyncio.run(PageFetcher(local()).fetch(web.url("/old")))
    assert page.url == web.url("/k") and page.redirects == [web.url("/mid"), web.url("/k")]
    assert page.requested_url == web.url("/old")
    web.route("/loop", web.Reply(status=302, headers={"Location": "/loop"}))
    with pytest.raises(ToolError, match="more than 2 redirects"):
        asyncio.run(PageFetcher(local(max_redirects=2)).fetch(web.url("/loop")))
    assert len(web.seen("/loop")) == 3


def test_bytes_are_capped_after_decompression(web) -> None:
    big = "<html><body>" + "<p>lighthouse keepers and their lamps</p>" * 5000 + "</body></html>"
    web.route("/big", web.Reply(gzip.compress(big.encode()), headers={"Content-Encoding": "gzip"}))
    page = asyncio.run(PageFetcher(local(max_page_bytes=10_000)).fetch(web.url("/big")))
    assert page.truncated and page.bytes_read == 10_000
    assert "lighthouse keepers" in page.text


def test_non_pages_and_http_errors_are_tool_errors(web) -> None:
    web.route("/img", web.Reply(b"\x89PNG...", content_type="image/png"))
    web.route("/gone", web.Reply("not here", 404))
    web.route("/txt", web.Reply("plain words about a \x1b[31mlighthouse", content_type="text/plain"))
    fetcher = PageFetcher(local())
    with pytest.raises(ToolError, match=r"not a web page \(image/png\)"):
        asyncio.run(fetcher.fetch(web.url("/img")))
    with pytest.raises(ToolError, match="HTTP 404"):
        asyncio.run(fetcher.fetch(web.url("/gone")))
    assert asyncio.run(fetcher.fetch(web.url("/txt"))).text == "plain words about a [31mlighthouse"  # no ESC


def test_fetch_retries_503_with_retry_after(web, article) -> None:
    web.route("/k", web.Reply("busy", 503, {"Retry-After": "0"}), web.Reply(article()))
    page = asyncio.run(PageFetcher(local()).fetch(web.url("/k")))
    assert "38 metres" in page.text and len(web.seen("/k")) == 2


class Snippets(TextSearchBackend):
    name = "fake"

    def __init__(self, hits: list[TextHit]) -> None:
        self.hits = hits

    async def search(self, query: str, k: int) -> list[TextHit]:
        return [TextHit(**h.__dict__) for h in self.hits[:k]]


def test_page_reading_search_replaces_snippets_with_page_text(web, article) -> None:
    web.route("/k", web.Reply(article()))
    web.route("/slow", web.Reply(article(), delay_s=1.0))
    hits = [
        TextHit("Korvath", web.url("/k"), "snippet one"),
        TextHit("Broken", web.url("/missing"), "snippet two"),
        TextHit("Slow", web.url("/slow"), "snippet three"),
        TextHit("Not fetched", web.url("/k"), "snippet four"),  # beyond fetch_top
    ]
    config = local(fetch_top=3, page_chars=120, fetch_budget_s=0.5)
    search = PageReadingTextSearch(Snippets(hits), PageFetcher(config), config)
    out = asyncio.run(search.search("korvath", 4))
    assert out[0].text.startswith("Korvath Point Lighthouse") and len(out[0].text) <= 124
    assert [h.text for h in out[1:]] == ["snippet two", "snippet three", "snippet four"]
    assert search.name == "fake" and [h.url for h in out] == [h.url for h in hits]


def test_fetch_many_keeps_order_and_reports_each_failure(web, article) -> None:
    web.route("/a", web.Reply(article()))
    results = asyncio.run(PageFetcher(local()).fetch_many([web.url("/nope"), web.url("/a"), "gopher://x/"]))
    assert isinstance(results[0], ToolError) and "HTTP 404" in str(results[0])
    assert "38 metres" in results[1].text
    assert isinstance(results[2], ToolError) and "only http and https" in str(results[2])


def test_dmms_fetch_prints_the_page(web, article) -> None:
    web.route("/k", web.Reply(article()))
    runner = CliRunner()
    result = runner.invoke(app, ["fetch", web.url("/k"), "--allow-private", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["title"].startswith("Korvath Point") and "38 metres tall" in data["text"]
    result = runner.invoke(app, ["fetch", web.url("/k"), "--allow-private", "--max-chars", "40"])
    assert result.exit_code == 0 and result.stdout.startswith("Korvath Point Lighthouse\n")
    refused = runner.invoke(app, ["fetch", web.url("/k")])
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: refused 127.0.0.1: loopback address") and refused.stderr.count("\n") == 1
    assert len(web.seen("/k")) == 2

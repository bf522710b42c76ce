"""Page fetching refuses what it must: other schemes, and hosts that are or resolve to non-public addresses."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from deepmmsearch.errors import ToolError
from deepmmsearch.web.config import WebConfig
from deepmmsearch.web.fetch import PageFetcher
from deepmmsearch.web.safety import AddressGuard, UnsafeURLError, blocked_reason

PUBLIC = "93.184.216.34"


def fake_resolver(table: dict[str, list[str]]):
    """Names resolve from a table; nothing ever reaches DNS."""

    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise ToolError(f"cannot resolve host {host!r}")
        return table[host]

    return resolve


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("192.168.1.20", "private"),
        ("169.254.169.254", "link-local"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        (PUBLIC, None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_blocked_reason_names_the_kind_of_address(address: str, reason: str | None) -> None:
    assert blocked_reason(address) == reason


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://10.0.0.1/admin", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]:8080/", "loopback"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://example.com:70/", "only http and https"),
        ("ftp://example.com/x", "only http and https"),
        ("http:///nohost", "no host"),
        ("http://intranet.corp/", "private"),  # a name that resolves to a private address
        ("http://dual.example/", "private"),  # one public and one private answer is still refused
    ],
)
def test_fetch_refuses_unsafe_urls_with_a_clear_message(url: str, expected: str) -> None:
    resolver = fake_resolver({"intranet.corp": ["10.1.2.3"], "dual.example": [PUBLIC, "192.168.0.7"]})
    fetcher = PageFetcher(WebConfig(allow_private=False), resolver=resolver)
    with pytest.raises(UnsafeURLError, match=expected) as info:
        asyncio.run(fetcher.fetch(url))
    assert "refused" in str(info.value)


def test_refused_loopback_url_sends_nothing(web) -> None:
    web.route("/secret", "never served")
    with pytest.raises(UnsafeURLError, match="loopback"):
        asyncio.run(PageFetcher(WebConfig(allow_private=False)).fetch(web.url("/secret")))
    assert web.requests == []


def test_allow_private_lets_loopback_through(web) -> None:
    web.route("/ok", web.Reply("<html><body><p>local development page</p></body></html>"))
    page = asyncio.run(PageFetcher(WebConfig(allow_private=True)).fetch(web.url("/ok")))
    assert "local development page" in page.text


def test_redirect_to_a_private_address_is_refused_at_the_hop() -> None:
    """A public page answering with a redirect to an internal host: the hop is checked again."""
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://metadata.internal/computeMetadata/v1/"})

    resolver = fake_resolver({"news.example": [PUBLIC], "metadata.internal": ["169.254.169.254"]})
    fetcher = PageFetcher(WebConfig(), resolver=resolver, transport=httpx.MockTransport(handler))
    with pytest.raises(UnsafeURLError, match=r"metadata\.internal \(resolves to 169\.254\.169\.254\): link-local"):
        asyncio.run(fetcher.fetch("http://news.example/story"))
    assert calls == ["http://news.example/story"]  # the internal URL was never requested


def test_redirect_to_another_scheme_is_refused(web) -> None:
    web.route("/go", web.Reply(status=301, headers={"Location": "gopher://127.0.0.1:70/_SET"}))
    with pytest.raises(UnsafeURLError, match="only http and https"):
        asyncio.run(PageFetcher(WebConfig(allow_private=True)).fetch(web.url("/go")))


def test_dns_rebinding_is_refused_at_connection_time(web) -> None:
    """The name passes the up-front check, then resolves to loopback when the client connects."""
    answers = iter([[PUBLIC], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    fetcher = PageFetcher(WebConfig(allow_private=False), resolver=rebinding)
    with pytest.raises(UnsafeURLError, match="loopback"):
        asyncio.run(fetcher.fetch(f"http://rebind.example:{web.port}/"))
    assert web.requests == []


def test_guard_connects_to_the_checked_address(web) -> None:
    """With a name that resolves (by injection) to loopback and allow_private, the page really is read:
    the client connects to the address the guard approved, not to a second DNS answer."""
    web.route("/", web.Reply("<html><body><p>served through the guard</p></body></html>"))
    fetcher = PageFetcher(WebConfig(allow_private=True), resolver=fake_resolver({"site.test": ["127.0.0.1"]}))
    page = asyncio.run(fetcher.fetch(f"http://site.test:{web.port}/"))
    assert "served through the guard" in page.text
    assert web.requests[0].headers["host"] == f"site.test:{web.port}"


def test_guard_resolves_names_only_through_the_resolver() -> None:
    guard = AddressGuard(resolver=fake_resolver({"a.example": [PUBLIC]}))
    assert asyncio.run(guard.addresses("a.example", 443)) == [PUBLIC]
    with pytest.raises(ToolError, match="cannot resolve"):
        asyncio.run(guard.addresses("b.example", 443))

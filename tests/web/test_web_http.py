"""The shared HTTP helper: retries, backoff, Retry-After, caps, error translation, key redaction."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from deepmmsearch.errors import ToolError
from deepmmsearch.web.config import WebConfig
from deepmmsearch.web.http import HttpClient, backoff_delay, parse_retry_after, redact, register_secret


def client(config: WebConfig, service: str = "api") -> tuple[HttpClient, list[float]]:
    """A client whose retry sleeps are recorded instead of slept."""
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    return HttpClient(config, service, sleep=sleep), delays


def test_retry_after_is_honoured_on_429(web, fast_config) -> None:
    web.route("/s", web.Reply({"error": "slow down"}, 429, {"Retry-After": "1"}), web.Reply({"ok": 1}))
    http, delays = client(fast_config)
    assert asyncio.run(http.get_json("GET", web.url("/s"))) == {"ok": 1}
    assert len(web.seen("/s")) == 2
    assert delays and delays[0] >= 1.0  # not the 10 ms backoff: the server asked for a second


def test_retry_after_longer_than_the_cap_gives_up_at_once(web, fast_config) -> None:
    web.route("/s", web.Reply({"error": "quota"}, 429, {"Retry-After": "3600"}))
    http, delays = client(fast_config)
    with pytest.raises(ToolError, match=r"rate limited \(HTTP 429: quota\); the server asks to wait 3600 s"):
        asyncio.run(http.get_json("GET", web.url("/s")))
    assert len(web.seen("/s")) == 1 and delays == []


def test_5xx_is_retried_with_growing_backoff_then_reported(web, fast_config) -> None:
    web.route("/s", web.Reply("upstream exploded", 502))
    http, delays = client(fast_config, "brave")
    with pytest.raises(ToolError, match=r"^brave: HTTP 502: upstream exploded \(gave up after 3 attempts\)$"):
        asyncio.run(http.get_json("GET", web.url("/s")))
    assert len(web.seen("/s")) == 3
    assert len(delays) == 2 and 0.005 <= delays[0] <= 0.01 and 0.01 <= delays[1] <= 0.02


def test_500_then_success(web, fast_config) -> None:
    web.route("/s", web.Reply({"error": "oops"}, 500), web.Reply({"results": []}))
    http, _ = client(fast_config)
    assert asyncio.run(http.get_json("GET", web.url("/s"))) == {"results": []}


def test_timeouts_are_retried_then_reported(web) -> None:
    web.route("/slow", web.Reply({"late": True}, delay_s=0.6))
    http, delays = client(WebConfig(timeout_s=0.2, max_retries=1, backoff_s=0.01, per_host_rps=1000))
    with pytest.raises(ToolError, match=r"timed out after 0.2 s \(gave up after 2 attempts\)"):
        asyncio.run(http.get_json("GET", web.url("/slow")))
    assert len(delays) == 1


def test_connection_refused_is_a_tool_error(fast_config) -> None:
    http, _ = client(fast_config)
    with pytest.raises(ToolError, match=r"connection failed \(ConnectError\)"):
        asyncio.run(http.get_json("GET", "http://127.0.0.1:1/search"))


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ({"body": '{"organic_results": [{"title": "cut he'}, "not valid JSON"),
        ({"body": "<html>oops</html>", "content_type": "text/html"}, "not valid JSON"),
        (
            {"body": {"error": "Invalid API key."}, "status": 401},
            r"API key was rejected \(HTTP 401: Invalid API key.\)",
        ),
        ({"body": {"detail": {"error": "Forbidden"}}, "status": 403}, r"rejected \(HTTP 403: Forbidden\); check X_KEY"),
        ({"body": {"message": "bad query"}, "status": 400}, r"^api: HTTP 400: bad query$"),
    ],
)
def test_bad_responses_become_clear_tool_errors(web, fast_config, reply: dict, expected: str) -> None:
    web.route("/s", web.Reply(**reply))
    http, _ = client(fast_config)
    with pytest.raises(ToolError, match=expected):
        asyncio.run(http.get_json("GET", web.url("/s"), key_env="X_KEY"))


def test_oversized_response_is_refused(web) -> None:
    web.route("/big", web.Reply({"results": ["x" * 5000]}))
    http, _ = client(WebConfig(max_api_bytes=1000, per_host_rps=1000))
    with pytest.raises(ToolError, match="larger than 1000 bytes"):
        asyncio.run(http.get_json("GET", web.url("/big")))


def test_the_key_never_appears_in_errors_or_logs(web, fast_config, caplog) -> None:
    key = "sk-test-http-9f8e7d6c5b4a"
    register_secret(key)
    web.route("/s", web.Reply({"error": f"Invalid API key {key} for this account"}, 401))
    http, _ = client(fast_config, "serpapi")
    with caplog.at_level(logging.DEBUG), pytest.raises(ToolError) as info:
        asyncio.run(http.get_json("GET", web.url("/s"), params={"q": "x", "api_key": key}, key_env="SERPAPI_API_KEY"))
    assert web.seen("/s")[0].query["api_key"] == key  # it was sent ...
    assert key not in str(info.value) and "***" in str(info.value)  # ... and never shown
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # httpx did log the URL
    assert all(key not in r.getMessage() for r in caplog.records)


def test_redact_hides_plain_and_url_encoded_secrets() -> None:
    register_secret("a/b+c=d")
    assert redact("k=a/b+c=d and k=a%2Fb%2Bc%3Dd") == "k=*** and k=***"


def test_parse_retry_after_reads_seconds_and_dates() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(30.0)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    config = WebConfig(backoff_s=1.0, max_backoff_s=5.0)
    for attempt, top in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 5.0), (6, 5.0)]:
        delays = {backoff_delay(config, attempt) for _ in range(20)}
        assert all(top / 2 <= d <= top for d in delays)
        assert len(delays) > 1  # jittered
    assert backoff_delay(config, 0, retry_after=3.0) == 3.0


def test_requests_in_flight_are_bounded(web) -> None:
    web.route("/s", web.Reply({"ok": 1}, delay_s=0.1))
    http, _ = client(WebConfig(max_in_flight=2, per_host_rps=1000))

    async def many() -> list:
        return await asyncio.gather(*(http.get_json("GET", web.url("/s")) for _ in range(6)))

    assert asyncio.run(many()) == [{"ok": 1}] * 6
    assert web.max_in_flight == 2


def test_per_host_rate_limit_spaces_requests(web) -> None:
    web.route("/s", web.Reply({"ok": 1}))
    http, _ = client(WebConfig(per_host_rps=20))  # one request per 50 ms

    async def many() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.gather(*(http.get_json("GET", web.url("/s")) for _ in range(5)))
        return loop.time() - start

    assert asyncio.run(many()) >= 0.19  # 4 gaps of 50 ms

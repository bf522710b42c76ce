"""Admission under load: a bounded queue, deliberate 429s and 503s, and slots that always come back."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx
import pytest

from deepmmsearch.serve.app import Admission, ServeError


async def _one(http: httpx.AsyncClient, base: str, messages: list[dict], stream: bool) -> tuple[int, str]:
    """One client: the HTTP status and the answer it read (streamed or not)."""
    body = {"model": "m", "messages": messages, "stream": stream}
    if not stream:
        response = await http.post(f"{base}/v1/chat/completions", json=body)
        answer = response.json()["choices"][0]["message"]["content"] if response.status_code == 200 else ""
        return response.status_code, answer
    async with http.stream("POST", f"{base}/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, ""
        answer, done = "", False
        async for line in response.aiter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                chunk = json.loads(line[6:])
                assert "error" not in chunk, chunk
                answer += chunk["choices"][0]["delta"].get("content") or ""
        return (200 if done else -1), answer


async def _crowd(base: str, messages: list[dict], clients: int) -> list[tuple[int, str]]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        return await asyncio.gather(*(_one(http, base, messages, stream=i % 2 == 0) for i in range(clients)))


def test_fifty_concurrent_clients_get_answers_or_deliberate_429s(serve, messages: list[dict]) -> None:
    with serve(delay_s=0.1, max_active=4, max_queue=8) as base:
        results = asyncio.run(_crowd(base, messages, 50))
        statuses = Counter(status for status, _ in results)
        assert set(statuses) <= {200, 429}, statuses
        assert statuses[429] > 0  # 50 at once cannot all fit in 4 running + 8 waiting
        assert statuses[200] >= 12
        assert all(answer == "38 metres" for status, answer in results if status == 200)
        health = httpx.get(f"{base}/health").json()
        assert (health["active"], health["waiting"]) == (0, 0)


def test_fifty_concurrent_clients_all_served_when_the_queue_holds_them(serve, messages: list[dict]) -> None:
    with serve(delay_s=0.02, max_active=8, max_queue=64) as base:
        results = asyncio.run(_crowd(base, messages, 50))
    assert [status for status, _ in results] == [200] * 50
    assert {answer for _, answer in results} == {"38 metres"}


def test_429_carries_retry_after(serve, messages: list[dict]) -> None:
    async def two() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as http:
            body = {"model": "m", "messages": messages}
            first = asyncio.create_task(http.post(f"{base}/v1/chat/completions", json=body))
            await asyncio.sleep(0.15)  # the first one is running now
            second = await http.post(f"{base}/v1/chat/completions", json=body)
            return [await first, second]

    with serve(delay_s=0.2, max_active=1, max_queue=0) as base:
        first, second = asyncio.run(two())
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.headers["retry-after"] == "1"
    assert second.json()["error"]["code"] == "queue_full"


def test_a_client_that_leaves_mid_stream_gives_its_slot_back(serve, messages: list[dict]) -> None:
    with serve(delay_s=5.0, max_active=1) as base:  # far longer than the wait below: the episode is cancelled
        body = {"model": "m", "messages": messages, "stream": True}
        with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=20) as response:
            lines = response.iter_lines()  # held: a dropped iterator would close the stream at once
            assert next(lines).startswith("data: ")
            assert httpx.get(f"{base}/health").json()["active"] == 1
        for _ in range(40):
            if httpx.get(f"{base}/health").json()["active"] == 0:
                break
            asyncio.run(asyncio.sleep(0.05))
        assert httpx.get(f"{base}/health").json()["active"] == 0


def test_admission_refuses_beyond_the_queue_and_times_out_waiters() -> None:
    async def scenario() -> None:
        admission = Admission(max_active=1, max_queue=1, queue_timeout_s=0.1)
        release = await admission.acquire()
        assert admission.active == 1
        waiter = asyncio.create_task(admission.acquire())
        await asyncio.sleep(0)
        assert admission.waiting == 1
        with pytest.raises(ServeError) as full:
            await admission.acquire()
        assert full.value.status == 429
        with pytest.raises(ServeError) as late:
            await waiter
        assert late.value.status == 503 and "Retry-After" in late.value.headers
        release()
        release()  # releasing twice must not free a second slot
        assert admission.active == 0
        again = await admission.acquire()
        assert admission.active == 1 and admission._slots.locked()
        again()

    asyncio.run(scenario())

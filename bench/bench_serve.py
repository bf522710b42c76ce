"""Latency and throughput of ``dmms serve`` under concurrent clients, on loopback only.

By default it starts the server in this process (a thread, on 127.0.0.1 and an ephemeral port) with the
shipped example: the scripted lighthouse episode (3 turns, an image search and a text search) over the
in-memory tools of examples/kb. ``--model-delay-ms`` makes each model turn take that long, like a real model;
0 measures the server's own overhead. ``--url`` benchmarks a server that is already running instead.

    python bench/bench_serve.py                                  # 500 requests, 50 clients
    python bench/bench_serve.py --stream                         # streaming; also time to first step
    python bench/bench_serve.py --model-delay-ms 100 --max-active 8 --max-queue 16   # see 429s
    python bench/bench_serve.py --url http://127.0.0.1:8000 --requests 200

Client and server share the CPU when run in one process, so the figures are an upper bound on latency.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def build_server_app(model_delay_s: float, max_active: int, max_queue: int) -> object:
    """The example agent behind the app, with memory tools and no tool cache (every call does the work)."""
    from deepmmsearch.agent import Agent, AgentConfig
    from deepmmsearch.policies.base import Conversation, Generation, Policy
    from deepmmsearch.policies.scripted import ScriptedPolicy
    from deepmmsearch.serve import ServeConfig
    from deepmmsearch.serve.app import create_app
    from deepmmsearch.tools import Toolbox
    from deepmmsearch.tools.memory import ListSummarizer, MemoryGrounder, MemoryImageSearch, MemoryTextSearch

    class DelayedPolicy(Policy):
        def __init__(self, inner: Policy) -> None:
            self.inner, self.name, self.max_batch_size = inner, inner.name, inner.max_batch_size

        async def generate(self, conversations: Sequence[Conversation]) -> list[Generation]:
            if model_delay_s:
                await asyncio.sleep(model_delay_s)
            return await self.inner.generate(conversations)

    kb = EXAMPLES / "kb"
    toolbox = Toolbox(MemoryTextSearch.from_kb(kb), MemoryImageSearch.from_kb(kb), MemoryGrounder(), ListSummarizer())
    policy = DelayedPolicy(ScriptedPolicy.from_file(EXAMPLES / "lighthouse.script.json"))
    config = ServeConfig(max_active=max_active, max_queue=max_queue, queue_timeout_s=120)
    return create_app(Agent(policy, toolbox, AgentConfig()), config)


def percentile(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, round(q * (len(sorted_ms) - 1)))]


async def one_request(http: httpx.AsyncClient, url: str, body: dict, stream: bool) -> tuple[int, float, float]:
    """(status, latency s, time to first step s); the first step time is the latency when not streaming."""
    start = time.perf_counter()
    if not stream:
        response = await http.post(url, json=body)
        latency = time.perf_counter() - start
        if response.status_code == 200 and response.json()["choices"][0]["message"]["content"] != "38 metres":
            return -1, latency, latency
        return response.status_code, latency, latency
    first = None
    async with http.stream("POST", url, json={**body, "stream": True}) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, time.perf_counter() - start, 0.0
        done = False
        async for line in response.aiter_lines():
            if first is None and '"step"' in line:
                first = time.perf_counter() - start
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: ") and "error" in json.loads(line[6:]):
                return -1, time.perf_counter() - start, 0.0
    latency = time.perf_counter() - start
    return (200 if done else -1), latency, first or latency


async def run_load(base: str, requests: int, concurrency: int, stream: bool) -> tuple[list, float]:
    image = base64.b64encode((EXAMPLES / "lighthouse.png").read_bytes()).decode()
    parts = [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}},
        {"type": "text", "text": "How tall is this lighthouse?"},
    ]
    body = {"model": "bench", "messages": [{"role": "user", "content": parts}]}
    url = f"{base}/v1/chat/completions"
    remaining = iter(range(requests))
    results: list[tuple[int, float, float]] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client(http: httpx.AsyncClient) -> None:
        for _ in remaining:  # a closed loop: each client sends its next request when the last one is done
            results.append(await one_request(http, url, body, stream))

    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        for _ in range(min(5, requests)):  # warm-up: first-request costs are not what we measure
            await one_request(http, url, body, stream)
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return results, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50, help="clients sending at once")
    parser.add_argument("--stream", action="store_true", help="use stream: true")
    parser.add_argument("--model-delay-ms", type=float, default=0.0, help="simulated time per model turn")
    parser.add_argument("--max-active", type=int, default=16, help="server: episodes at once")
    parser.add_argument("--max-queue", type=int, default=64, help="server: requests waiting (429 beyond)")
    parser.add_argument("--url", help="benchmark this running server (loopback) instead of starting one")
    args = parser.parse_args()

    if args.url:
        server = nullcontext(args.url.rstrip("/"))
    else:
        from deepmmsearch.serve.app import serve_in_thread

        server = serve_in_thread(build_server_app(args.model_delay_ms / 1000, args.max_active, args.max_queue))
    with server as base:
        results, elapsed = asyncio.run(run_load(base, args.requests, args.concurrency, args.stream))

    statuses = Counter(status for status, _, _ in results)
    ok = sorted(latency * 1000 for status, latency, _ in results if status == 200)
    mode = "stream" if args.stream else "plain"
    print(
        f"{mode}: {args.requests} requests, {args.concurrency} clients, model delay {args.model_delay_ms:g} ms/turn, "
        f"max_active {args.max_active}, max_queue {args.max_queue}"
    )
    print("status counts:", dict(sorted(statuses.items())), "(-1: wrong answer or broken stream)")
    if ok:
        print(
            f"latency ms (200s): p50 {statistics.median(ok):.1f}  p95 {percentile(ok, 0.95):.1f}  "
            f"p99 {percentile(ok, 0.99):.1f}  max {ok[-1]:.1f}"
        )
        if args.stream:
            first = sorted(f * 1000 for status, _, f in results if status == 200)
            print(f"first step ms: p50 {statistics.median(first):.1f}  p95 {percentile(first, 0.95):.1f}")
    print(f"throughput: {statuses[200] / elapsed:.1f} answered requests/s over {elapsed:.2f} s")


if __name__ == "__main__":
    main()

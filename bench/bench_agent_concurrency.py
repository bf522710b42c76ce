"""How well do concurrent episodes overlap their tool calls?

64 episodes each make 3 text searches that take 200 ms, then answer. With perfect overlap the whole run
takes as long as one episode (3 x 200 ms); run one after another it would take 64 times longer. Prints the
overlap ratio: ideal wall time over measured wall time (1.0 is perfect, 1/64 is fully serial).

    python bench/bench_agent_concurrency.py [--episodes 64] [--tool-ms 200] [--searches 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from PIL import Image

from deepmmsearch.agent import Agent
from deepmmsearch.policies.scripted import ScriptedPolicy
from deepmmsearch.records import Question
from deepmmsearch.tools import Toolbox
from deepmmsearch.tools.base import ImageSearchBackend, TextHit, TextSearchBackend
from deepmmsearch.tools.memory import MemoryGrounder


class SleepySearch(TextSearchBackend, ImageSearchBackend):
    """A search backend that takes a fixed time, like a remote API, and returns one hit."""

    name = "sleepy"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def search(self, query, k, image_ref=None):  # serves both interfaces
        await asyncio.sleep(self.seconds)
        return [TextHit("Result", "https://example.org", f"about {query}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--tool-ms", type=float, default=200.0)
    parser.add_argument("--searches", type=int, default=3)
    args = parser.parse_args()

    replies = [f"<reason>step {i}</reason><text_search>query {i}</text_search>" for i in range(args.searches)]
    replies.append("<reason>done</reason><answer>42</answer>")
    backend = SleepySearch(args.tool_ms / 1000)
    agent = Agent(ScriptedPolicy(replies), Toolbox(backend, backend, MemoryGrounder()))
    questions = [Question(id=f"q{i}", image="mem", question="?") for i in range(args.episodes)]
    images = [Image.new("RGB", (16, 16))] * args.episodes

    start = time.perf_counter()
    trajectories = asyncio.run(agent.run_many(questions, images=images))
    wall = time.perf_counter() - start
    assert all(t.answer == "42" for t in trajectories)
    ideal = args.searches * args.tool_ms / 1000
    serial = ideal * args.episodes
    print(f"episodes: {args.episodes}, tool calls per episode: {args.searches} x {args.tool_ms:.0f} ms")
    print(f"wall time: {wall:.3f} s (ideal {ideal:.3f} s, fully serial {serial:.1f} s)")
    print(f"overlap ratio (ideal / measured): {ideal / wall:.3f}   (1/{args.episodes} = {1 / args.episodes:.3f})")


if __name__ == "__main__":
    main()

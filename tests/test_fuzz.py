"""Throw thousands of random and adversarial model outputs at the parser and the loop: nothing may escape."""

import asyncio
import json
import random

from PIL import Image

from deepmmsearch.agent import Agent, AgentConfig
from deepmmsearch.policies.base import Generation, Policy
from deepmmsearch.protocol import Action, FormatError, Rules, StopReason, parse
from deepmmsearch.records import Question, Trajectory
from deepmmsearch.tools import build_toolbox

PIECES = [
    "<reason>",
    "</reason>",
    "<answer>",
    "</answer>",
    "<text_search>",
    "</text_search>",
    "<img_search>",
    "</img_search>",
    "<img>",
    "</img>",
    "<img/>",
    "<information>",
    "</information>",
    "<REASON>",
    "</Answer>",
    "< answer >",
    "</ text_search>",
    "<reason",
    "answer>",
    "<<",
    ">>",
    "<>",
    "</>",
    "<think>",
    "\x00",
    "\ud800",
    "\ufeff",
    "\u202e",
    "\n",
    "\t",
    " ",
    "Paris",
    "Eiffel Tower height",
    "é中文",
    "🙂",
    "&lt;answer&gt;",
    "Unable to answer due to lack of relevant information",
    "1871",
    "",
    "\\",
    '"',
    "'",
    "\r\n",
]


def random_output(rng: random.Random) -> str:
    mode = rng.random()
    if mode < 0.45:
        return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 14)))
    if mode < 0.65:
        return "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(0, 200)))
    if mode < 0.75:
        return bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 300))).decode("latin-1")
    if mode < 0.8:
        return "<reason>" + "x" * rng.choice([100, 100_000]) + "</reason><answer>a</answer>"
    if mode < 0.85:  # deep nesting
        depth = rng.randint(1, 500)
        return "<reason>" * depth + "</reason>" * depth
    # near-valid replies with one mutation
    valid = rng.choice(
        [
            "<reason>r</reason><answer>Paris</answer>",
            "<reason>r</reason><text_search>tower height</text_search>",
            "<reason>r</reason><img_search><img></img_search>",
            "<reason>r</reason><img_search>the left dog</img_search>",
        ]
    )
    i = rng.randint(0, len(valid))
    return valid[:i] + rng.choice(PIECES) + valid[i + rng.randint(0, 3) :]


def test_parser_never_raises_and_always_decides():
    rng = random.Random(1234)
    outcomes = {"action": 0, "error": 0}
    for _ in range(3000):
        text = random_output(rng)
        result = parse(text)
        assert isinstance(result, Action | FormatError)
        if isinstance(result, FormatError):
            assert result.message
            outcomes["error"] += 1
        else:
            assert result.kind.is_tool or result.query
            outcomes["action"] += 1
    assert outcomes["action"] > 50 and outcomes["error"] > 1000


class FuzzPolicy(Policy):
    name = "fuzz"
    max_batch_size = 32

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    async def generate(self, conversations):
        return [Generation(random_output(self.rng)) for _ in conversations]


def test_loop_survives_fuzzed_policies(example_tools):
    toolbox = build_toolbox(example_tools)
    agent = Agent(FuzzPolicy(7), toolbox, AgentConfig(rules=Rules(max_turns=8)))
    image = Image.new("RGB", (32, 32), "white")
    questions = [Question(id=f"f{i}", image="mem", question="What is it?") for i in range(300)]
    trajectories = asyncio.run(agent.run_many(questions, images=[image] * len(questions)))
    valid = {r.value for r in StopReason}
    reasons = [t.stop_reason for t in trajectories]
    assert set(reasons) <= valid
    assert {"answer", "format_error"} <= set(reasons)
    for t in trajectories:
        assert t.turns <= 8 and t.num_tool_calls <= 10
        assert Trajectory.from_dict(json.loads(json.dumps(t.to_dict(), ensure_ascii=False))) == t

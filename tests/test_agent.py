import asyncio
import json

import pytest
from PIL import Image

from deepmmsearch.agent import Agent, AgentConfig
from deepmmsearch.errors import ConfigError, ContextLimitError, ToolError
from deepmmsearch.policies.base import Generation, Policy
from deepmmsearch.policies.scripted import ScriptedPolicy
from deepmmsearch.protocol import Rules, StopReason
from deepmmsearch.records import Box, Question, Trajectory
from deepmmsearch.tools import Toolbox, ToolboxConfig, build_toolbox
from deepmmsearch.tools.base import TextSearchBackend
from deepmmsearch.tools.memory import MemoryGrounder

IMG = "<reason>r</reason><img_search><img></img_search>"
CROP = "<reason>r</reason><img_search>the tower</img_search>"


def text(q):
    return f"<reason>r</reason><text_search>{q}</text_search>"


def answer(a):
    return f"<reason>r</reason><answer>{a}</answer>"


@pytest.fixture
def toolbox(example_tools):
    return build_toolbox(example_tools)


@pytest.fixture
def question(example_image):
    return Question(id="q1", image=str(example_image), question="How tall is this lighthouse?", answers=["38 m"])


def run(policy, toolbox, question, **rules):
    agent = Agent(policy, toolbox, AgentConfig(rules=Rules(**rules)))
    return asyncio.run(agent.run(question))


def test_multi_turn_episode_is_fully_recorded(toolbox, question):
    t = run(ScriptedPolicy([IMG, text("Korvath Point Lighthouse height"), answer("38 metres")]), toolbox, question)
    assert t.stop_reason == StopReason.ANSWER and t.answer == "38 metres"
    assert t.tool_calls == {"image_search": 1, "text_search": 1}
    assert t.turns == 3 and t.format_errors == 0 and t.rule_errors == 0
    assert [m.role for m in t.messages] == ["system", "user", "assistant", "user", "assistant", "user", "assistant"]
    image_obs, text_obs = t.messages[3], t.messages[5]
    assert image_obs.tool.tool == "image_search" and image_obs.tool.sources[0]["title"] == "Korvath Point Lighthouse"
    assert "<information>" in image_obs.text and "Korvath Point" in image_obs.text
    assert "38 metres" in text_obs.text and text_obs.tool.query == "Korvath Point Lighthouse height"
    assert t.messages[1].image == question.image
    assert [m.trainable for m in t.messages] == [m.role == "assistant" for m in t.messages]
    assert set(t.timings) == {"total_s", "policy_s", "tools_s"}
    assert t.cache == {"misses": 2}


def test_trajectory_round_trips_through_json(toolbox, question):
    question.extra = {"source": "unit-test", "nested": {"a": [1, 2]}}
    t = run(ScriptedPolicy([CROP, text("height"), answer("38")]), toolbox, question)
    data = json.loads(json.dumps(t.to_dict()))
    assert data["source"] == "unit-test" and data["question"] == question.question
    back = Trajectory.from_dict(data)
    assert back == t and back.to_dict() == t.to_dict()


def test_second_image_search_is_refused_and_counted(toolbox, question):
    t = run(ScriptedPolicy([IMG, CROP, answer("38")]), toolbox, question)
    assert t.stop_reason == StopReason.ANSWER
    assert t.rule_errors == 1 and t.tool_calls == {"image_search": 1}
    assert "at most 1" in t.messages[5].text and t.messages[4].error


def test_tool_budget_ends_the_episode(toolbox, question):
    t = run(ScriptedPolicy([text("a"), text("b"), text("c")]), toolbox, question, max_tool_calls=2)
    assert t.stop_reason == StopReason.TOOL_BUDGET and t.tool_calls == {"text_search": 2}
    assert "no tool calls left" in t.messages[-2].text


def test_turn_limit(toolbox, question):
    t = run(ScriptedPolicy([text("a"), text("b"), text("c")]), toolbox, question, max_turns=2)
    assert t.stop_reason == StopReason.MAX_TURNS and t.turns == 2 and t.answer is None


def test_consecutive_format_errors_end_the_episode(toolbox, question):
    t = run(ScriptedPolicy(["hello", "<answer>x", "??"]), toolbox, question)
    assert t.stop_reason == StopReason.FORMAT_ERROR and t.format_errors == 3
    assert all("could not be used" in m.text for m in t.messages[3::2])


def test_a_valid_action_resets_the_error_streak(toolbox, question):
    t = run(ScriptedPolicy(["bad", "bad", text("q"), "bad", "bad", answer("x")]), toolbox, question)
    assert t.stop_reason == StopReason.ANSWER and t.format_errors == 4


def test_exhausted_script_is_a_policy_error(toolbox, question):
    t = run(ScriptedPolicy([text("q")]), toolbox, question)
    assert t.stop_reason == StopReason.POLICY_ERROR and "ran out" in t.error


class BrokenSearch(TextSearchBackend):
    name = "broken"

    def __init__(self, delay: float = 0.0, error: str | None = None) -> None:
        self.delay, self.error = delay, error

    async def search(self, query, k):
        await asyncio.sleep(self.delay)
        if self.error:
            raise ToolError(self.error)
        return []


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        (BrokenSearch(error="HTTP 500 from the provider"), "text search failed: HTTP 500"),
        (BrokenSearch(delay=5), "text search failed: timed out after 0.05 s"),
    ],
)
def test_failing_tools_become_observations(toolbox, question, backend, expected):
    box = Toolbox(backend, toolbox.image_search, toolbox.grounder, config=ToolboxConfig(timeout_s=0.05))
    t = run(ScriptedPolicy([text("q"), answer("x")]), box, question)
    assert t.stop_reason == StopReason.ANSWER
    assert expected in t.messages[3].text and t.messages[3].tool.error


def test_crop_records_the_box_and_missing_regions_fall_back(toolbox, question):
    box = Toolbox(toolbox.text_search, toolbox.image_search, MemoryGrounder({"the tower": Box(130, 20, 190, 180)}))
    t = run(ScriptedPolicy([CROP, answer("x")]), box, question)
    assert t.messages[3].tool.box == [130, 20, 190, 180]
    t = run(ScriptedPolicy(["<reason>r</reason><img_search>a dragon</img_search>", answer("x")]), box, question)
    assert t.messages[3].tool.box is None and "Could not find 'a dragon'" in t.messages[3].text


def test_bad_image_fails_only_its_episode(toolbox, question, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    other = Question(id="q2", image=str(bad), question="?")
    agent = Agent(ScriptedPolicy([answer("x")]), toolbox)
    good, broken = asyncio.run(agent.run_many([question, other]))
    assert good.stop_reason == StopReason.ANSWER
    assert broken.stop_reason == StopReason.INPUT_ERROR and "not an image" in broken.error


class CountingPolicy(Policy):
    name = "counting"
    max_batch_size = 8

    def __init__(self):
        self.batches = []

    async def generate(self, conversations):
        self.batches.append(len(conversations))
        return [Generation(answer("x")) for _ in conversations]


def test_generation_is_batched_across_episodes(toolbox, question):
    policy = CountingPolicy()
    agent = Agent(policy, toolbox)
    image = Image.new("RGB", (8, 8))
    trajectories = asyncio.run(agent.run_many([question] * 20, images=[image] * 20))
    assert all(t.stop_reason == StopReason.ANSWER for t in trajectories)
    assert sum(policy.batches) == 20 and max(policy.batches) == 8 and len(policy.batches) == 3


def test_concurrent_runs_of_one_agent_share_its_batcher_whatever_its_plan(question):
    from deepmmsearch.eval.modes import DIRECT_PLAN

    # As the server calls it: separate run() calls at once. With a 5 s window, only a shared batcher fills a
    # batch of 2 and goes at once; a batcher per call would wait out the window and send two calls of one.
    policy = CountingPolicy()
    policy.max_batch_size = 2
    agent = Agent(policy, None, AgentConfig(batch_window_s=5.0), DIRECT_PLAN)
    image = Image.new("RGB", (8, 8))

    async def two_at_once():
        return await asyncio.gather(agent.run(question, image), agent.run(question, image))

    for _ in range(2):  # a second event loop gets a batcher of its own, which works as well
        assert [t.answer for t in asyncio.run(asyncio.wait_for(two_at_once(), 2.0))] == ["x", "x"]
    assert policy.batches == [2, 2]


class SlowPolicy(Policy):
    name = "slow"

    async def generate(self, conversations):
        await asyncio.sleep(10)
        return []


class TooLongPolicy(Policy):
    name = "too-long"

    async def generate(self, conversations):
        raise ContextLimitError("the conversation is longer than 32k tokens")


def test_episode_timeout_and_context_limit(toolbox, question):
    agent = Agent(SlowPolicy(), toolbox, AgentConfig(episode_timeout_s=0.05))
    assert asyncio.run(agent.run(question)).stop_reason == StopReason.TIMEOUT
    agent = Agent(SlowPolicy(), toolbox, AgentConfig(policy_timeout_s=0.05))
    t = asyncio.run(agent.run(question))
    assert t.stop_reason == StopReason.POLICY_ERROR and "no reply within" in t.error
    t = asyncio.run(Agent(TooLongPolicy(), toolbox).run(question))
    assert t.stop_reason == StopReason.CONTEXT_LIMIT


def test_the_baselines_are_plans_of_the_one_loop(toolbox, question):
    from deepmmsearch.eval.modes import DIRECT_PLAN, RAG_PLAN

    # The loop's scaffolding serves them as it serves the agent: timeouts, streaming, the tool bookkeeping.
    slow = Agent(SlowPolicy(), None, AgentConfig(policy_timeout_s=0.05), DIRECT_PLAN)
    t = asyncio.run(slow.run(question))
    assert t.stop_reason == StopReason.POLICY_ERROR and "no reply within" in t.error
    seen, asked = [], []
    policy = ScriptedPolicy([answer("38 metres")])
    original = policy.generate

    async def recording(conversations):
        asked.extend(c.answer_only for c in conversations)  # told that the reply must answer: no tools here
        return await original(conversations)

    policy.generate = recording
    t = asyncio.run(Agent(policy, toolbox, plan=RAG_PLAN).run(question, on_message=lambda _, m: seen.append(m)))
    assert seen == t.messages and [m.role for m in seen] == ["system", "user", "user", "assistant"]
    assert asked == [True] and t.turns == 1 and t.answer == "38 metres"
    assert t.tool_calls == {"image_search": 1, "text_search": 1} and sum(t.cache.values()) == 2
    with pytest.raises(ValueError, match="rag episodes call tools"):
        Agent(policy, None, plan=RAG_PLAN)


def test_on_message_sees_every_message_in_order(toolbox, question):
    seen = []
    agent = Agent(ScriptedPolicy([text("q"), answer("x")]), toolbox)
    t = asyncio.run(agent.run(question, on_message=lambda traj, m: seen.append(m)))
    assert seen == t.messages


def test_episodes_are_prompted_in_the_configs_style_else_the_models_else_full(toolbox, question, tmp_path):
    from deepmmsearch.models.build import write_prompt_style
    from deepmmsearch.protocol import PromptStyle, system_prompt
    from deepmmsearch.runner import resolve_agent_config

    write_prompt_style(tmp_path, PromptStyle.SHORT)  # as SFT leaves it beside a model trained on short-style data

    def episode(model, configured=""):
        config = resolve_agent_config(model, AgentConfig(prompts=configured))  # where the agent is built, once
        policy = ScriptedPolicy([text("Risbel Ibex"), answer("38 m")])
        return asyncio.run(Agent(policy, toolbox, config).run(question)).messages

    full = episode("openai:m@http://127.0.0.1:9/v1")
    assert full[0].text == system_prompt(PromptStyle.FULL) and full[3].text.startswith("<information>")
    short = episode(f"hf:{tmp_path}")
    assert short[0].text == system_prompt(PromptStyle.SHORT)
    assert short[3].text.startswith("Tool calls left: 9.") and short[3].text.endswith("</information>")
    assert episode(f"hf:{tmp_path}", "full")[0].text == system_prompt(PromptStyle.FULL)
    assert episode(f"hf:{tmp_path / 'untrained'}")[0].text == system_prompt(PromptStyle.FULL)
    with pytest.raises(ConfigError, match=r"agent.prompts must be one of full, short"):
        AgentConfig(prompts="terse")


class LockedPolicy(Policy):
    """One batch at a time behind a lock, in a worker thread, as the hf: and vllm: policies run: a request queued
    behind others marks when its own generation starts."""

    name = "locked"
    max_batch_size = 1
    marks_start = True

    def __init__(self, seconds: float) -> None:
        import threading

        self.seconds = seconds
        self.lock = threading.Lock()

    async def generate(self, conversations):
        return await asyncio.to_thread(self.generate_sync, conversations)

    def generate_sync(self, conversations):
        import time

        with self.lock:
            for conversation in conversations:
                conversation.started_at = time.monotonic()
            time.sleep(self.seconds)
            return [Generation(answer("38 m")) for _ in conversations]


def test_reply_timeout_does_not_count_the_time_a_request_queues(toolbox, question):
    # Four episodes, one generation of 0.2 s at a time: the last waits 0.6 s in the queue, past the 0.35 s timeout.
    agent = Agent(LockedPolicy(0.2), toolbox, AgentConfig(policy_timeout_s=0.35))
    trajectories = asyncio.run(agent.run_many([question] * 4))
    assert [t.stop_reason for t in trajectories] == [StopReason.ANSWER] * 4
    # A generation that itself runs past the timeout still times out.
    agent = Agent(LockedPolicy(0.3), toolbox, AgentConfig(policy_timeout_s=0.1))
    t = asyncio.run(agent.run(question))
    assert t.stop_reason == StopReason.POLICY_ERROR and "no reply within" in t.error


class CountedPolicy(Policy):
    """Text searches whose prompt grows 50 tokens a turn from 100, each reply 40 tokens; records the bounds it got."""

    name = "counted"

    def __init__(self) -> None:
        self.bounds: list[tuple[int | None, int | None]] = []

    async def generate(self, conversations):
        out = []
        for conversation in conversations:
            turn = len(self.bounds)
            self.bounds.append((conversation.max_new_tokens, conversation.max_length))
            out.append(Generation(text(f"q{turn}"), prompt_tokens=100 + 50 * turn, completion_tokens=40))
        return out


def test_episode_token_budget_bounds_replies_and_ends_the_episode(toolbox, question):
    policy = CountedPolicy()
    agent = Agent(policy, toolbox, AgentConfig(max_episode_tokens=150))
    t = asyncio.run(agent.run(question))
    # Turn 1 may take the whole budget; later turns end at the opening prompt (100 tokens) + 150. After turn 3,
    # 200 - 100 + 40 = 140 tokens are used; after turn 4, 190: no reply could follow, so no tool is called.
    assert policy.bounds == [(150, None), (None, 250), (None, 250), (None, 250)]
    assert t.stop_reason == StopReason.CONTEXT_LIMIT and "budget of 150 tokens" in t.error
    assert t.tool_calls == {"text_search": 3} and t.turns == 4
    unbounded = CountedPolicy()
    asyncio.run(Agent(unbounded, toolbox, AgentConfig(rules=Rules(max_turns=2))).run(question))
    assert unbounded.bounds == [(None, None), (None, None)]


class NoRoomPolicy(Policy):
    """The reply a batched local policy gives a conversation with no room left beside others that had some."""

    name = "no-room"

    async def generate(self, conversations):
        return [Generation(text="", token_ids=[], finish_reason="context_limit") for _ in conversations]


def test_a_reply_with_no_room_ends_the_episode_at_the_context_limit(toolbox, question):
    t = asyncio.run(Agent(NoRoomPolicy(), toolbox).run(question))
    assert t.stop_reason == StopReason.CONTEXT_LIMIT and t.format_errors == 0

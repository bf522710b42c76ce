"""How a policy meets a question in an evaluation: the ``agent`` protocol, or the paper's two baselines.

- ``agent`` / ``prompt_agent``: :class:`deepmmsearch.agent.Agent` as is (a trained or a general model, same loop);
- ``direct``: one turn, no tools: <reason> then <answer>;
- ``rag``: always one whole-image search and one text search on the question, then one answering turn.

Every mode yields the same :class:`Trajectory` record, so judging, reporting and resuming do not care which ran.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from PIL import Image

from deepmmsearch.agent import Agent, AgentConfig, GenerationBatcher, assistant_message
from deepmmsearch.errors import ContextLimitError, InputError, PolicyError
from deepmmsearch.images import load_image
from deepmmsearch.policies.base import Conversation, Policy
from deepmmsearch.protocol import (
    Action,
    ActionKind,
    FormatError,
    StopReason,
    clean_text,
    direct_prompt,
    direct_system_prompt,
    parse,
    rag_prompts,
    rag_system_prompt,
)
from deepmmsearch.records import Message, Question, Trajectory
from deepmmsearch.tools.toolbox import Toolbox

MODES = ("agent", "direct", "rag", "prompt_agent")
TOOL_MODES = ("agent", "rag", "prompt_agent")

DoneHook = Callable[[Trajectory], None]


async def run_mode(
    mode: str,
    policy: Policy,
    toolbox: Toolbox | None,
    questions: Sequence[Question],
    config: AgentConfig | None = None,
    on_done: DoneHook | None = None,
) -> list[Trajectory]:
    """Run every question in ``mode``, concurrently; ``on_done`` sees each trajectory as it ends."""
    config = config or AgentConfig()
    if mode in ("agent", "prompt_agent"):
        assert toolbox is not None
        return await Agent(policy, toolbox, config).run_many(questions, on_done=on_done)
    if mode not in ("direct", "rag"):
        raise ValueError(f"unknown mode {mode!r}")
    batcher = GenerationBatcher(policy, config.batch_window_s)
    limit = asyncio.Semaphore(config.max_concurrent_episodes)

    async def one(index: int, question: Question) -> Trajectory:
        async with limit:
            trajectory = Trajectory(question=question, model=policy.name)
            start = time.perf_counter()
            episode_id = f"{question.id}#{index}"
            try:
                image = await asyncio.to_thread(load_image, question.image)
            except InputError as e:
                trajectory.stop_reason, trajectory.error = StopReason.INPUT_ERROR.value, str(e)
            else:
                try:
                    async with asyncio.timeout(config.episode_timeout_s):
                        if mode == "rag":
                            assert toolbox is not None
                            await _rag(trajectory, image, toolbox, batcher, episode_id, config)
                        else:
                            await _direct(trajectory, image, batcher, episode_id, config)
                except TimeoutError:
                    trajectory.stop_reason = StopReason.TIMEOUT.value
                    trajectory.error = f"the episode ran past {config.episode_timeout_s:g} s"
                finally:
                    policy.end_episode(episode_id)
            trajectory.timings["total_s"] = time.perf_counter() - start
        if on_done is not None:
            on_done(trajectory)
        return trajectory

    return list(await asyncio.gather(*(one(i, q) for i, q in enumerate(questions))))


async def _direct(
    trajectory: Trajectory, image: Image.Image, batcher: GenerationBatcher, episode_id: str, config: AgentConfig
) -> None:
    question = trajectory.question
    trajectory.messages.append(Message("system", direct_system_prompt()))
    trajectory.messages.append(Message("user", direct_prompt(question.question), image=question.image))
    trajectory.timings.update(policy_s=0.0, tools_s=0.0)
    await _answer_turn(trajectory, image, batcher, episode_id, config)


async def _rag(
    trajectory: Trajectory,
    image: Image.Image,
    toolbox: Toolbox,
    batcher: GenerationBatcher,
    episode_id: str,
    config: AgentConfig,
) -> None:
    question = trajectory.question
    trajectory.timings.update(policy_s=0.0, tools_s=0.0)
    actions = [Action(ActionKind.IMAGE_SEARCH), Action(ActionKind.TEXT_SEARCH, question.question)]
    results = await asyncio.gather(*(toolbox.run(a, question.question, image, question.image) for a in actions))
    for action, result in zip(actions, results, strict=True):
        trajectory.timings["tools_s"] += result.latency_s
        trajectory.tool_calls[action.kind.value] = trajectory.tool_calls.get(action.kind.value, 0) + 1
        cache_key = "hits" if result.cached else "misses"
        trajectory.cache[cache_key] = trajectory.cache.get(cache_key, 0) + 1
    first, second = rag_prompts(question.question, results[0].observation, results[1].observation)
    trajectory.messages.append(Message("system", rag_system_prompt()))
    trajectory.messages.append(Message("user", first, image=question.image, tool=results[0]))
    trajectory.messages.append(Message("user", second, tool=results[1]))
    await _answer_turn(trajectory, image, batcher, episode_id, config)


async def _answer_turn(
    trajectory: Trajectory, image: Image.Image, batcher: GenerationBatcher, episode_id: str, config: AgentConfig
) -> None:
    """One generation that must be an answer; anything else ends the episode with a format error."""
    tokens = trajectory.tokens
    tokens.update(prompt=0, completion=0)
    t0 = time.perf_counter()
    try:
        conversation = Conversation(episode_id, list(trajectory.messages), image, trajectory.question)
        generation = await batcher.reply(conversation, config.policy_timeout_s)
    except TimeoutError:
        trajectory.stop_reason = StopReason.POLICY_ERROR.value
        trajectory.error = f"no reply within {config.policy_timeout_s:g} s"
        return
    except ContextLimitError as e:
        trajectory.stop_reason, trajectory.error = StopReason.CONTEXT_LIMIT.value, str(e)
        return
    except PolicyError as e:
        trajectory.stop_reason, trajectory.error = StopReason.POLICY_ERROR.value, str(e)
        return
    latency = time.perf_counter() - t0
    trajectory.timings["policy_s"] += latency
    trajectory.turns += 1
    tokens["prompt"] += generation.prompt_tokens or 0
    tokens["completion"] += generation.completion_tokens or 0
    text = clean_text(generation.text)
    parsed = parse(text, config.rules)
    error = None
    if isinstance(parsed, FormatError):
        error = parsed.message
    elif parsed.kind is not ActionKind.ANSWER:
        error = "no tools in this mode; the reply must end with <answer>...</answer>"
    trajectory.messages.append(assistant_message(text, parsed, error, generation, latency))
    if error is not None:
        if isinstance(parsed, FormatError):
            trajectory.format_errors += 1
        else:
            trajectory.rule_errors += 1
        trajectory.stop_reason, trajectory.error = StopReason.FORMAT_ERROR.value, error
        return
    assert not isinstance(parsed, FormatError)
    trajectory.answer = parsed.query
    trajectory.stop_reason = StopReason.ANSWER.value

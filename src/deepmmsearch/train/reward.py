"""GRPO's reward: judge_weight x judge + format_weight x format (the paper: 0.9 and 0.1).

The judge is the evaluation's own scorer (:class:`deepmmsearch.eval.harness.Scorer`: the rule judge offline, the
LLM judge when configured), so the number we train on and the number we report cannot drift apart. The rollout
judges each trajectory once; the two reward functions below read the verdict and the format record from it, and
TRL weights and sums them (``reward_weights``) and logs each one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from deepmmsearch.protocol import ActionKind, StopReason
from deepmmsearch.records import Trajectory

TOOL_KINDS = tuple(k.value for k in ActionKind if k.is_tool)


async def judge_trajectories(scorer: Any, trajectories: Sequence[Trajectory], concurrency: int = 32) -> None:
    """Set ``correct`` and ``score`` of each trajectory with the evaluation's scorer, up to ``concurrency`` verdicts
    at once (an LLM judge answers in seconds; one at a time, 256 rollouts would wait minutes a step)."""
    import asyncio

    limit = asyncio.Semaphore(concurrency)

    async def judge(trajectory: Trajectory) -> None:
        async with limit:
            verdict = await scorer.judge(trajectory.answer, trajectory.question)
        trajectory.correct, trajectory.score = verdict.correct, verdict.score

    await asyncio.gather(*(judge(t) for t in trajectories))


def format_score(trajectory: Trajectory) -> float:
    """1 when every reply was well-formed and within the rules and the episode ended with an answer, else 0."""
    clean = trajectory.format_errors == 0 and trajectory.rule_errors == 0
    return 1.0 if clean and trajectory.stop_reason == StopReason.ANSWER.value else 0.0


def rollout_metrics(trajectories: Sequence[Trajectory]) -> dict[str, float]:
    """Per-rollout means of what a step did: accuracy, format errors, tool calls by kind, turns."""
    n = max(len(trajectories), 1)
    calls: Counter[str] = Counter()
    for trajectory in trajectories:
        calls.update(trajectory.tool_calls)
    metrics = {
        "rollout/accuracy": sum(bool(t.correct) for t in trajectories) / n,
        "rollout/format_error_rate": sum(format_score(t) == 0.0 for t in trajectories) / n,
        "rollout/turns": sum(t.turns for t in trajectories) / n,
        "rollout/tool_calls": sum(t.num_tool_calls for t in trajectories) / n,
    }
    metrics.update({f"rollout/tool_calls/{kind}": calls[kind] / n for kind in TOOL_KINDS})
    return metrics


def judge_reward(
    prompts: list, completions: list, trajectory: list[Trajectory], log_metric: Callable | None = None, **_: Any
) -> list[float]:
    """The judge's score of each rollout's answer (0 or 1 for the rule judge). Logs the step's rollout metrics."""
    if log_metric is not None:
        for name, value in rollout_metrics(trajectory).items():
            log_metric(name, value)
    return [float(t.score or 0.0) for t in trajectory]


def format_reward(prompts: list, completions: list, trajectory: list[Trajectory], **_: Any) -> list[float]:
    """1 for a rollout whose every reply followed the protocol and which ended with an answer, else 0."""
    return [format_score(t) for t in trajectory]


REWARD_FUNCS = (judge_reward, format_reward)  # in the order of RewardSettings' weights

"""How a policy meets a question in an evaluation: the ``agent`` protocol, or the paper's two baselines.

- ``agent`` / ``prompt_agent``: the agent protocol as is (a trained or a general model, same loop);
- ``direct``: one turn, no tools: <reason> then <answer>;
- ``rag``: always one whole-image search and one text search on the question, then one answering turn.

Each mode is an :class:`~deepmmsearch.agent.EpisodePlan` of the one agent loop, so every mode yields the same
:class:`Trajectory` record, and judging, reporting and resuming do not care which ran.
"""

from __future__ import annotations

from deepmmsearch.agent import AGENT_PLAN, Episode, EpisodePlan
from deepmmsearch.protocol import (
    DIRECT_SYSTEM_PROMPT,
    RAG_SYSTEM_PROMPT,
    Action,
    ActionKind,
    direct_prompt,
    rag_prompts,
)
from deepmmsearch.records import Message


async def direct_opening(episode: Episode) -> None:
    """The direct baseline's opening: its system prompt and the question."""
    question = episode.question
    episode.messages.append(Message("system", DIRECT_SYSTEM_PROMPT))
    episode.messages.append(Message("user", direct_prompt(question.question), image=question.image))


async def rag_opening(episode: Episode) -> None:
    """The RAG baseline's opening: a whole-image search and a text search on the question, run at once, each result
    in its own user turn."""
    question = episode.question
    actions = [Action(ActionKind.IMAGE_SEARCH), Action(ActionKind.TEXT_SEARCH, question.question)]
    image_result, text_result = await episode.call_tools(actions)
    first, second = rag_prompts(question.question, image_result.observation, text_result.observation)
    episode.messages.append(Message("system", RAG_SYSTEM_PROMPT))
    episode.messages.append(Message("user", first, image=question.image, tool=image_result))
    episode.messages.append(Message("user", second, tool=text_result))


DIRECT_PLAN = EpisodePlan("direct", direct_opening, uses_tools=False, answer_only=True)
RAG_PLAN = EpisodePlan("rag", rag_opening, answer_only=True)
PLANS: dict[str, EpisodePlan] = {
    "agent": AGENT_PLAN,
    "direct": DIRECT_PLAN,
    "rag": RAG_PLAN,
    "prompt_agent": AGENT_PLAN,
}
MODES = tuple(PLANS)

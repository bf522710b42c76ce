"""Labelling questions with a knowledge-taxonomy category when their records carry none, with an LLM."""

from __future__ import annotations

import asyncio

from deepmmsearch.errors import PolicyError
from deepmmsearch.policies.base import Conversation
from deepmmsearch.policies.openai_api import OpenAIPolicy
from deepmmsearch.records import Message, Question

TAXONOMY = (
    "landmark",
    "animal",
    "plant",
    "artwork",
    "vehicle",
    "person",
    "food",
    "sports",
    "science",
    "geography",
    "history",
    "object",
    "other",
)
_PROMPT = """Which category of knowledge does answering this question about an image need? Choose exactly one of:
{categories}.
Question: {question}
Reply with the category name only."""


async def classify_missing(questions: list[Question], model: str, concurrency: int = 16) -> list[Question]:
    """Fill ``category`` where it is missing, asking ``MODEL[@BASE_URL]``; unknown replies become "other"."""
    name, _, base_url = model.partition("@")
    policy = OpenAIPolicy(name, base_url or None)
    limit = asyncio.Semaphore(concurrency)

    async def one(question: Question) -> None:
        if question.category:
            return
        prompt = _PROMPT.format(categories=", ".join(TAXONOMY), question=question.question)
        async with limit:
            try:
                reply = (await policy.generate([Conversation(question.id, [Message("user", prompt)])]))[0].text
            except PolicyError:
                reply = ""
        words = reply.strip().lower().split()
        question.category = next((w.strip(".,") for w in words if w.strip(".,") in TAXONOMY), "other")

    try:
        await asyncio.gather(*(one(q) for q in questions))
    finally:
        await policy.aclose()
    return questions

"""The policy interface: a batch of conversations in, one generated reply per conversation out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from deepmmsearch.records import Message, Question


@dataclass
class Conversation:
    """What a policy sees: the messages so far and the input image they refer to.

    ``id`` names the episode, so that a policy may keep per-episode state such as a KV cache. ``question`` is the
    record the episode answers; models ignore it, but a teacher that knows the ground truth reads it.
    """

    id: str
    messages: list[Message]
    image: Image.Image | None = None
    question: Question | None = None


@dataclass
class Generation:
    """One generated reply. Token ids and log-probs are set by policies that have them (local models)."""

    text: str
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None


class Policy(ABC):
    """A model that writes the assistant's next reply.

    ``max_batch_size`` tells the agent loop how many conversations one :meth:`generate` call may take; the
    loop gathers requests of concurrent episodes up to that size.
    """

    name: str = "policy"
    max_batch_size: int = 1

    @abstractmethod
    async def generate(self, conversations: Sequence[Conversation]) -> list[Generation]:
        """Generate the next assistant reply of each conversation. Raises PolicyError on backend failure."""

    def end_episode(self, conversation_id: str) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Forget per-episode state (a KV cache, say) once an episode is over."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections or memory."""

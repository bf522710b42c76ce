"""The policy interface: a batch of conversations in, one generated reply per conversation out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from deepmmsearch.errors import ConfigError
from deepmmsearch.protocol import STOP_STRINGS
from deepmmsearch.records import Message


@dataclass
class SamplingConfig:
    """How replies are sampled; shared by every policy that samples."""

    temperature: float = field(default=0.0, metadata={"help": "0 is greedy", "aliases": ("--temperature",)})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    max_new_tokens: int = field(default=1024, metadata={"help": "longest reply per turn, in tokens"})

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_new_tokens < 1:
            raise ConfigError(f"sampling: need temperature >= 0, 0 < top_p <= 1, max_new_tokens >= 1; got {self}")


EPISODE_MARK = "#"  # an episode's id is its question's id, this mark and the episode's place in its run


def episode_id(question_id: str, index: int) -> str:
    """The id of the ``index``-th episode of a run, on the question ``question_id``."""
    return f"{question_id}{EPISODE_MARK}{index}"


@dataclass
class Conversation:
    """What a policy sees: the messages so far and the input image they refer to.

    ``id`` names the episode, so that a policy may keep per-episode state such as a KV cache; it starts with the id
    of the question the episode answers (:attr:`question_id`). ``answer_only``: this reply must answer, the episode
    gives the model no tools (the baselines). ``max_new_tokens`` and ``max_length`` bound this turn's reply (in
    tokens) and prompt plus reply, below the sampling settings and the model's context: the agent sets them from the
    episode's token budget.
    """

    id: str
    messages: list[Message]
    image: Image.Image | None = None
    answer_only: bool = False
    max_new_tokens: int | None = None
    max_length: int | None = None
    started_at: float | None = None  # time.monotonic() when the policy began on it; the reply timeout counts from it

    @property
    def question_id(self) -> str:
        """The id of the question this conversation's episode answers."""
        return self.id.split(EPISODE_MARK, 1)[0]

    def reply_room(self, prompt_tokens: int, max_new_tokens: int, context: int) -> int:
        """Tokens this turn's reply may take after ``prompt_tokens`` of prompt: the sampling settings'
        ``max_new_tokens``, this conversation's bounds and the model's ``context``, whichever is least."""
        limit = min(context, self.max_length) if self.max_length is not None else context
        cap = min(max_new_tokens, self.max_new_tokens) if self.max_new_tokens is not None else max_new_tokens
        return min(cap, limit - prompt_tokens)


@dataclass
class Generation:
    """One generated reply. Token ids and log-probs are set by policies that have them (local models)."""

    text: str
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    redrawn: list[int] | None = None  # positions in token_ids that guided decoding drew again, among allowed tokens


def reply_text(tokenizer: Any, token_ids: Sequence[int], stop_ids: set[int]) -> str:
    """The text of sampled ``token_ids``: without a final stop token, and cut after the first stop string."""
    ids = list(token_ids[:-1]) if token_ids and token_ids[-1] in stop_ids else list(token_ids)
    text = tokenizer.decode(ids)
    ends = [text.find(stop) + len(stop) for stop in STOP_STRINGS if stop in text]
    return text[: min(ends)] if ends else text


class Policy(ABC):
    """A model that writes the assistant's next reply.

    ``max_batch_size`` tells the agent loop how many conversations one :meth:`generate` call may take; the
    loop gathers requests of concurrent episodes up to that size. ``marks_start``: see below.
    """

    name: str = "policy"
    max_batch_size: int = 1
    # True for a policy that may hold a batch back (behind a lock, a request limit) and sets each conversation's
    # ``started_at`` when it starts on it; otherwise the agent loop sets it when it hands the batch over.
    marks_start: bool = False

    @abstractmethod
    async def generate(self, conversations: Sequence[Conversation]) -> list[Generation]:
        """Generate the next assistant reply of each conversation. Raises PolicyError on backend failure."""

    def end_episode(self, conversation_id: str) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Forget per-episode state (a KV cache, say) once an episode is over."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections or memory."""

"""``openai:MODEL[@BASE_URL]``: any OpenAI-compatible chat-completions server (OpenAI, vLLM, SGLang, Ollama...)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from deepmmsearch.errors import ConfigError, ContextLimitError, PolicyError
from deepmmsearch.images import is_url, to_data_url
from deepmmsearch.policies.base import Conversation, Generation, Policy, SamplingConfig
from deepmmsearch.protocol import STOP_STRINGS, complete_stopped_reply


@dataclass
class OpenAIConfig:
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "environment variable with the key"})
    timeout_s: float = field(default=120.0, metadata={"help": "per request"})
    max_retries: int = field(default=4, metadata={"help": "retries with backoff on 429, 5xx and timeouts"})
    max_concurrency: int = field(default=32, metadata={"help": "requests in flight at once"})


class OpenAIPolicy(Policy):
    """Sends each conversation to a chat-completions endpoint, the image inline as a data URL.

    Retries with exponential backoff on 429, 5xx, timeouts and dropped connections are the SDK's own; what
    is left after them becomes one :class:`PolicyError` line saying what to fix.
    """

    marks_start = True  # requests wait on the concurrency limit: the reply timeout starts past it

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        sampling: SamplingConfig | None = None,
        config: OpenAIConfig | None = None,
    ) -> None:
        from openai import AsyncOpenAI

        self.config = config or OpenAIConfig()
        self.sampling = sampling or SamplingConfig()
        self.model = model
        self.base_url = base_url
        self.name = f"openai:{model}" + (f"@{base_url}" if base_url else "")
        self.max_batch_size = self.config.max_concurrency
        key = os.environ.get(self.config.api_key_env)
        if not key and base_url is None:
            raise ConfigError(f"openai:{model} needs an API key: set {self.config.api_key_env}")
        # Self-hosted servers (vLLM, Ollama) usually take any key; the SDK insists on a non-empty one.
        self._client = AsyncOpenAI(
            api_key=key or "EMPTY",
            base_url=base_url,
            timeout=self.config.timeout_s,
            max_retries=self.config.max_retries,
        )
        self._semaphore = asyncio.Semaphore(self.config.max_concurrency)
        self._image_urls: dict[str, str] = {}

    async def generate(self, conversations: Sequence[Conversation]) -> list[Generation]:
        return list(await asyncio.gather(*(self._one(c) for c in conversations)))

    def end_episode(self, conversation_id: str) -> None:
        self._image_urls.pop(conversation_id, None)

    async def aclose(self) -> None:
        await self._client.close()

    def to_openai_messages(self, conversation: Conversation) -> list[dict]:
        """Our messages in chat-completions form; the turn that carries the image gets an image part."""
        out = []
        for message in conversation.messages:
            if message.image is None:
                out.append({"role": message.role, "content": message.text})
                continue
            url = message.image if is_url(message.image) else self._image_url(conversation)
            parts = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": message.text}]
            out.append({"role": message.role, "content": parts})
        return out

    def _image_url(self, conversation: Conversation) -> str:
        if conversation.image is None:
            raise PolicyError("a message refers to an image but the conversation carries none")
        if conversation.id not in self._image_urls:  # encode once per episode, not once per turn
            self._image_urls[conversation.id] = to_data_url(conversation.image)
        return self._image_urls[conversation.id]

    async def _one(self, conversation: Conversation) -> Generation:
        import openai

        where = self.base_url or "api.openai.com"
        async with self._semaphore:
            conversation.started_at = time.monotonic()  # the reply timeout counts from here, not from the queue
            try:
                response = await self._client.chat.completions.create(
                    model=self.model,
                    messages=self.to_openai_messages(conversation),
                    temperature=self.sampling.temperature,
                    top_p=self.sampling.top_p,
                    # The server knows the prompt's length, we do not: only the reply bound applies here.
                    max_tokens=min(self.sampling.max_new_tokens, conversation.max_new_tokens or 1 << 30),
                    stop=list(STOP_STRINGS),
                )
            except openai.AuthenticationError:
                raise PolicyError(
                    f"{where} rejected the API key (HTTP 401): set a valid key in {self.config.api_key_env}"
                ) from None
            except openai.APITimeoutError:
                raise PolicyError(
                    f"{where} did not answer within {self.config.timeout_s:g} s "
                    f"(after {self.config.max_retries} retries)"
                ) from None
            except openai.APIConnectionError:
                raise PolicyError(f"cannot reach the model server at {where}: is it running?") from None
            except openai.NotFoundError:
                raise PolicyError(f"{where} has no model {self.model!r} (HTTP 404)") from None
            except openai.BadRequestError as e:
                if "context" in str(e).lower():
                    raise ContextLimitError(f"the conversation is longer than {self.model}'s context") from None
                raise PolicyError(f"{where} refused the request (HTTP 400): {_brief(e)}") from None
            except openai.APIStatusError as e:
                raise PolicyError(
                    f"{where} answered HTTP {e.status_code} after {self.config.max_retries} retries: {_brief(e)}"
                ) from None
            except openai.APIError as e:  # a malformed response body, among others
                raise PolicyError(f"{where} sent a response that could not be read: {_brief(e)}") from None
        if not response.choices:
            raise PolicyError(f"{where} returned no choices")
        choice = response.choices[0]
        text = choice.message.content or ""
        if choice.finish_reason == "stop":
            text = complete_stopped_reply(text)
        usage = response.usage
        return Generation(
            text=text,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            finish_reason=choice.finish_reason,
        )


def _brief(error: Exception) -> str:
    return " ".join(str(error).split())[:200]

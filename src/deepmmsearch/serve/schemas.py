"""The wire format of the OpenAI-compatible API: request models and the response and chunk builders.

Requests are validated by pydantic and reduced to what the agent needs (one question, one image); fields
an OpenAI client may send that the agent does not use (temperature, top_p, ...) are accepted and ignored,
so that stock clients work unchanged.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deepmmsearch.errors import InputError
from deepmmsearch.records import Trajectory


class ImageURL(BaseModel):
    url: str
    detail: str | None = None


class ContentPart(BaseModel):
    """One part of a message's content: text, or an image given as a data URL or an http(s) URL."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageURL | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """A chat-completions request. Only ``messages`` and ``stream`` change what the agent does."""

    model_config = ConfigDict(extra="allow")

    model: str = ""
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None


def question_and_image(request: ChatRequest) -> tuple[str, str]:
    """The question (the text of the last user message) and the image URL (the last image any user sent)."""
    users = [m for m in request.messages if m.role == "user"]
    if not users:
        raise InputError("the request has no user message; send the question as a user message")
    image_url = None
    for message in users:
        if isinstance(message.content, list):
            for part in message.content:
                if part.type == "image_url" and part.image_url is not None:
                    image_url = part.image_url.url
    last = users[-1].content
    texts = [last] if isinstance(last, str) else [p.text or "" for p in last or [] if p.type == "text"]
    question = "\n".join(texts).strip()
    if not question:
        raise InputError("the last user message has no text; it must hold the question")
    if image_url is None:
        raise InputError("no image in the request: add an image_url part (a data URL or an http(s) URL)")
    return question, image_url


# ---------------------------------------------------------------------------------------------- responses


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def finish_reason(trajectory: Trajectory) -> str:
    # An episode that ended without an answer ran out of turns, tools or context: "length" in OpenAI terms.
    return "stop" if trajectory.answer is not None else "length"


def usage(trajectory: Trajectory) -> dict[str, int]:
    prompt = trajectory.tokens.get("prompt", 0)
    completion = trajectory.tokens.get("completion", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_response(completion_id: str, model: str, trajectory: Trajectory) -> dict[str, Any]:
    """A ``chat.completion`` whose message is the answer; the whole trajectory rides in ``trajectory``."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": trajectory.answer or ""},
                "finish_reason": finish_reason(trajectory),
            }
        ],
        "usage": usage(trajectory),
        "stop_reason": trajectory.stop_reason,
        "trajectory": trajectory.to_dict(),
    }


def chunk(
    completion_id: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    step: dict[str, Any] | None = None,
    finish: str | None = None,
    usage_: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``; our step details ride in the extra field ``step``."""
    out: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if step is not None:
        out["step"] = step
    if usage_ is not None:
        out["usage"] = usage_
    return out


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """The error object OpenAI clients parse (``openai.APIStatusError.message`` shows ``message``)."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}

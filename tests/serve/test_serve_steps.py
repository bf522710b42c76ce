"""Pure pieces of the server: requests reduced to a question and an image, messages turned into steps."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.protocol import Action, ActionKind
from deepmmsearch.records import Message, ToolResult
from deepmmsearch.serve import ServeConfig
from deepmmsearch.serve.schemas import ChatRequest, question_and_image
from deepmmsearch.serve.streaming import message_steps, sse


def _request(*messages: dict) -> ChatRequest:
    return ChatRequest.model_validate({"model": "m", "messages": list(messages), "temperature": 0.3})


def _image(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def test_question_is_the_last_user_text_and_the_image_the_last_user_image() -> None:
    request = _request(
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [_image("data:a"), {"type": "text", "text": "first?"}]},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [_image("https://x.org/b.png")]},
        {"role": "user", "content": "  And how tall is it? "},
    )
    assert question_and_image(request) == ("And how tall is it?", "https://x.org/b.png")


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"role": "system", "content": "hi"}], "no user message"),
        ([{"role": "user", "content": "what is it?"}], "no image"),
        ([{"role": "user", "content": [_image("data:a"), {"type": "text", "text": " "}]}], "no text"),
    ],
)
def test_requests_the_agent_cannot_run_are_input_errors(messages: list[dict], error: str) -> None:
    with pytest.raises(InputError, match=error):
        question_and_image(_request(*messages))


def test_malformed_requests_fail_validation() -> None:
    with pytest.raises(ValidationError):
        _request()
    with pytest.raises(ValidationError):
        _request({"role": "user", "content": [{"type": "audio", "audio": {}}]})


def test_steps_of_each_kind_of_message() -> None:
    search = Action(ActionKind.CROP_SEARCH, "the red cap", "find the logo")
    assert message_steps(Message("assistant", "...", action=search)) == [
        {"type": "reasoning", "text": "find the logo"},
        {"type": "search", "tool": "crop_search", "query": "the red cap"},
    ]
    answer = Action(ActionKind.ANSWER, "Paris", "")
    assert message_steps(Message("assistant", "...", action=answer)) == [{"type": "answer", "text": "Paris"}]
    assert message_steps(Message("assistant", "garbage", error="no tags found")) == [
        {"type": "invalid", "error": "no tags found", "text": "garbage"}
    ]
    tool = ToolResult("crop_search", "the red cap", "memory", "1. A cap", [{"title": "Cap", "url": "u", "x": 1}])
    tool.box, tool.latency_s = [1, 2, 3, 4], 0.0123
    (result,) = message_steps(Message("user", "<information>...", tool=tool))
    assert result["type"] == "result" and result["box"] == [1, 2, 3, 4] and result["latency_ms"] == 12.3
    assert result["sources"] == [{"title": "Cap", "url": "u"}]
    assert message_steps(Message("system", "prompt")) == []
    assert message_steps(Message("user", "Question: ...")) == []


def test_sse_lines() -> None:
    assert sse("[DONE]") == "data: [DONE]\n\n"
    assert sse({"a": "é"}) == 'data: {"a": "é"}\n\n'


def test_serve_config_rejects_impossible_limits() -> None:
    with pytest.raises(ConfigError, match="max_active"):
        ServeConfig(max_active=0)
    with pytest.raises(ConfigError, match="request_timeout_s"):
        ServeConfig(request_timeout_s=0)
    assert ServeConfig().api_key() is None

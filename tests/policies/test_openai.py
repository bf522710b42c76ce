import asyncio

import pytest
from PIL import Image

from deepmmsearch.errors import ConfigError, ContextLimitError, PolicyError
from deepmmsearch.policies import OpenAIConfig, load_policy
from deepmmsearch.policies.base import Conversation
from deepmmsearch.policies.openai_api import OpenAIPolicy
from deepmmsearch.records import Message


def conversation(image_ref: str = "photo.png") -> Conversation:
    return Conversation(
        "c1",
        [Message("system", "sys"), Message("user", "Question: what?", image=image_ref)],
        Image.new("RGB", (4, 4), "red"),
    )


def generate(policy, conv=None):
    return asyncio.run(policy.generate([conv or conversation()]))[0]


def test_request_carries_image_stop_strings_and_restores_the_closing_tag(fake_openai):
    fake_openai.replies = ["<reason>r</reason><answer>Paris</answer>"]
    policy = OpenAIPolicy("m", fake_openai.base_url)
    out = generate(policy)
    assert out.text == "<reason>r</reason><answer>Paris</answer>"  # the server dropped "</answer>"
    assert out.prompt_tokens == 100 and out.completion_tokens == 20
    body = fake_openai.requests[0]
    assert body["model"] == "m" and "</answer>" in body["stop"]
    parts = body["messages"][1]["content"]
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[1] == {"type": "text", "text": "Question: what?"}


def test_http_images_are_passed_through(fake_openai):
    fake_openai.replies = ["<reason>r</reason><answer>a</answer>"]
    generate(OpenAIPolicy("m", fake_openai.base_url), conversation("https://example.org/cat.jpg"))
    assert fake_openai.requests[0]["messages"][1]["content"][0]["image_url"]["url"] == "https://example.org/cat.jpg"


def test_retries_on_429_and_500_then_succeeds(fake_openai):
    fake_openai.replies = [
        (429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}),
        (500, {"error": {"message": "boom"}}, {}),
        "<reason>r</reason><answer>ok</answer>",
    ]
    out = generate(OpenAIPolicy("m", fake_openai.base_url, config=OpenAIConfig(max_retries=3)))
    assert out.text.endswith("<answer>ok</answer>") and len(fake_openai.requests) == 3


@pytest.mark.parametrize(
    ("reply", "error", "fragment"),
    [
        ((401, {"error": {"message": "bad key"}}, {}), PolicyError, "rejected the API key"),
        ((404, {"error": {"message": "no model"}}, {}), PolicyError, "has no model 'm'"),
        ((400, {"error": {"message": "maximum context length exceeded"}}, {}), ContextLimitError, "context"),
        ((503, {"error": {"message": "overloaded"}}, {}), PolicyError, "HTTP 503"),
    ],
)
def test_errors_become_one_clear_line(fake_openai, reply, error, fragment):
    fake_openai.replies = [reply] * 5
    with pytest.raises(error, match=fragment):
        generate(OpenAIPolicy("m", fake_openai.base_url, config=OpenAIConfig(max_retries=0)))


def test_unreachable_server():
    policy = OpenAIPolicy("m", "http://127.0.0.1:9/v1", config=OpenAIConfig(max_retries=0, timeout_s=2))
    with pytest.raises(PolicyError, match="cannot reach the model server"):
        generate(policy)


def test_key_comes_from_the_environment(fake_openai, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test-123")
    fake_openai.replies = ["<reason>r</reason><answer>a</answer>"]
    generate(OpenAIPolicy("m", fake_openai.base_url, config=OpenAIConfig(api_key_env="MY_KEY")))
    assert fake_openai.headers[0]["authorization"] == "Bearer sk-test-123"


def test_specs(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        load_policy("openai:gpt-4o")
    policy = load_policy("openai:qwen@http://127.0.0.1:8000/v1")
    assert policy.name == "openai:qwen@http://127.0.0.1:8000/v1"
    with pytest.raises(ConfigError, match="unknown model spec 'nope:x'"):
        load_policy("nope:x")

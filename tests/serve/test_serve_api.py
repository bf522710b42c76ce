"""The OpenAI-compatible API, driven by the official ``openai`` client against a running server."""

from __future__ import annotations

import base64
import functools
import io
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image

from deepmmsearch.errors import ConfigError
from deepmmsearch.serve import ServeConfig
from deepmmsearch.serve.app import create_app, serve_in_thread

BOX = [120, 30, 200, 220]


def client(base_url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=20)


def test_plain_request_returns_the_answer_and_the_trajectory(server: str, messages: list[dict]) -> None:
    response = client(server).chat.completions.create(model="anything", messages=messages)

    assert response.object == "chat.completion"
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].message.content == "38 metres"
    assert response.choices[0].finish_reason == "stop"
    assert response.model == "script:test"
    trajectory = response.model_extra["trajectory"]
    assert trajectory["stop_reason"] == "answer"
    assert trajectory["question"] == "How tall is it?"
    assert trajectory["image"] == "inline"  # the data URL is not echoed back
    assert trajectory["tool_calls"] == {"crop_search": 1, "text_search": 1}
    boxes = [m["tool"]["box"] for m in trajectory["messages"] if m.get("tool")]
    assert boxes == [BOX, None]


def test_streaming_request_sends_a_chunk_per_step(server: str, messages: list[dict]) -> None:
    chunks = list(client(server).chat.completions.create(model="anything", messages=messages, stream=True))

    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    steps = [c.model_extra["step"] for c in chunks if "step" in c.model_extra]
    assert [s["type"] for s in steps] == [
        "reasoning", "search", "result", "reasoning", "search", "result", "reasoning", "answer", "end",
    ]  # fmt: skip
    assert steps[1] == {"type": "search", "tool": "crop_search", "query": "the lighthouse tower"}
    assert steps[2]["box"] == BOX and steps[2]["sources"]
    assert "38 metres tall" in steps[5]["observation"]
    assert steps[-1]["stop_reason"] == "answer"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "38 metres"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_is_server_sent_events_ending_in_done(server: str, messages: list[dict]) -> None:
    body = {"model": "m", "messages": messages, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body, timeout=20) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    usage_chunk = json.loads(lines[-2][6:])
    assert usage_chunk["choices"] == [] and set(usage_chunk["usage"]) == {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
    }


def test_models_and_health(server: str) -> None:
    models = client(server).models.list()
    assert [m.id for m in models.data] == ["script:test"]
    health = httpx.get(f"{server}/health").json()
    assert health["status"] == "ok" and health["active"] == 0 and health["waiting"] == 0


def test_the_page_is_served_at_the_root(server: str) -> None:
    response = httpx.get(f"{server}/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/v1/chat/completions" in response.text and 'id="answer"' in response.text


def test_api_key_is_required_when_configured(serve, messages: list[dict], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMMS_TEST_KEY", "s3cret")
    with serve(api_key_env="DMMS_TEST_KEY") as base:
        with pytest.raises(openai.AuthenticationError) as caught:
            client(base, key="wrong").chat.completions.create(model="m", messages=messages)
        assert caught.value.status_code == 401
        no_key = httpx.post(f"{base}/v1/chat/completions", json={"model": "m", "messages": messages})
        assert no_key.status_code == 401
        assert no_key.headers["www-authenticate"] == "Bearer"
        assert httpx.get(f"{base}/v1/models").status_code == 401
        assert httpx.get(f"{base}/health").status_code == 200  # probes need no key
        ok = client(base, key="s3cret").chat.completions.create(model="m", messages=messages)
        assert ok.choices[0].message.content == "38 metres"


def test_a_key_variable_that_is_not_set_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DMMS_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="DMMS_TEST_KEY"):
        ServeConfig(api_key_env="DMMS_TEST_KEY").api_key()


def _post(base: str, parts: list[dict], **kwargs: object) -> httpx.Response:
    body = {"model": "m", "messages": [{"role": "user", "content": parts}]}
    return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=20, **kwargs)  # type: ignore[arg-type]


def _png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _image(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


QUESTION = {"type": "text", "text": "What is this?"}


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([QUESTION], "no image in the request"),
        ([_image("data:image/png;base64," + base64.b64encode(b"not a png").decode()), QUESTION], "not an image"),
        ([_image("examples/lighthouse.png"), QUESTION], "data URL or an http(s) URL"),  # never read server files
        ([_image(_png(8, 8))], "no text"),
    ],
)
def test_bad_requests_are_400_with_a_clear_message(server: str, parts: list[dict], message: str) -> None:
    response = _post(server, parts)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_malformed_body_is_400_in_openai_shape(server: str) -> None:
    response = httpx.post(f"{server}/v1/chat/completions", json={"messages": [{"role": "robot", "content": "x"}]})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["param"] == "messages.0.role"
    not_json = httpx.post(
        f"{server}/v1/chat/completions", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    missing = httpx.get(f"{server}/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "Not Found"


def test_limits_on_body_and_image_size(serve) -> None:
    with serve(max_body_bytes=50_000, max_image_pixels=10_000) as base:
        big = _png(1, 1)[:-4] + "A" * 60_000  # declared length over the limit
        too_big = _post(base, [_image(big), QUESTION])
        assert too_big.status_code == 413
        assert too_big.json()["error"] == {
            "message": "the request body is larger than 50,000 bytes",
            "type": "invalid_request_error",
            "param": None,
            "code": "too_large",
        }

        def chunked() -> object:  # no Content-Length: the limit must hold for chunked bodies too
            yield b'{"model": "m", "messages": [{"role": "user", "content": "'
            for _ in range(20):
                yield b"x" * 5_000
            yield b'"}]}'

        response = httpx.post(f"{base}/v1/chat/completions", content=chunked(), timeout=20)
        assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"

        many_pixels = _post(base, [_image(_png(200, 200)), QUESTION])
        assert many_pixels.status_code == 400 and "pixels" in many_pixels.json()["error"]["message"]
        assert _post(base, [_image(_png(50, 50)), QUESTION]).status_code == 200


def test_image_urls_can_be_turned_off(serve) -> None:
    with serve(allow_image_urls=False) as base:
        response = _post(base, [_image("http://127.0.0.1:9/x.png"), QUESTION])
        assert response.status_code == 400 and "data URLs" in response.json()["error"]["message"]


def test_a_failing_model_is_502_and_an_error_event_when_streaming(serve, messages: list[dict]) -> None:
    with serve(script=SCRIPT_THAT_RUNS_OUT) as base:
        with pytest.raises(openai.APIStatusError) as caught:
            client(base).chat.completions.create(model="m", messages=messages)
        assert caught.value.status_code == 502 and "ran out" in caught.value.message
        with pytest.raises(openai.APIError, match="ran out"):
            list(client(base).chat.completions.create(model="m", messages=messages, stream=True))


SCRIPT_THAT_RUNS_OUT = ["<reason>Search first.</reason>\n<text_search>Korvath Point</text_search>"]


def test_an_episode_past_the_time_limit_is_504(serve, messages: list[dict]) -> None:
    with serve(delay_s=1.0, request_timeout_s=0.2) as base:
        response = httpx.post(f"{base}/v1/chat/completions", json={"model": "m", "messages": messages}, timeout=20)
        assert response.status_code == 504
        assert "0.2 s" in response.json()["error"]["message"]
        assert httpx.get(f"{base}/health").json()["active"] == 0  # the slot came back


def test_image_urls_on_private_hosts_are_refused(server: str) -> None:
    urls = ("http://127.0.0.1:9/cat.png", "http://10.0.0.1/cat.png", "http://169.254.169.254/latest", "http://[::1]/x")
    for url in urls:
        response = _post(server, [_image(url), QUESTION])
        assert response.status_code == 400 and "refused" in response.json()["error"]["message"], url


def test_an_image_host_that_rebinds_to_loopback_is_never_reached(make_agent, example_image: Path) -> None:
    """The name passes the check as a public address, then answers loopback when the server connects."""
    seen: list[str] = []
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(example_image.parent))
    handler.log_message = lambda self, *args: seen.append(self.path)  # type: ignore[attr-defined]
    files = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    try:
        with serve_in_thread(create_app(make_agent(), resolver=rebinding)) as server:
            url = f"http://rebind.example:{files.server_address[1]}/{example_image.name}"
            response = _post(server, [_image(url), QUESTION])
        assert response.status_code == 400
        assert "refused rebind.example (resolves to 127.0.0.1): loopback" in response.json()["error"]["message"]
        assert seen == []  # the connection went to no address but the vetted one, and none was left
    finally:
        files.shutdown()
        files.server_close()


def test_an_http_image_url_is_fetched(serve, example_image: Path) -> None:
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(example_image.parent))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    files = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    try:
        # The picture lives on loopback here, which a server refuses unless told it is for local development.
        with serve(allow_private_image_urls=True) as server:
            url = f"http://127.0.0.1:{files.server_address[1]}/{example_image.name}"
            response = _post(server, [_image(url), QUESTION])
            assert response.status_code == 200
            assert response.json()["trajectory"]["image"] == url
            missing = _post(server, [_image(url + ".gone"), QUESTION])
            assert missing.status_code == 400 and "could not download" in missing.json()["error"]["message"]
    finally:
        files.shutdown()
        files.server_close()

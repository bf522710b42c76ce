"""`dmms ask` as a user runs it: a subprocess, a fake model server on 127.0.0.1, the shipped example."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from deepmmsearch.protocol import StopReason

QUESTION = "How tall is this lighthouse?"


def dmms(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deepmmsearch", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_shipped_example_runs(example_image, example_kb):
    out = dmms(
        "ask",
        str(example_image),
        QUESTION,
        "--model",
        "script:examples/lighthouse.script.json",
        "--kb",
        str(example_kb),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "38 metres"
    assert "image_search" in out.stderr and "text_search" in out.stderr


def test_ask_against_a_fake_openai_server(fake_openai, example_image, example_kb):
    fake_openai.replies = [
        "<reason>I should look this up.</reason><text_search>lighthouse red bands</text_search>",
        "<reason>Too vague; refine.</reason><text_search>Korvath Point Lighthouse height</text_search>",
        "<reason>It says 38 metres.</reason><answer>38 metres</answer>",
    ]
    out = dmms(
        "ask",
        str(example_image),
        QUESTION,
        "--model",
        f"openai:test-model@{fake_openai.base_url}",
        "--kb",
        str(example_kb),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    t = json.loads(out.stdout)
    assert t["answer"] == "38 metres" and t["stop_reason"] == StopReason.ANSWER
    assert t["tool_calls"] == {"text_search": 2} and t["turns"] == 3
    queries = [m["action"]["query"] for m in t["messages"] if m["role"] == "assistant"]
    assert queries == ["lighthouse red bands", "Korvath Point Lighthouse height", "38 metres"]
    assert t["tokens"] == {"prompt": 300, "completion": 60}
    # what the server received: the image as a data URL, then the growing conversation with <information> blocks
    first, last = fake_openai.requests[0], fake_openai.requests[-1]
    assert first["messages"][1]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    user_turns = [m["content"] for m in last["messages"] if m["role"] == "user"][1:]
    assert len(user_turns) == 2 and all(t.startswith("<information>") for t in user_turns)
    assert "38 metres" in user_turns[1]


def test_bad_key_is_one_clear_line(fake_openai, example_image, example_kb):
    fake_openai.replies = [(401, {"error": {"message": "invalid key"}}, {})] * 10
    out = dmms(
        "ask", str(example_image), QUESTION, "--model", f"openai:m@{fake_openai.base_url}", "--kb", str(example_kb)
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("error: ") and "API key" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("kind", ["missing", "not_image", "truncated", "bomb"])
def test_bad_images_are_one_clear_line(kind, tmp_path, example_kb):
    path = tmp_path / "img.png"
    if kind == "not_image":
        path.write_text("hello")
    elif kind == "truncated":
        Image.new("RGB", (200, 200), "blue").save(path)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "bomb":
        Image.new("1", (10_000, 10_000)).save(path)  # tiny file, 100 megapixels
    out = dmms("ask", str(path), "?", "--model", "script:examples/lighthouse.script.json", "--kb", str(example_kb))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    expected = {
        "missing": "no such image",
        "not_image": "not an image",
        "truncated": "truncated",
        "bomb": "decompression bomb",
    }[kind]
    assert expected in lines[0]


def test_unknown_backend_lists_known_ones(example_image, example_kb):
    out = dmms(
        "ask",
        str(example_image),
        "?",
        "--model",
        "script:examples/lighthouse.script.json",
        "--kb",
        str(example_kb),
        "--text-search",
        "nope",
    )
    assert out.returncode == 1 and "unknown text search backend 'nope'; known:" in out.stderr

"""The SQLite tool cache: keys, TTL, concurrent writers (threads and processes), SIGKILL mid-write, and its
wiring into the toolbox, the trajectory's hit/miss counts and ``--no-cache``."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from deepmmsearch.agent import Agent
from deepmmsearch.errors import ToolError
from deepmmsearch.policies.scripted import ScriptedPolicy
from deepmmsearch.protocol import Action, ActionKind
from deepmmsearch.records import Question
from deepmmsearch.tools import ToolsConfig, build_toolbox
from deepmmsearch.tools.base import Box, Grounder, ImageHit, ImageSearchBackend, TextHit, TextSearchBackend
from deepmmsearch.tools.cache import MISS, ToolCache, image_digest, normalize_text
from deepmmsearch.tools.memory import ListSummarizer
from deepmmsearch.tools.toolbox import Toolbox

EXAMPLES_KB = Path(__file__).resolve().parents[2] / "examples" / "kb"


class CountingText(TextSearchBackend):
    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    async def search(self, query: str, k: int) -> list[TextHit]:
        self.calls += 1
        if query == "fail":
            raise ToolError("backend down")
        return [TextHit(f"{query} #{i}", f"https://ex.org/{i}", "text", score=1.0 / (i + 1)) for i in range(k)]


class CountingImage(ImageSearchBackend):
    name = "counting-image"

    def __init__(self) -> None:
        self.calls = 0

    async def search(self, image: Image.Image, k: int, image_ref: str | None = None) -> list[ImageHit]:
        self.calls += 1
        return [ImageHit(f"{image.size}", "https://ex.org/img", "an image", score=0.5)]


class CountingGrounder(Grounder):
    name = "counting-grounder"

    def __init__(self) -> None:
        self.calls = 0

    async def ground(self, image: Image.Image, expression: str) -> Box | None:
        self.calls += 1
        return Box(0, 0, 10, 10, "thing") if "thing" in expression else None


def _toolbox(cache: ToolCache) -> Toolbox:
    return Toolbox(CountingText(), CountingImage(), CountingGrounder(), ListSummarizer(), cache=cache)


def test_get_put_ttl_and_namespaces(tmp_path: Path) -> None:
    cache = ToolCache(tmp_path / "c.sqlite", ttl_s=0.3)
    key = cache.key("text", "b", "q", 5)
    assert cache.get(key) is MISS
    cache.put(key, "text", [{"a": 1}])
    assert cache.get(key) == [{"a": 1}]
    cache.put(key, "text", None)
    assert cache.get(key) is None  # a stored None is a hit, not a miss
    assert cache.key("text", "b", "q", 5) != cache.key("text", "b", "q", 6)
    assert ToolCache(tmp_path / "c.sqlite", namespace="kb=a").key("text", "b", "q", 5) != key
    time.sleep(0.4)
    assert cache.get(key) is MISS  # expired
    assert cache.purge() == 1 and len(cache) == 0
    forever = ToolCache(tmp_path / "c.sqlite", ttl_s=0)
    forever.put(key, "text", 1)
    assert forever.get(key) == 1 and forever.purge() == 0
    assert sqlite3.connect(tmp_path / "c.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_normalized_arguments() -> None:
    assert normalize_text("  Eiffel\tTOWER ") == normalize_text("eiffel tower") == "eiffel tower"
    red = Image.new("RGB", (4, 4), "red")
    assert image_digest(red) == image_digest(red.copy())
    assert image_digest(red) != image_digest(Image.new("RGB", (4, 4), "blue"))
    assert image_digest(red) != image_digest(Image.new("RGB", (2, 8), "red"))  # same bytes, other shape


def test_toolbox_replays_calls_and_marks_them_cached(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    first, second = _toolbox(ToolCache(path)), _toolbox(ToolCache(path))  # a re-run: a new process, same file
    image = Image.new("RGB", (40, 30), "white")

    async def run(toolbox: Toolbox, action: Action) -> object:
        return await toolbox.run(action, "q?", image, "photo.png")

    text = asyncio.run(run(first, Action(ActionKind.TEXT_SEARCH, "Korvath  Lighthouse")))
    for action in (
        Action(ActionKind.TEXT_SEARCH, "Korvath  Lighthouse"),
        Action(ActionKind.IMAGE_SEARCH),
        Action(ActionKind.CROP_SEARCH, "the thing"),
        Action(ActionKind.CROP_SEARCH, "nothing here"),
    ):
        a = text if action.kind is ActionKind.TEXT_SEARCH else asyncio.run(run(first, action))
        b = asyncio.run(run(second, action))
        assert not a.cached and b.cached, action
        assert (a.observation, a.sources, a.box) == (b.observation, b.sources, b.box)
    # The same normalized query replays the hits; the summary saw another query text, so it is made afresh.
    again = asyncio.run(run(second, Action(ActionKind.TEXT_SEARCH, "korvath lighthouse")))
    assert again.sources == text.sources
    assert first.text_search.inner.calls == 1 and second.text_search.inner.calls == 0
    assert not again.cached  # cached means every backend call of the tool call was a hit
    assert second.grounder.calls == 0 and second.image_search.calls == 0  # the wrappers show the backend's attributes

    failed = asyncio.run(run(first, Action(ActionKind.TEXT_SEARCH, "fail")))
    assert failed.error == "backend down" and not failed.cached
    failed = asyncio.run(run(second, Action(ActionKind.TEXT_SEARCH, "fail")))
    assert failed.error == "backend down" and second.text_search.inner.calls == 1  # failures are not cached


def test_trajectory_counts_hits_and_misses_and_no_cache_turns_it_off(tmp_path: Path) -> None:
    policy = ScriptedPolicy.from_file(Path(__file__).resolve().parents[2] / "examples" / "lighthouse.script.json")
    config = ToolsConfig(
        text_search="memory",
        image_search="memory",
        summarizer="list",
        kb=str(EXAMPLES_KB),
        cache_path=str(tmp_path / "c.sqlite"),
    )
    question = Question("q", str(EXAMPLES_KB.parent / "lighthouse.png"), "How tall is this lighthouse?")
    runs = [asyncio.run(Agent(policy, build_toolbox(config)).run(question)) for _ in range(2)]
    assert runs[0].cache == {"misses": 2} and runs[1].cache == {"hits": 2}
    assert runs[0].answer == runs[1].answer == "38 metres"
    config.no_cache = True
    assert build_toolbox(config).cache is None
    assert asyncio.run(Agent(policy, build_toolbox(config)).run(question)).cache == {"misses": 2}


def test_dmms_ask_has_no_cache_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from deepmmsearch.cli import app

    monkeypatch.setenv("DMMS_CACHE_DIR", str(tmp_path))
    args = ["ask", str(EXAMPLES_KB.parent / "lighthouse.png"), "How tall?", "--model"]
    args += [f"script:{EXAMPLES_KB.parent / 'lighthouse.script.json'}", "--kb", str(EXAMPLES_KB)]
    args += ["--text-search", "memory", "--image-search", "memory", "--json"]
    runner = CliRunner()
    import json

    counts = [json.loads(runner.invoke(app, args).stdout)["cache"] for _ in range(2)]
    assert counts == [{"misses": 2}, {"hits": 2}]
    assert json.loads(runner.invoke(app, [*args, "--no-cache"]).stdout)["cache"] == {"misses": 2}


# ---------------------------------------------------------------------------------------------- concurrency

_WRITER = textwrap.dedent(
    """
    import hashlib, sys
    from deepmmsearch.tools.cache import ToolCache

    path, writer, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    cache = ToolCache(path)
    for i in range(count):
        payload = hashlib.sha256(f"{writer}:{i}".encode()).hexdigest() * (size // 64)
        cache.put(cache.key("t", writer, i), "t", {"writer": writer, "i": i, "payload": payload})
        print(i, flush=True)  # printed only after the entry is committed
    """
)


def _expected(writer: int, i: int, size: int) -> dict:
    return {"writer": writer, "i": i, "payload": hashlib.sha256(f"{writer}:{i}".encode()).hexdigest() * (size // 64)}


def test_eight_concurrent_writers_threads_and_processes(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    shared = ToolCache(path)
    per_writer, size = 60, 1024

    def thread_writer(writer: int) -> None:
        # Half the threads share one ToolCache object, half open their own: both must be safe.
        cache = shared if writer % 2 else ToolCache(path)
        for i in range(per_writer):
            cache.put(cache.key("t", writer, i), "t", _expected(writer, i, size))

    threads = [threading.Thread(target=thread_writer, args=(w,)) for w in range(8)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(100 + w), str(per_writer), str(size)],
            stdout=subprocess.DEVNULL,
        )
        for w in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p.wait(timeout=120) == 0 for p in processes)

    reader = ToolCache(path)
    for writer in [*range(8), *range(100, 108)]:
        for i in range(per_writer):
            assert reader.get(reader.key("t", writer, i)) == _expected(writer, i, size), (writer, i)
    assert len(reader) == 16 * per_writer


def test_writer_killed_mid_write_leaves_everything_committed_intact(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    size = 256 * 1024  # large values: the kill is likely to land inside a write
    process = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), "7", "100000", str(size)], stdout=subprocess.PIPE, text=True
    )
    committed = -1
    deadline = time.monotonic() + 60
    while committed < 30 and time.monotonic() < deadline:
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert line, "the writer died on its own"
        committed = int(line)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert committed >= 30

    cache = ToolCache(path)
    assert cache._connection().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for i in range(committed + 1):
        assert cache.get(cache.key("t", 7, i)) == _expected(7, i, size), i
    stored = len(cache)
    assert committed + 1 <= stored <= committed + 2  # at most the write in flight got committed too
    cache.put(cache.key("t", 7, "after"), "t", "still writable")
    assert cache.get(cache.key("t", 7, "after")) == "still writable"

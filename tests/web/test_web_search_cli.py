"""``dmms search text|image`` through the toolbox: a web backend on the fake web, its cache and its timeout."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from deepmmsearch.cli import app

SEARXNG_ROWS = [
    {"url": "/k", "title": "Korvath Point Lighthouse", "content": "snippet only", "score": 2.5},
    {"url": "/missing", "title": "Capes", "content": "capes snippet", "score": 1.0},
]


def searxng(web, delay_s: float = 0.0):
    rows = [{**row, "url": web.url(row["url"])} for row in SEARXNG_ROWS]
    return web.Reply({"query": "q", "results": rows}, delay_s=delay_s)


def test_search_text_with_a_web_backend_reads_pages_and_caches(web, article, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DMMS_SEARXNG_URL", web.url("/"))
    web.route("/search", searxng(web))
    web.route("/k", web.Reply(article("")))
    config = tmp_path / "run.yaml"
    config.write_text("tools: {summarizer: list}\n")  # the list summary shows the page text as it was read
    args = ["search", "text", "korvath lighthouse", "--text-search", "searxng", "-k", "2", "--allow-private"]
    args += ["--summarize", "-c", str(config)]
    first = CliRunner().invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    record = json.loads(first.stdout)
    assert record["backend"] == "searxng" and record["k"] == 2 and record["cached"] is False
    assert [h["title"] for h in record["hits"]] == ["Korvath Point Lighthouse", "Capes"]
    assert "38 metres tall" in record["hits"][0]["text"]  # the page was read, not only its snippet
    assert "38 metres" in record["summary"]
    again = CliRunner().invoke(app, [*args, "--json"])
    assert json.loads(again.stdout)["cached"] is True and len(web.seen("/search")) == 1
    fresh = CliRunner().invoke(app, [*args, "--no-cache"])
    assert fresh.exit_code == 0 and "1. Korvath Point Lighthouse" in fresh.stdout
    assert len(web.seen("/search")) == 2


def test_search_text_times_out_as_the_agent_would(web, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DMMS_SEARXNG_URL", web.url("/"))
    web.route("/search", searxng(web, delay_s=1.0))
    config = tmp_path / "run.yaml"
    config.write_text("tools:\n  text_search: searxng\n  timeout_s: 30\n")
    # The flags made from ToolsConfig override the file, as they do for `dmms ask`.
    flags = ["--tools.timeout-s", "0.2", "--no-tools.web.fetch-pages"]
    result = CliRunner().invoke(app, ["search", "text", "korvath", "--config", str(config), *flags])
    assert result.exit_code == 1
    assert result.output.strip() == "error: text_search with searxng: timed out after 0.2 s"


def test_search_text_unknown_backend_lists_the_known_ones() -> None:
    result = CliRunner().invoke(app, ["search", "text", "q", "--text-search", "bing"])
    assert result.exit_code == 1 and "known: brave, duckduckgo" in result.output


def test_search_image_with_a_web_backend_on_a_local_file(web, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SERPAPI_API_KEY", "serp-key-for-the-cli-test")
    monkeypatch.setenv("DMMS_SERPAPI_URL", web.url("/search.json"))
    match = {"title": "Korvath Point Lighthouse", "link": "https://a.example/k", "source": "Coastal Photos"}
    web.route("/search.json", web.Reply({"visual_matches": [match]}))
    Image.new("RGB", (40, 30), (90, 120, 200)).save(tmp_path / "photo.png")
    host = tmp_path / "host"
    config = tmp_path / "run.yaml"
    config.write_text(f"tools:\n  web:\n    image_host_dir: {host}\n    image_url_base: https://img.example/dmms/\n")
    args = ["search", "image", str(tmp_path / "photo.png"), "--image-search", "serpapi-lens", "-c", str(config)]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["backend"] == "serpapi-lens" and record["hits"][0]["title"] == "Korvath Point Lighthouse"
    (sent,) = web.seen("/search.json")
    hosted = sent.query["url"]
    assert hosted.startswith("https://img.example/dmms/") and (host / hosted.rsplit("/", 1)[1]).is_file()
    text = CliRunner().invoke(app, args)
    assert "1. Korvath Point Lighthouse  (https://a.example/k)" in text.stdout and "from the cache" in text.output

"""The ``local`` text search backend: registry, knowledge-base resolution, and a tool call end to end."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from deepmmsearch.engine.kb import build_kb
from deepmmsearch.errors import ConfigError
from deepmmsearch.protocol import Action, ActionKind
from deepmmsearch.tools import TEXT_SEARCH_BACKENDS, Toolbox, ToolsConfig
from deepmmsearch.tools.local import LocalTextSearch, local_text_search
from deepmmsearch.tools.memory import MemoryGrounder, MemoryImageSearch


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DMMS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_local_is_the_default_and_registered_lazily() -> None:
    assert ToolsConfig().text_search == "local" and ToolsConfig().kb is None
    assert ToolsConfig().retrieval == "hybrid"
    assert TEXT_SEARCH_BACKENDS["local"] == "deepmmsearch.tools.local:local_text_search"


def test_searches_a_pages_only_kb_folder(example_kb: Path, cache: Path) -> None:
    backend = local_text_search(ToolsConfig(kb=str(example_kb)))
    assert backend.kb_dir().is_relative_to(cache)  # indexed into the cache, the example folder untouched
    assert not (example_kb / "manifest.json").exists()
    hits = asyncio.run(backend.search("lighthouse with red bands", 2))
    assert hits[0].title == "Korvath Point Lighthouse"
    assert hits[0].url == "https://example.org/wiki/Korvath_Point_Lighthouse" and "38 metres" in hits[0].text
    assert len(hits) == 2


def test_bad_mode_and_bad_kb_are_config_errors(tmp_path: Path, cache: Path) -> None:
    with pytest.raises(ConfigError, match="hybrid, bm25, dense"):
        LocalTextSearch(tmp_path, mode="fuzzy")
    with pytest.raises(ConfigError, match=r"neither a built knowledge base nor a folder with pages\.jsonl"):
        local_text_search(ToolsConfig(kb=str(tmp_path)))


def test_concurrent_first_searches_open_the_index_once(tmp_path: Path, example_kb: Path) -> None:
    kb = tmp_path / "kb"
    build_kb(example_kb / "pages.jsonl", kb, show_progress=False, dense=False)
    backend = LocalTextSearch(kb, mode="bm25")
    opened = []
    original = backend.index

    def counting_index() -> object:
        if backend._index is None:
            opened.append(1)
        return original()

    backend.index = counting_index  # type: ignore[method-assign]

    async def many() -> list:
        return await asyncio.gather(*(backend.search("post windmill sails", 1) for _ in range(4)))

    results = asyncio.run(many())
    assert [r[0].title for r in results] == ["Elmbrook Mill"] * 4
    assert len(opened) == 1


def test_text_search_action_through_the_toolbox(tmp_path: Path, example_kb: Path) -> None:
    from deepmmsearch.tools.summarize import ExtractiveSummarizer

    kb = tmp_path / "kb"
    shutil.copytree(example_kb, tmp_path / "src")
    build_kb(tmp_path / "src" / "pages.jsonl", kb, show_progress=False)
    toolbox = Toolbox(
        LocalTextSearch(kb),
        MemoryImageSearch([]),
        MemoryGrounder(),
        ExtractiveSummarizer(text_sentences=2),
    )
    image = Image.new("RGB", (8, 8))
    action = Action(ActionKind.TEXT_SEARCH, "Korvath Point Lighthouse height")
    result = asyncio.run(toolbox.run(action, "How tall is this lighthouse?", image, None))
    assert result.error is None and result.backend == "local"
    assert "38 metres tall" in result.observation
    assert "(https://example.org/wiki/Korvath_Point_Lighthouse)" in result.observation
    assert result.sources[0]["title"] == "Korvath Point Lighthouse"
    json.dumps(result.to_dict())  # the trajectory stays serialisable

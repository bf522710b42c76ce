"""A toolbox built for some actions only: it builds no other backend, and refuses the other actions loudly."""

from __future__ import annotations

import asyncio

import pytest
from PIL import Image

from deepmmsearch.protocol import Action, ActionKind
from deepmmsearch.tools import ToolsConfig, build_toolbox


def test_a_toolbox_for_text_search_builds_no_image_backend(example_kb) -> None:
    tools = ToolsConfig(
        text_search="memory", image_search="no-such-backend", summarizer="list", kb=str(example_kb), no_cache=True
    )
    toolbox = build_toolbox(tools, [ActionKind.TEXT_SEARCH])  # the bad image backend name is never looked up
    assert toolbox.image_search is None and toolbox.grounder is None
    result = asyncio.run(toolbox.run(Action(ActionKind.TEXT_SEARCH, "lighthouse"), "q", None, None))
    assert result.error is None and result.sources
    with pytest.raises(ValueError, match="built without what image_search needs"):
        asyncio.run(toolbox.run(Action(ActionKind.IMAGE_SEARCH), "q", Image.new("RGB", (8, 8)), None))


def test_a_toolbox_for_whole_image_search_builds_no_grounder(example_kb) -> None:
    tools = ToolsConfig(image_search="memory", grounder="no-such-grounder", kb=str(example_kb), no_cache=True)
    toolbox = build_toolbox(tools, [ActionKind.IMAGE_SEARCH])
    assert toolbox.text_search is None and toolbox.grounder is None and toolbox.image_search is not None
    with pytest.raises(ValueError, match="crop_search"):
        asyncio.run(toolbox.run(Action(ActionKind.CROP_SEARCH, "the tower"), "q", Image.new("RGB", (8, 8)), None))

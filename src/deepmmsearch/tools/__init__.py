"""Tools and their backends, chosen by name.

A name maps to a factory that takes the :class:`ToolsConfig`; imports happen only when a backend is built.
An unknown name is an error that lists the known ones, never a silent fallback.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from deepmmsearch.errors import ConfigError
from deepmmsearch.tools.base import (
    Box,
    Grounder,
    ImageHit,
    ImageSearchBackend,
    Summarizer,
    TextHit,
    TextSearchBackend,
)
from deepmmsearch.tools.toolbox import Toolbox, ToolboxConfig


@dataclass
class ToolsConfig:
    """Which backend serves each tool, and where their data lives."""

    text_search: str = field(default="memory", metadata={"help": "text search backend"})
    image_search: str = field(default="memory", metadata={"help": "image search backend"})
    grounder: str = field(default="none", metadata={"help": "grounding backend for crop search"})
    summarizer: str = field(default="list", metadata={"help": "how hits are condensed for the model"})
    kb: str | None = field(default=None, metadata={"help": "knowledge-base folder for local backends"})
    k: int = field(default=5, metadata={"help": "hits per search"})
    timeout_s: float = field(default=30.0, metadata={"help": "per tool call"})


def _memory_text(config: ToolsConfig) -> TextSearchBackend:
    from deepmmsearch.tools.memory import MemoryTextSearch, require_kb

    return MemoryTextSearch.from_kb(require_kb(config.kb, "memory"))


def _memory_image(config: ToolsConfig) -> ImageSearchBackend:
    from deepmmsearch.tools.memory import MemoryImageSearch, require_kb

    return MemoryImageSearch.from_kb(require_kb(config.kb, "memory"))


def _no_grounder(config: ToolsConfig) -> Grounder:
    from deepmmsearch.tools.memory import MemoryGrounder

    return MemoryGrounder()


def _list_summarizer(config: ToolsConfig) -> Summarizer:
    from deepmmsearch.tools.memory import ListSummarizer

    return ListSummarizer()


TEXT_SEARCH_BACKENDS: dict[str, Any] = {"memory": _memory_text}
IMAGE_SEARCH_BACKENDS: dict[str, Any] = {"memory": _memory_image}
GROUNDERS: dict[str, Any] = {"none": _no_grounder}
SUMMARIZERS: dict[str, Any] = {"list": _list_summarizer}


def _pick(registry: dict[str, Any], kind: str, name: str, config: ToolsConfig) -> Any:
    if name not in registry:
        raise ConfigError(f"unknown {kind} backend {name!r}; known: {', '.join(sorted(registry))}")
    factory = registry[name]
    if isinstance(factory, str):  # "module:function", imported only when chosen
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory(config)


def build_toolbox(config: ToolsConfig) -> Toolbox:
    """Build every backend the config names and wrap them in a :class:`Toolbox`."""
    return Toolbox(
        text_search=_pick(TEXT_SEARCH_BACKENDS, "text search", config.text_search, config),
        image_search=_pick(IMAGE_SEARCH_BACKENDS, "image search", config.image_search, config),
        grounder=_pick(GROUNDERS, "grounding", config.grounder, config),
        summarizer=_pick(SUMMARIZERS, "summarizer", config.summarizer, config),
        config=ToolboxConfig(k=config.k, timeout_s=config.timeout_s),
    )


__all__ = [
    "Box",
    "Grounder",
    "ImageHit",
    "ImageSearchBackend",
    "Summarizer",
    "TextHit",
    "TextSearchBackend",
    "Toolbox",
    "ToolboxConfig",
    "ToolsConfig",
    "build_toolbox",
]

"""Tools and their backends, chosen by name.

Every backend adapter lives in this package, one module per family: ``local`` (text search over the local
engine), ``local_image`` (image search over it, and the offline grounder), ``memory`` (in-memory lookups for
tests and small folders), ``web_search`` (search APIs, through the web client of :mod:`deepmmsearch.web`),
``detectors`` (Grounding DINO, OWLv2) and ``summarize`` (extractive and LLM summarizers).

A name maps to a factory that takes the :class:`ToolsConfig` (one factory may serve several names: it reads the
chosen name from the config); imports happen only when a backend is built.
An unknown name is an error that lists the known ones, never a silent fallback.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Collection
from typing import Any

from deepmmsearch.errors import ConfigError
from deepmmsearch.protocol import ActionKind
from deepmmsearch.tools.base import Grounder, ImageSearchBackend, Summarizer, TextSearchBackend
from deepmmsearch.tools.cache import ToolCache, default_cache_path
from deepmmsearch.tools.config import ToolsConfig
from deepmmsearch.tools.toolbox import Toolbox, ToolboxConfig


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


TEXT_SEARCH_BACKENDS: dict[str, Any] = {
    "local": "deepmmsearch.tools.local:local_text_search",
    "memory": _memory_text,
    "serpapi": "deepmmsearch.tools.web_search:web_text_search",
    "brave": "deepmmsearch.tools.web_search:web_text_search",
    "searxng": "deepmmsearch.tools.web_search:web_text_search",
    "duckduckgo": "deepmmsearch.tools.web_search:web_text_search",
    "tavily": "deepmmsearch.tools.web_search:web_text_search",
}
IMAGE_SEARCH_BACKENDS: dict[str, Any] = {
    "local": "deepmmsearch.tools.local_image:local_image_search",
    "memory": _memory_image,
    "serpapi-lens": "deepmmsearch.tools.web_search:serpapi_image_search",
    "serpapi-reverse-image": "deepmmsearch.tools.web_search:serpapi_image_search",
}
GROUNDERS: dict[str, Any] = {
    "none": _no_grounder,
    "local": "deepmmsearch.tools.local_image:local_grounder",
    "grounding-dino": "deepmmsearch.tools.detectors:zero_shot_grounder",
    "owlv2": "deepmmsearch.tools.detectors:zero_shot_grounder",
}
SUMMARIZERS: dict[str, Any] = {
    "extractive": "deepmmsearch.tools.summarize:extractive_summarizer",
    "list": _list_summarizer,
    "llm": "deepmmsearch.tools.summarize:llm_summarizer",
}


def _pick(registry: dict[str, Any], kind: str, name: str, config: ToolsConfig) -> Any:
    if name not in registry:
        raise ConfigError(f"unknown {kind} backend {name!r}; known: {', '.join(sorted(registry))}")
    factory = registry[name]
    if isinstance(factory, str):  # "module:function", imported only when chosen
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory(config)


def build_toolbox(config: ToolsConfig, actions: Collection[ActionKind] | None = None) -> Toolbox:
    """Build the backends the config names and wrap them in a :class:`Toolbox`; with ``actions``, only those
    these tool actions use (``dmms search text`` builds no image index), else all of them."""
    wanted = set(actions) if actions is not None else {kind for kind in ActionKind if kind.is_tool}
    text, image, crop = (
        ActionKind.TEXT_SEARCH in wanted,
        any(k.is_image for k in wanted),
        ActionKind.CROP_SEARCH in wanted,
    )
    return Toolbox(
        text_search=_pick(TEXT_SEARCH_BACKENDS, "text search", config.text_search, config) if text else None,
        image_search=_pick(IMAGE_SEARCH_BACKENDS, "image search", config.image_search, config) if image else None,
        grounder=_pick(GROUNDERS, "grounding", config.grounder, config) if crop else None,
        summarizer=_pick(SUMMARIZERS, "summarizer", config.summarizer, config),
        config=ToolboxConfig(k=config.k, timeout_s=config.timeout_s),
        cache=_tool_cache(config),
    )


def _tool_cache(config: ToolsConfig) -> ToolCache | None:
    if config.no_cache:
        return None
    # Settings that change what a backend of a given name returns must separate its cache entries.
    kb = os.path.abspath(config.kb) if config.kb else ""
    namespace = f"kb={kb}|retrieval={config.retrieval}|summarizer_model={config.summarizer_model or ''}"
    return ToolCache(config.cache_path or default_cache_path(), config.cache_ttl_s, namespace=namespace)


__all__ = [
    "Grounder",
    "ImageSearchBackend",
    "Summarizer",
    "TextSearchBackend",
    "Toolbox",
    "ToolboxConfig",
    "ToolsConfig",
    "build_toolbox",
]

"""The tool settings as one config dataclass (no heavy imports): which backend serves each tool, and with what."""

from __future__ import annotations

from dataclasses import dataclass, field

from deepmmsearch.web.config import WebConfig


@dataclass
class ToolsConfig:
    """Which backend serves each tool, and where their data lives."""

    text_search: str = field(default="local", metadata={"help": "text search backend", "aliases": ("--text-search",)})
    image_search: str = field(
        default="local", metadata={"help": "image search backend", "aliases": ("--image-search",)}
    )
    grounder: str = field(
        default="local", metadata={"help": "grounding backend for crop search", "aliases": ("--grounder",)}
    )
    summarizer: str = field(default="extractive", metadata={"help": "how hits are condensed for the model"})
    summarizer_model: str | None = field(
        default=None, metadata={"help": "llm summarizer: MODEL[@BASE_URL] (default gpt-4o-mini on OpenAI)"}
    )
    kb: str | None = field(
        default=None,
        metadata={
            "help": "knowledge-base folder; None = the default Wikipedia one (local backends)",
            "aliases": ("--kb",),
        },
    )
    retrieval: str = field(default="hybrid", metadata={"help": "local text search: hybrid, bm25 or dense"})
    k: int = field(default=5, metadata={"help": "hits per search"})
    timeout_s: float = field(default=30.0, metadata={"help": "per tool call"})
    grounder_model: str | None = field(
        default=None, metadata={"help": "grounding-dino/owlv2: local folder or hub id (default: the base model)"}
    )
    cache_path: str | None = field(
        default=None, metadata={"help": "SQLite tool cache (default: tools.sqlite in $DMMS_CACHE_DIR or ~/.cache)"}
    )
    cache_ttl_s: float = field(default=7 * 24 * 3600, metadata={"help": "cached results expire after (0: never)"})
    no_cache: bool = field(
        default=False, metadata={"help": "call every backend afresh and cache nothing", "aliases": ("--no-cache",)}
    )
    web: WebConfig = field(
        default_factory=WebConfig, metadata={"help": "web backends: endpoints, page reading, limits, safety"}
    )

"""``local``: text search over a knowledge base with the local engine (BM25 + MiniLM dense, fused).

With no ``--kb`` it searches the default Wikipedia knowledge base, indexing it on first use. The registry
factory makes sure the knowledge base is built (a first-use build takes minutes and must not run under a
tool call's timeout); the index itself is opened on the first search, so building an agent stays cheap.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from deepmmsearch.engine.text_index import MODES
from deepmmsearch.errors import ConfigError
from deepmmsearch.tools.base import TextHit, TextSearchBackend

if TYPE_CHECKING:
    from deepmmsearch.engine.text_index import TextIndex
    from deepmmsearch.tools.config import ToolsConfig


class LocalTextSearch(TextSearchBackend):
    """Hybrid (or BM25-only, or dense-only) retrieval over one knowledge base."""

    name = "local"

    def __init__(self, kb: str | Path | None = None, mode: str = "hybrid", show_progress: bool = True) -> None:
        if mode not in MODES:
            raise ConfigError(f"unknown retrieval mode {mode!r}; known: {', '.join(MODES)}")
        self.kb = kb
        self.mode = mode
        self.show_progress = show_progress
        self._kb_dir: Path | None = None
        self._index: TextIndex | None = None
        self._lock = asyncio.Lock()

    def kb_dir(self) -> Path:
        """The built knowledge base this backend searches, building it first if needed."""
        if self._kb_dir is None:
            from deepmmsearch.engine.kb import resolve_kb

            self._kb_dir = resolve_kb(self.kb, self.show_progress)
        return self._kb_dir

    def index(self) -> TextIndex:
        """The opened index (built first if it is the default one and this is its first use)."""
        if self._index is None:
            from deepmmsearch.engine.text_index import TextIndex

            self._index = TextIndex.load(self.kb_dir())
        return self._index

    def search_sync(self, query: str, k: int) -> list[TextHit]:
        """The top-k passages as hits, best first (blocking)."""
        hits = self.index().search(query, k, self.mode)
        return [TextHit(h.passage["title"], h.passage["url"], h.passage["text"], h.score) for h in hits]

    async def search(self, query: str, k: int) -> list[TextHit]:
        # Loading and scoring are CPU work: run them off the event loop so other episodes keep moving; the
        # lock stops concurrent first calls from opening the index twice.
        async with self._lock:
            if self._index is None:
                await asyncio.to_thread(self.index)
        return await asyncio.to_thread(self.search_sync, query, k)


def local_text_search(config: ToolsConfig) -> TextSearchBackend:
    """Registry factory for ``local``: builds the knowledge base now if it is not built yet."""
    backend = LocalTextSearch(config.kb, config.retrieval)
    backend.kb_dir()
    return backend

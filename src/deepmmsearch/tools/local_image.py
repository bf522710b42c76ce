"""``local``: reverse image search over a knowledge base's images, and the offline grounder.

The image index of a knowledge base lives in ``<kb>/images`` (written by ``dmms kb build --images``). A
folder that has only ``images.jsonl`` (the in-memory backend's format, such as ``examples/kb``) is indexed on
first use into the cache folder, keyed by the file's path, size and time, so ``--kb`` works for both. The index
is opened on the first search, not when the toolbox is built, so building an agent stays cheap.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from deepmmsearch.errors import ConfigError, DmmsError, ToolError
from deepmmsearch.files import build_beside
from deepmmsearch.tools.base import Box, Grounder, ImageHit, ImageSearchBackend

if TYPE_CHECKING:
    from deepmmsearch.engine.image_index import ImageIndex
    from deepmmsearch.tools.config import ToolsConfig


def image_index_dir(kb: str | Path) -> Path:
    """The folder holding the image index for knowledge base ``kb``, building a cached one if needed."""
    from deepmmsearch.engine.image_index import ImageIndex, build_image_index
    from deepmmsearch.records import read_jsonl

    kb = Path(kb).expanduser()
    if not kb.is_dir():
        raise ConfigError(f"--kb {kb}: no such folder")
    if ImageIndex.exists(kb / "images"):
        return kb / "images"
    records_file = kb / "images.jsonl"
    if not records_file.is_file():
        raise ConfigError(f"--kb {kb}: no image index and no images.jsonl; build one with dmms kb build --images")
    from deepmmsearch.config import cache_dir

    stat = records_file.stat()
    digest = hashlib.blake2b(f"{kb.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode(), digest_size=8).hexdigest()
    out = cache_dir() / "images" / f"{kb.resolve().name}-{digest}"
    if not ImageIndex.exists(out):
        # A concurrent or interrupted build never leaves half an index; a finished one of another process is kept.
        with build_beside(out, replace=False, complete=ImageIndex.exists) as tmp:
            build_image_index(list(read_jsonl(records_file)), kb, tmp)
    return out


class LocalImageSearch(ImageSearchBackend):
    """Window-descriptor reverse image search (deepmmsearch.engine.image_index) over one knowledge base."""

    name = "local"

    def __init__(self, kb: str | Path | None) -> None:
        self.kb = kb
        self._index: ImageIndex | None = None
        self._lock = threading.Lock()  # the first searches of concurrent episodes must not build twice
        self.cache_id = _cache_id(kb)

    def index(self) -> ImageIndex:
        """The opened index (built into the cache first if the folder has only images.jsonl)."""
        with self._lock:
            if self._index is None:
                from deepmmsearch.engine.image_index import ImageIndex

                if not self.kb:
                    raise ConfigError("the 'local' image search needs a knowledge base with images: pass --kb DIR")
                self._index = ImageIndex.load(image_index_dir(self.kb))
            return self._index

    def search_sync(self, image: Image.Image, k: int) -> list[ImageHit]:
        return self.index().search(image, k)

    async def search(self, image: Image.Image, k: int, image_ref: str | None = None) -> list[ImageHit]:
        try:
            return await asyncio.to_thread(self.search_sync, image, k)
        except DmmsError as e:  # no knowledge base, a damaged index: the model reads why, the episode goes on
            raise ToolError(str(e)) from None


def _cache_id(kb: str | Path | None) -> str:
    """What the tool cache keys this backend's entries by: the folder and the version of its image data, so
    a rebuilt index or an edited images.jsonl is never answered from entries of the old one. Only stats files."""
    if not kb:
        return "local-image"
    kb = Path(kb).expanduser().resolve()
    for source in (kb / "images" / "image_index.faiss", kb / "images.jsonl"):
        if source.is_file():
            stat = source.stat()
            return f"local-image:{kb}:{stat.st_size}:{stat.st_mtime_ns}"
    return f"local-image:{kb}"


def local_image_search(config: ToolsConfig) -> ImageSearchBackend:
    """Registry factory for ``--image-search local``."""
    return LocalImageSearch(config.kb)


class LocalGrounder(Grounder):
    """The offline grounder (deepmmsearch.engine.grounding): image regions plus the expression parser; no weights."""

    name = "local"

    async def ground(self, image: Image.Image, expression: str) -> Box | None:
        from deepmmsearch.engine.grounding import ground

        # Labelling runs in numpy/scipy for a few milliseconds; a thread keeps the event loop free anyway.
        return await asyncio.to_thread(ground, image, expression)


def local_grounder(config: ToolsConfig) -> Grounder:
    """Registry factory for ``--grounder local``: regions + expression parser, no weights."""
    return LocalGrounder()

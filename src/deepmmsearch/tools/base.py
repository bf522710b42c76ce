"""Tool interfaces. A backend is one small class with one async method returning typed hits.

The hits and boxes themselves are records (:mod:`deepmmsearch.records`), so the engine below can return them.

Whatever backend is behind them, the model sees the same three tools: text search, image search (whole
image or crop) and, inside crop search, grounding.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from PIL import Image

from deepmmsearch.records import Box, ImageHit, TextHit


class TextSearchBackend(ABC):
    name: str = "text"

    @abstractmethod
    async def search(self, query: str, k: int) -> list[TextHit]:
        """The top-k hits for a query, best first. Raises ToolError on failure."""


class ImageSearchBackend(ABC):
    name: str = "image"

    @abstractmethod
    async def search(self, image: Image.Image, k: int, image_ref: str | None = None) -> list[ImageHit]:
        """The top-k pages whose images look like ``image``, best first. ``image_ref`` is the original
        reference (web backends need a public URL); it is None for a crop. Raises ToolError on failure."""


class Grounder(ABC):
    name: str = "grounder"

    @abstractmethod
    async def ground(self, image: Image.Image, expression: str) -> Box | None:
        """The region a referring expression names, or None when nothing fits. Raises ToolError on failure."""


class Summarizer(ABC):
    """Condenses hits into the few sentences the model reads inside <information>."""

    name: str = "summarizer"

    @abstractmethod
    async def summarize_text(self, question: str, query: str, hits: list[TextHit]) -> str: ...

    @abstractmethod
    async def summarize_images(self, question: str, hits: list[ImageHit]) -> str: ...

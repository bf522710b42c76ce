"""Tool interfaces. A backend is one small class with one async method returning typed hits.

Whatever backend is behind them, the model sees the same three tools: text search, image search (whole
image or crop) and, inside crop search, grounding.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass

from PIL import Image


@dataclass
class TextHit:
    title: str
    url: str
    text: str  # the passage or snippet
    score: float | None = None

    def to_source(self) -> dict:
        return asdict(self)


@dataclass
class ImageHit:
    title: str
    url: str  # the page the image appears on
    description: str = ""
    image: str | None = None  # where the matched image itself lives
    score: float | None = None

    def to_source(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Box:
    """A region of the input image in pixels, (x0, y0) inclusive and (x1, y1) exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int
    label: str = ""

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]

    def clip(self, width: int, height: int) -> Box | None:
        """The box limited to the image, or None when nothing of it is left."""
        x0, y0 = max(0, self.x0), max(0, self.y0)
        x1, y1 = min(width, self.x1), min(height, self.y1)
        return Box(x0, y0, x1, y1, self.label) if x1 > x0 and y1 > y0 else None


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

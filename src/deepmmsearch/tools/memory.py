"""Small in-memory tools: for tests, examples, and knowledge bases of a few hundred pages.

They read the same files as the local engine (``pages.jsonl`` and ``images.jsonl`` in a folder) but score
with plain word overlap and a tiny image hash, which is enough when the collection is small.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from deepmmsearch.errors import ConfigError
from deepmmsearch.images import load_image
from deepmmsearch.records import read_jsonl
from deepmmsearch.tools.base import (
    Box,
    Grounder,
    ImageHit,
    ImageSearchBackend,
    Summarizer,
    TextHit,
    TextSearchBackend,
)

_WORD_RE = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


class MemoryTextSearch(TextSearchBackend):
    """Ranks pages by how many query words they contain (title words count double)."""

    name = "memory"

    def __init__(self, pages: list[TextHit]) -> None:
        self.pages = pages
        self._bags = [Counter(_words(p.title) * 2 + _words(p.text)) for p in pages]

    @classmethod
    def from_kb(cls, kb_dir: str | Path) -> MemoryTextSearch:
        path = Path(kb_dir) / "pages.jsonl"
        return cls([TextHit(d.get("title", ""), d.get("url", ""), d.get("text", "")) for d in read_jsonl(path)])

    async def search(self, query: str, k: int) -> list[TextHit]:
        terms = set(_words(query))
        scored = [
            (sum(bag[t] > 0 for t in terms) + 0.01 * sum(bag[t] for t in terms), i) for i, bag in enumerate(self._bags)
        ]
        scored = sorted((s for s in scored if s[0] > 0), key=lambda s: -s[0])[:k]
        return [TextHit(**{**self.pages[i].__dict__, "score": float(s)}) for s, i in scored]


def _fingerprint(image: Image.Image) -> np.ndarray:
    small = np.asarray(image.convert("RGB").resize((12, 12), Image.Resampling.BILINEAR), dtype=np.float32)
    flat = small.reshape(-1) - small.mean()
    return flat / (np.linalg.norm(flat) + 1e-6)


class MemoryImageSearch(ImageSearchBackend):
    """Ranks images by the correlation of 12x12 colour thumbnails: robust to rescaling, not to cropping."""

    name = "memory"

    def __init__(self, entries: list[tuple[Image.Image, ImageHit]]) -> None:
        self.hits = [hit for _, hit in entries]
        self._prints = np.stack([_fingerprint(img) for img, _ in entries]) if entries else np.zeros((0, 432))

    @classmethod
    def from_kb(cls, kb_dir: str | Path) -> MemoryImageSearch:
        kb_dir = Path(kb_dir)
        entries = []
        for d in read_jsonl(kb_dir / "images.jsonl"):
            path = Path(d["path"]) if Path(d["path"]).is_absolute() else kb_dir / d["path"]
            hit = ImageHit(d.get("title", ""), d.get("page_url", ""), d.get("description", ""), str(path))
            entries.append((load_image(str(path)), hit))
        return cls(entries)

    async def search(self, image: Image.Image, k: int, image_ref: str | None = None) -> list[ImageHit]:
        if not self.hits:
            return []
        scores = self._prints @ _fingerprint(image)
        order = np.argsort(-scores)[:k]
        return [ImageHit(**{**self.hits[i].__dict__, "score": float(scores[i])}) for i in order]


class MemoryGrounder(Grounder):
    """Looks the expression up in a given table of boxes (case and spacing ignored)."""

    name = "memory"

    def __init__(self, boxes: dict[str, Box] | None = None) -> None:
        self.boxes = {" ".join(k.lower().split()): v for k, v in (boxes or {}).items()}

    async def ground(self, image: Image.Image, expression: str) -> Box | None:
        return self.boxes.get(" ".join(expression.lower().split()))


class ListSummarizer(Summarizer):
    """No condensing at all: the numbered hits, each cut to a few hundred characters."""

    name = "list"

    def __init__(self, max_chars: int = 300) -> None:
        self.max_chars = max_chars

    async def summarize_text(self, question: str, query: str, hits: list[TextHit]) -> str:
        return "\n".join(f"{i}. {h.title}: {_cut(h.text, self.max_chars)} ({h.url})" for i, h in enumerate(hits, 1))

    async def summarize_images(self, question: str, hits: list[ImageHit]) -> str:
        return "\n".join(
            f"{i}. {h.title}: {_cut(h.description, self.max_chars)} ({h.url})" for i, h in enumerate(hits, 1)
        )


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rsplit(" ", 1)[0] + "..."


def require_kb(kb: str | None, backend: str) -> Path:
    if not kb:
        raise ConfigError(f"the {backend!r} search backend needs a knowledge-base folder: pass --kb DIR")
    path = Path(kb)
    if not path.is_dir():
        raise ConfigError(f"--kb {kb}: no such folder")
    return path

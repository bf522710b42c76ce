"""The toolbox carries out tool actions: it runs the backends under a timeout and turns every failure
into an observation the model can read, so that one broken call never crashes a batch of episodes."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from PIL import Image

from deepmmsearch.errors import ToolError
from deepmmsearch.protocol import Action, ActionKind
from deepmmsearch.records import ToolResult
from deepmmsearch.tools.base import Grounder, ImageSearchBackend, Summarizer, TextSearchBackend
from deepmmsearch.tools.cache import (
    CachedGrounder,
    CachedImageSearch,
    CachedSummarizer,
    CachedTextSearch,
    ToolCache,
    track,
)
from deepmmsearch.tools.memory import ListSummarizer


@dataclass
class ToolboxConfig:
    k: int = field(default=5, metadata={"help": "hits per search handed to the summarizer"})
    timeout_s: float = field(default=30.0, metadata={"help": "per tool call, summarizing included"})


class Toolbox:
    """Text search, image search and grounding, behind the three actions of the protocol.

    A backend may be None when no action will need it (``dmms search text`` builds no image search); an action
    whose backend is missing is a programming error and raises.
    """

    def __init__(
        self,
        text_search: TextSearchBackend | None,
        image_search: ImageSearchBackend | None,
        grounder: Grounder | None,
        summarizer: Summarizer | None = None,
        config: ToolboxConfig | None = None,
        cache: ToolCache | None = None,
    ) -> None:
        self.text_search = text_search
        self.image_search = image_search
        self.grounder = grounder
        self.summarizer = summarizer or ListSummarizer()
        self.config = config or ToolboxConfig()
        self.cache = cache
        if cache is not None:  # every backend call goes through the cache; tools/cache.py keys each kind
            self.text_search = CachedTextSearch(text_search, cache) if text_search else None
            self.image_search = CachedImageSearch(image_search, cache) if image_search else None
            self.grounder = CachedGrounder(grounder, cache) if grounder else None
            self.summarizer = CachedSummarizer(self.summarizer, cache)

    async def run(self, action: Action, question: str, image: Image.Image | None, image_ref: str | None) -> ToolResult:
        """Carry out one tool action. Never raises for a tool failure: the result's observation says it.
        ``image`` may be None for a text search only."""
        if not action.kind.is_tool:
            raise ValueError(f"{action.kind} is not a tool action")
        backend = self.text_search if action.kind is ActionKind.TEXT_SEARCH else self.image_search
        lacks_grounder = action.kind is ActionKind.CROP_SEARCH and self.grounder is None
        if backend is None or lacks_grounder or (action.kind.is_image and image is None):
            raise ValueError(f"this toolbox was built without what {action.kind} needs")
        result = ToolResult(tool=action.kind.value, query=action.query, backend=backend.name, observation="")
        label = "text search" if action.kind is ActionKind.TEXT_SEARCH else "image search"
        start = time.perf_counter()
        try:
            with track() as calls:
                async with asyncio.timeout(self.config.timeout_s):
                    await self._dispatch(action, question, image, image_ref, result)
                result.cached = bool(calls) and all(calls)  # served wholly from the cache
        except TimeoutError:
            result.error = f"timed out after {self.config.timeout_s:g} s"
            result.observation = f"{label} failed: {result.error}"
        except ToolError as e:
            result.error = str(e)
            result.observation = f"{label} failed: {e}"
        result.latency_s = time.perf_counter() - start
        return result

    async def _dispatch(
        self, action: Action, question: str, image: Image.Image, image_ref: str | None, result: ToolResult
    ) -> None:
        k = self.config.k
        if action.kind is ActionKind.TEXT_SEARCH:
            hits = await self.text_search.search(action.query, k)
            result.sources = [h.to_source() for h in hits]
            result.observation = (
                await self.summarizer.summarize_text(question, action.query, hits)
                if hits
                else f"No results for {action.query!r}."
            )
            return
        note = ""
        if action.kind is ActionKind.CROP_SEARCH:
            box = await self.grounder.ground(image, action.query)
            box = box.clip(*image.size) if box else None
            if box is None:
                note = f"Could not find {action.query!r} in the image; searched with the whole image instead.\n"
            else:
                result.box = box.as_list()
                image, image_ref = image.crop(tuple(result.box)), None
        hits = await self.image_search.search(image, k, image_ref)
        result.sources = [h.to_source() for h in hits]
        summary = await self.summarizer.summarize_images(question, hits) if hits else "No similar images found."
        result.observation = note + summary

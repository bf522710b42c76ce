"""Summarizers: condense the top hits into what answers the question, naming where each part came from.

- ``extractive`` (default, offline): the sentences of the hits most similar to the question and the query
  under the MiniLM embedder, kept in their source order and grouped under each source's title and URL.
- ``llm``: any OpenAI-compatible chat model through the ``openai`` SDK, instructed (in our own words, after
  the paper) to write 10-12 sentences for text results and 4-5 for image results.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deepmmsearch.errors import ConfigError, ToolError
from deepmmsearch.protocol import BEST_MATCH, MOST_RELEVANT
from deepmmsearch.tools.base import ImageHit, Summarizer, TextHit

if TYPE_CHECKING:
    from deepmmsearch.tools.config import ToolsConfig


# ---------------------------------------------------------------------------------------------- extractive


class ExtractiveSummarizer(Summarizer):
    """Picks the ``sentences`` most question-relevant sentences across the hits (no model beyond MiniLM)."""

    name = "extractive"
    # Bumped whenever the output changes, so a tool cache never replays summaries in an older format.
    cache_id = "extractive-2"

    def __init__(
        self, text_sentences: int = 6, image_sentences: int = 4, embedder: Any = None, max_cached: int = 200_000
    ) -> None:
        self.text_sentences = text_sentences
        self.image_sentences = image_sentences
        self._embedder = embedder
        # The same passages come back again and again (a knowledge base is finite); embedding their sentences
        # once instead of at every search makes summaries several times cheaper.
        self._vectors: OrderedDict[str, Any] = OrderedDict()
        self._max_cached = max_cached
        self._lock = threading.Lock()

    async def summarize_text(self, question: str, query: str, hits: list[TextHit]) -> str:
        sources = [(h.title, h.url, h.text) for h in hits]
        focus = f"{question} {query}".strip()
        return await asyncio.to_thread(self._summarize, focus, sources, self.text_sentences, True)

    async def summarize_images(self, question: str, hits: list[ImageHit]) -> str:
        sources = [(h.title, h.url, h.description or h.title) for h in hits]
        summary = await asyncio.to_thread(self._summarize, question, sources, self.image_sentences)
        # A reverse image search leads with its best guess (Google Lens does); a reader names the entity from
        # that one line instead of weighing every result.
        return f"{BEST_MATCH} {hits[0].title}\n{summary}" if hits else summary

    def _summarize(self, focus: str, sources: list[tuple[str, str, str]], budget: int, lead: bool = False) -> str:
        """The ``budget`` sentences closest to ``focus`` under their sources; with ``lead``, the closest one first
        on a line of its own (a search engine's featured snippet)."""
        from deepmmsearch.engine.text_index import split_sentences

        units = [(s, j) for j, (_, _, text) in enumerate(sources) for s in split_sentences(text)]
        if not units:
            return "\n".join(f"{title} ({url})" for title, url, _ in sources)
        ranked = list(range(len(units)))
        if len(units) > budget or lead:
            embedder = self._embedder
            if embedder is None:
                from deepmmsearch.engine.embedder import load_embedder

                embedder = self._embedder = load_embedder()
            # The title goes with each sentence: "It was first lit in 1871" only matches a question about
            # the lighthouse through the page it comes from.
            vectors = self._embed(embedder, [f"{sources[j][0]}: {s}" for s, j in units])
            similarity = vectors @ embedder.encode_query(focus)
            # A small bonus for higher-ranked sources breaks near-ties the way the search engine ranked them.
            scored = [float(similarity[i]) - 0.01 * units[i][1] for i in range(len(units))]
            ranked = sorted(range(len(units)), key=lambda i: -scored[i])
        chosen = set(ranked[:budget])
        lines = [f"{MOST_RELEVANT} {units[ranked[0]][0]}"] if lead else []
        for j, (title, url, _) in enumerate(sources):
            picked = [units[i][0] for i in sorted(chosen) if units[i][1] == j]
            if picked:
                lines.append(result_line(title, url, " ".join(picked)))
        return "\n".join(lines)

    def _embed(self, embedder: Any, texts: list[str]) -> Any:
        import numpy as np

        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            fresh = embedder.encode(missing, max_tokens=96)
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    self._vectors[text] = vector
                while len(self._vectors) > self._max_cached:
                    self._vectors.popitem(last=False)
        with self._lock:
            return np.stack(
                [self._vectors[t] if t in self._vectors else embedder.encode([t], max_tokens=96)[0] for t in texts]
            )


def result_line(title: str, url: str, text: str) -> str:
    """One source as the extractive summary shows it."""
    return f"{title} ({url}): {text}"


def extractive_summarizer(config: ToolsConfig) -> Summarizer:
    """Registry factory for ``extractive``."""
    return ExtractiveSummarizer()


# ---------------------------------------------------------------------------------------------- LLM

TEXT_INSTRUCTIONS = (
    "You help a visual question-answering assistant that cannot read web pages itself. Below are web search "
    "results for its query. Write a summary of 10 to 12 sentences that keeps every fact from the results "
    "that helps answer the question: names, dates, numbers, places, and how they relate. Say which source "
    "(title) each key fact comes from. Leave out what is irrelevant, add nothing the results do not say, and "
    "if the results do not answer the question, say so plainly."
)
IMAGE_INSTRUCTIONS = (
    "You help a visual question-answering assistant. Below are the results of a reverse image search: pages "
    "whose images look like the user's image. Write 4 to 5 sentences on what the image most likely shows "
    "(the entity, object, place or person, with its name) and the facts the results give about it that bear "
    "on the question. Note disagreements between results, and add nothing they do not say."
)


@dataclass
class LLMSummarizerConfig:
    model: str = field(default="gpt-4o-mini", metadata={"help": "chat model that writes the summaries"})
    base_url: str | None = field(default=None, metadata={"help": "OpenAI-compatible server; None = OpenAI"})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "environment variable with the key"})
    timeout_s: float = field(default=60.0, metadata={"help": "per request"})
    max_retries: int = field(default=2, metadata={"help": "SDK retries on 429, 5xx and timeouts"})
    max_tokens: int = field(default=600, metadata={"help": "longest summary, in tokens"})


class LLMSummarizer(Summarizer):
    """Summaries written by a chat model; failures become :class:`ToolError` (the model reads them)."""

    name = "llm"

    def __init__(self, config: LLMSummarizerConfig | None = None, client: Any = None) -> None:
        self.config = config or LLMSummarizerConfig()
        if client is None:
            from openai import AsyncOpenAI

            key = os.environ.get(self.config.api_key_env)
            if not key and self.config.base_url is None:
                raise ConfigError(f"the llm summarizer needs an API key: set {self.config.api_key_env}")
            client = AsyncOpenAI(
                api_key=key or "EMPTY",  # self-hosted servers take any key; the SDK wants a non-empty one
                base_url=self.config.base_url,
                timeout=self.config.timeout_s,
                max_retries=self.config.max_retries,
            )
        self._client = client

    async def summarize_text(self, question: str, query: str, hits: list[TextHit]) -> str:
        results = "\n\n".join(f"[{i}] {h.title} ({h.url})\n{h.text}" for i, h in enumerate(hits, 1))
        user = f"Question: {question}\nSearch query: {query}\n\nResults:\n{results}"
        return await self._complete(TEXT_INSTRUCTIONS, user)

    async def summarize_images(self, question: str, hits: list[ImageHit]) -> str:
        results = "\n\n".join(f"[{i}] {h.title} ({h.url})\n{h.description}" for i, h in enumerate(hits, 1))
        return await self._complete(IMAGE_INSTRUCTIONS, f"Question: {question}\n\nResults:\n{results}")

    async def _complete(self, instructions: str, user: str) -> str:
        import openai

        try:
            response = await self._client.chat.completions.create(
                model=self.config.model,
                messages=[{"role": "system", "content": instructions}, {"role": "user", "content": user}],
                temperature=0.0,
                max_tokens=self.config.max_tokens,
            )
        except openai.APIError as e:
            raise ToolError(f"summarizer {self.config.model}: {type(e).__name__}: {e}") from None
        text = (response.choices[0].message.content or "").strip() if response.choices else ""
        if not text:
            raise ToolError(f"summarizer {self.config.model}: empty reply")
        return text


def llm_summarizer(config: ToolsConfig) -> Summarizer:
    """Registry factory for ``llm``: ``summarizer_model`` is ``MODEL[@BASE_URL]``."""
    spec = config.summarizer_model or LLMSummarizerConfig.model
    model, _, base_url = spec.partition("@")
    return LLMSummarizer(LLMSummarizerConfig(model=model, base_url=base_url or None))

"""The text index: passages, a BM25 index (``bm25s``) and a dense index (MiniLM vectors in ``faiss``), fused.

Files it owns inside a knowledge-base folder (see :mod:`deepmmsearch.engine.kb` for the whole layout):
``passages.jsonl`` (one passage per line: ``id``, ``page_id``, ``title``, ``url``, ``text``), ``bm25/`` (the
``bm25s`` sparse index and its vocabulary) and ``dense.faiss`` (an inner-product flat index of normalised
vectors, row i = passage i).

Queries are tokenised the same way as passages: lower-cased words of two or more characters, English stop
words dropped, plural endings stripped (Harman's S-stemmer: no stemming library ships with the stack).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.records import read_jsonl

if TYPE_CHECKING:
    import numpy as np

    from deepmmsearch.engine.embedder import Embedder

MODES: tuple[str, ...] = ("hybrid", "bm25", "dense")
RRF_K = 60  # the constant of Cormack et al.'s reciprocal rank fusion: damps the weight of the very top ranks
FUSION_DEPTH = 50  # candidates taken from each ranker before fusing

_TOKEN_RE = re.compile(r"(?u)\b\w\w+\b")
# End punctuation, space, then a capital or digit; not after an initial ("Arthur C. Clarke") or a title.
_SENTENCE_RE = re.compile(r"(?<=[.!?])(?<!\s[A-Z]\.)(?<!\b(?:Mr|Dr|St|Mt|Jr|Sr)\.)\s+(?=[A-Z0-9\"'(])")


# ---------------------------------------------------------------------------------------------- tokenising


def _s_stem(word: str) -> str:
    """Harman's S-stemmer (1991): folds English plurals, and nothing else, so it rarely conflates meanings."""
    if len(word) <= 3 or not word.endswith("s"):
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if not word.endswith(("us", "ss")):
        return word[:-1]
    return word


_STOPWORDS: frozenset[str] | None = None
_STEMS: dict[str, str] = {}


def tokenize(text: str) -> list[str]:
    """The BM25 terms of a text."""
    global _STOPWORDS
    if _STOPWORDS is None:
        from bm25s.stopwords import STOPWORDS_EN

        _STOPWORDS = frozenset(STOPWORDS_EN)
    out = []
    for word in _TOKEN_RE.findall(text.lower()):
        if word in _STOPWORDS:
            continue
        stem = _STEMS.get(word)
        if stem is None:
            stem = _STEMS[word] = _s_stem(word)
        out.append(stem)
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of a plain-text passage (a light rule: end punctuation, space, capital or digit)."""
    return [s.strip() for s in _SENTENCE_RE.split(" ".join(text.split())) if s.strip()]


# ---------------------------------------------------------------------------------------------- passages


def chunk_page(page: dict, max_words: int = 160, overlap_sentences: int = 1) -> list[dict]:
    """Cut a page into passages of whole sentences, at most ``max_words`` each (a longer sentence stands alone).

    Each passage repeats the last ``overlap_sentences`` of the previous one so that a fact spanning a cut is
    still found. A short page (a Wikipedia intro, typically) is one passage.
    """
    for key in ("id", "title", "text"):
        if key not in page:
            raise InputError(f"page record lacks {key!r}: {json.dumps(page, ensure_ascii=False)[:200]}")
    base = {"page_id": str(page["id"]), "title": str(page["title"]), "url": str(page.get("url", ""))}
    text = " ".join(str(page["text"]).split())
    if len(text.split()) <= max_words:
        return [{"id": f"{base['page_id']}#0", **base, "text": text}] if text else []
    sentences = split_sentences(text)
    passages: list[dict] = []
    current: list[str] = []
    words = 0
    for sentence in sentences:
        n = len(sentence.split())
        if current and words + n > max_words:
            passages.append({"id": f"{base['page_id']}#{len(passages)}", **base, "text": " ".join(current)})
            current = current[-overlap_sentences:] if overlap_sentences else []
            words = sum(len(s.split()) for s in current)
        current.append(sentence)
        words += n
    if current:
        passages.append({"id": f"{base['page_id']}#{len(passages)}", **base, "text": " ".join(current)})
    return passages


def passage_for_embedding(passage: dict) -> str:
    """What the dense index embeds: the title carries most of a passage's topic, so it goes first."""
    return f"{passage['title']}. {passage['text']}"


# ---------------------------------------------------------------------------------------------- building


def build_bm25(passages: list[dict], out_dir: Path, progress: Callable[[int], Any] | None = None) -> None:
    """Write the BM25 index of ``passages`` (title + text) into ``out_dir``."""
    import bm25s

    vocab: dict[str, int] = {}
    ids: list[list[int]] = []
    reported = 0
    for n, p in enumerate(passages, 1):
        ids.append([vocab.setdefault(t, len(vocab)) for t in tokenize(f"{p['title']} {p['text']}")])
        if progress is not None and (n % 1024 == 0 or n == len(passages)):  # a bar update per passage is slow
            progress(n - reported)
            reported = n
    retriever = bm25s.BM25()
    retriever.index((ids, vocab), show_progress=False)
    retriever.save(str(out_dir), show_progress=False)


def build_dense(vectors: np.ndarray, out_path: Path) -> None:
    """Write an exact inner-product index of normalised vectors.

    Exact search takes ~0.4 ms per query over 10k passages on one core and grows linearly; past a few
    hundred thousand passages an approximate index (HNSW) would be the next step.
    """
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    faiss.write_index(index, str(out_path))


def read_dense_vectors(path: Path) -> np.ndarray:
    """The vectors of a flat index written by :func:`build_dense`, row i = passage i."""
    import faiss

    index = faiss.read_index(str(path))
    return index.reconstruct_n(0, index.ntotal)


# ---------------------------------------------------------------------------------------------- searching


@dataclass
class Hit:
    passage: dict
    score: float
    rank: int  # 0-based, in the list it was returned in


class TextIndex:
    """BM25, dense and hybrid (reciprocal-rank-fused) search over the passages of one knowledge base."""

    def __init__(
        self,
        passages: list[dict],
        bm25: Any,
        dense: Any | None,
        embedder_loader: Callable[[], Embedder] | None = None,
    ) -> None:
        self.passages = passages
        self._scores = bm25.scores  # the CSC matrix of precomputed BM25 term weights
        self._vocab: dict[str, int] = bm25.vocab_dict
        self._dense = dense
        self._embedder_loader = embedder_loader

    @classmethod
    def load(cls, kb_dir: str | Path) -> TextIndex:
        """Open the index of a knowledge-base folder built by :func:`deepmmsearch.engine.kb.build_kb`."""
        import bm25s

        kb_dir = Path(kb_dir)
        if not (kb_dir / "bm25").is_dir() or not (kb_dir / "passages.jsonl").is_file():
            raise ConfigError(f"{kb_dir}: not a built knowledge base (run: dmms kb build --text PAGES.jsonl --out DIR)")
        passages = list(read_jsonl(kb_dir / "passages.jsonl"))
        bm25 = bm25s.BM25.load(str(kb_dir / "bm25"), show_progress=False, verbosity=0)
        dense = None
        if (kb_dir / "dense.faiss").is_file():
            import faiss

            dense = faiss.read_index(str(kb_dir / "dense.faiss"))
        from deepmmsearch.engine.embedder import load_embedder

        return cls(passages, bm25, dense, load_embedder)

    def __len__(self) -> int:
        return len(self.passages)

    def search(self, query: str, k: int = 5, mode: str = "hybrid") -> list[Hit]:
        """The top-k passages for ``query``, best first."""
        if mode not in MODES:
            raise ConfigError(f"unknown retrieval mode {mode!r}; known: {', '.join(MODES)}")
        if mode == "bm25":
            return self._take(self.bm25_ranking(query, k), k)
        if mode == "dense":
            return self._take(self.dense_ranking(query, k), k)
        depth = max(FUSION_DEPTH, k)
        fused: dict[int, float] = {}
        for ranking in (self.bm25_ranking(query, depth), self.dense_ranking(query, depth)):
            for rank, (i, _) in enumerate(ranking):
                fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank + 1)
        return self._take(sorted(fused.items(), key=lambda item: -item[1]), k)

    def bm25_ranking(self, query: str, depth: int) -> list[tuple[int, float]]:
        """(passage index, BM25 score) of the best ``depth`` passages that share a term with the query."""
        import numpy as np

        term_ids = sorted({self._vocab[t] for t in tokenize(query) if t in self._vocab})
        if not term_ids:
            return []
        data, indices, indptr = self._scores["data"], self._scores["indices"], self._scores["indptr"]
        scores = np.zeros(self._scores["num_docs"], dtype=np.float32)
        for t in term_ids:
            start, end = indptr[t], indptr[t + 1]
            # A term's postings name each passage once, so plain fancy-index addition is exact (and far
            # faster than np.add.at, which bm25s uses for the general case).
            scores[indices[start:end]] += data[start:end]
        candidates = np.flatnonzero(scores)
        if len(candidates) > depth:
            candidates = candidates[np.argpartition(-scores[candidates], depth - 1)[:depth]]
        candidates = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [(int(i), float(scores[i])) for i in candidates]

    def dense_ranking(self, query: str, depth: int) -> list[tuple[int, float]]:
        """(passage index, cosine similarity) of the ``depth`` nearest passages; empty without a dense index."""
        if self._dense is None or self._embedder_loader is None or not query.strip():
            return []
        vector = self._embedder_loader().encode_query(query)
        scores, idx = search_one_thread(self._dense, vector.reshape(1, -1), min(depth, self._dense.ntotal))
        return [(int(i), float(s)) for i, s in zip(idx[0], scores[0], strict=True) if i >= 0]

    def _take(self, ranking: Iterable[tuple[int, float]], k: int) -> list[Hit]:
        return [Hit(self.passages[i], score, rank) for rank, (i, score) in enumerate(list(ranking)[:k])]


_OMP_LOCK = threading.Lock()


def search_one_thread(index: Any, queries: Any, depth: int) -> tuple[Any, Any]:
    """``index.search`` on one OpenMP thread: a single query gains nothing from more, whose wake-ups cost ~15 ms a
    call on a busy machine (0.5 ms without). The lock keeps concurrent searches from restoring each other's setting."""
    import faiss

    with _OMP_LOCK:
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return index.search(queries, depth)
        finally:
            faiss.omp_set_num_threads(threads)

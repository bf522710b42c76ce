"""Query latency of the local text engine, beside bm25s called directly and rank_bm25.

Two corpora: the default Wikipedia knowledge base (BM25, dense and hybrid), and a generated corpus of N
passages (1,000,000 by default) drawn from the Wikipedia vocabulary with its word frequencies (BM25 only:
embedding a million passages with MiniLM on a CPU takes hours, so dense and hybrid are not run there).

    python bench/bench_text_search.py                      # both corpora, 1M generated passages
    python bench/bench_text_search.py --passages 100000    # smaller generated corpus
    python bench/bench_text_search.py --skip-generated     # the Wikipedia one only

Target: our BM25 p50 at most 10 ms at 1M passages. rank_bm25 scores every passage in Python, so on the
generated corpus it runs only a few queries (``--rank-bm25-queries``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    ms = sorted(s * 1000 for s in samples_s)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return statistics.median(ms), p95


def time_queries(search: Callable[[str], object], queries: list[str], warmup: int = 3) -> list[float]:
    for q in queries[:warmup]:
        search(q)
    samples = []
    for q in queries:
        start = time.perf_counter()
        search(q)
        samples.append(time.perf_counter() - start)
    return samples


def report(rows: list[tuple[str, str, int, list[float]]]) -> None:
    print(f"{'corpus':<22}{'method':<34}{'queries':>8}{'p50 ms':>10}{'p95 ms':>10}")
    for corpus, method, n, samples in rows:
        p50, p95 = percentiles(samples)
        print(f"{corpus:<22}{method:<34}{n:>8}{p50:>10.2f}{p95:>10.2f}")


def keyword_queries(passages: list[str], n: int, rng: random.Random, words: int = 4) -> list[str]:
    """Queries of a few content words taken from random passages (what users type into a search box)."""
    from deepmmsearch.engine.text_index import tokenize

    queries = []
    while len(queries) < n:
        tokens = list(dict.fromkeys(tokenize(rng.choice(passages))))
        if len(tokens) >= words:
            queries.append(" ".join(rng.sample(tokens, words)))
    return queries


def bench_index(label: str, kb_dir: Path, passages: list[str], queries: list[str], args: argparse.Namespace,
                dense: bool) -> list[tuple[str, str, int, list[float]]]:  # fmt: skip
    import bm25s
    from rank_bm25 import BM25Okapi

    from deepmmsearch.engine.text_index import TextIndex, tokenize

    index = TextIndex.load(kb_dir)
    rows = [(label, "ours bm25", len(queries), time_queries(lambda q: index.search(q, 5, "bm25"), queries))]
    if dense:
        index.search("warm up the embedder", 5, "dense")
        rows.append((label, "ours dense (MiniLM + faiss)", len(queries),
                     time_queries(lambda q: index.search(q, 5, "dense"), queries)))  # fmt: skip
        rows.append((label, "ours hybrid (RRF)", len(queries),
                     time_queries(lambda q: index.search(q, 5, "hybrid"), queries)))  # fmt: skip
    # bm25s on the very same index files, through its own retrieve() (same tokens, same scores).
    retriever = bm25s.BM25.load(str(kb_dir / "bm25"), show_progress=False, verbosity=0)

    def bm25s_search(q: str) -> object:
        tokens = [t for t in tokenize(q) if t in retriever.vocab_dict] or [""]
        return retriever.retrieve([tokens], k=5, show_progress=False, n_threads=1)

    rows.append((label, "bm25s.retrieve (same index)", len(queries), time_queries(bm25s_search, queries)))
    sample = queries[: args.rank_bm25_queries] if len(passages) > 20_000 else queries
    start = time.perf_counter()
    okapi = BM25Okapi([tokenize(p) for p in passages])
    print(f"  ({label}: rank_bm25 index built in {time.perf_counter() - start:.1f} s)")
    rows.append((label, "rank_bm25 get_top_n", len(sample),
                 time_queries(lambda q: okapi.get_top_n(tokenize(q), passages, 5), sample, warmup=0)))  # fmt: skip
    return rows


def wikipedia(args: argparse.Namespace) -> list[tuple[str, str, int, list[float]]]:
    from deepmmsearch.engine.kb import ensure_default_kb
    from deepmmsearch.engine.text_index import TextIndex

    start = time.perf_counter()
    kb_dir = ensure_default_kb()
    print(f"default knowledge base ready in {time.perf_counter() - start:.1f} s: {kb_dir}")
    passages = [f"{p['title']} {p['text']}" for p in TextIndex.load(kb_dir).passages]
    queries = keyword_queries(passages, args.queries, random.Random(args.seed))
    return bench_index(f"wikipedia ({len(passages):,})", kb_dir, passages, queries, args, dense=True)


def generated(args: argparse.Namespace) -> list[tuple[str, str, int, list[float]]]:
    from deepmmsearch.engine.corpus import default_pages
    from deepmmsearch.engine.kb import build_kb
    from deepmmsearch.engine.text_index import tokenize

    # Words and their frequencies from the Wikipedia intros, so the postings lists have realistic lengths.
    counts = Counter(t for p in default_pages() for t in tokenize(p["text"]))
    vocab = np.array(list(counts))
    probs = np.array(list(counts.values()), dtype=np.float64)
    probs /= probs.sum()
    rng = np.random.default_rng(args.seed)
    lengths = rng.integers(20, 60, size=args.passages)
    start = time.perf_counter()
    words = vocab[rng.choice(len(vocab), size=int(lengths.sum()), p=probs)]
    cuts = np.cumsum(lengths)[:-1]
    passages = [" ".join(chunk) for chunk in np.split(words, cuts)]
    print(f"generated {len(passages):,} passages ({lengths.sum():,} words) in {time.perf_counter() - start:.1f} s")
    pages = [{"id": str(i), "title": "", "url": "", "text": text} for i, text in enumerate(passages)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        build_kb(pages, Path(tmp) / "kb", dense=False)
        print(f"BM25 knowledge base of {len(pages):,} passages built in {time.perf_counter() - start:.1f} s")
        del pages
        queries = keyword_queries(passages, args.queries, random.Random(args.seed))
        label = f"generated ({len(passages):,})"
        rows = bench_index(label, Path(tmp) / "kb", passages, queries, args, dense=False)
    print(f"  ({label}: dense and hybrid not run: embedding this many passages with MiniLM on CPU takes hours)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=1_000_000, help="size of the generated corpus")
    parser.add_argument("--queries", type=int, default=200, help="queries per method")
    parser.add_argument("--rank-bm25-queries", type=int, default=3, help="rank_bm25 queries on a large corpus")
    parser.add_argument("--skip-wikipedia", action="store_true")
    parser.add_argument("--skip-generated", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    if not args.skip_wikipedia:
        rows += wikipedia(args)
    if not args.skip_generated:
        rows += generated(args)
    print()
    report(rows)
    ours = {c: percentiles(s)[0] for c, m, _, s in rows if m == "ours bm25"}
    for corpus, method, _, samples in rows:
        if method != "ours bm25" and not method.startswith("ours"):
            print(f"{corpus}: {method} p50 is {percentiles(samples)[0] / ours[corpus]:.1f}x ours bm25")


if __name__ == "__main__":
    main()

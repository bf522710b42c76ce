"""Retrieval quality on the default Wikipedia knowledge base, with paraphrased questions.

The default index is built once per machine into the cache folder (``$DMMS_CACHE_DIR`` or the user cache)
and reused: building it takes about 110 s of CPU (80 s on two quiet cores), searching it milliseconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from deepmmsearch.engine.corpus import default_pages, wikipedia_url
from deepmmsearch.engine.kb import default_kb_dir, ensure_default_kb, is_built, read_manifest
from deepmmsearch.engine.text_index import TextIndex

# Paraphrases: they avoid the article's title and, where possible, its opening words.
QUESTIONS = [
    ("Which 1968 science fiction film did Kubrick make with Arthur C. Clarke?", "2001: A Space Odyssey"),
    ("What is the highest peak in the world above sea level?", "Mount Everest"),
    ("Which German-born physicist came up with relativity?", "Albert Einstein"),
    ("Which muscular organ keeps blood circulating through the body?", "Heart"),
    ("What is the biggest and deepest body of salt water on Earth?", "Pacific Ocean"),
    ("Leonardo's famous half-length portrait of a woman in the Louvre", "Mona Lisa"),
    ("Which is the fourth planet from the Sun, known for its reddish colour?", "Mars"),
    ("Tomb built for the pharaoh Khufu, the largest Egyptian pyramid", "Great Pyramid of Giza"),
    ("Which English playwright wrote Hamlet and Romeo and Juliet?", "William Shakespeare"),
    ("How do plants turn sunlight into chemical energy?", "Photosynthesis"),
    ("What is the long north-flowing river of Africa that ends in the Mediterranean?", "Nile"),
    ("Which precious yellow metal has atomic number 79?", "Gold"),
    ("Mosquito-borne disease caused by Plasmodium parasites", "Malaria"),
    ("Region of spacetime whose gravity is so strong that not even light escapes", "Black hole"),
]


@pytest.fixture(scope="session")
def wiki_kb() -> Path:
    """The default knowledge base, shared with the user cache (or the ``$DMMS_CACHE_DIR`` pytest was started
    with): building it costs minutes of CPU, so it is built once per machine, not once per test session.

    Session fixtures are set up before the function-scoped one in tests/conftest.py that points
    ``$DMMS_CACHE_DIR`` at a temporary folder, so this sees the caller's setting.
    """
    built_before = is_built(default_kb_dir())
    start = time.perf_counter()
    kb_dir = ensure_default_kb(show_progress=False)
    if not built_before:
        print(f"\nbuilt the default knowledge base in {time.perf_counter() - start:.1f} s")
    return kb_dir


@pytest.fixture(scope="session")
def wiki_index(wiki_kb: Path) -> TextIndex:
    return TextIndex.load(wiki_kb)


def recall_at_5(index: TextIndex, mode: str) -> tuple[float, list[str]]:
    misses = []
    for question, title in QUESTIONS:
        titles = [h.passage["title"] for h in index.search(question, 5, mode)]
        if title not in titles:
            misses.append(f"{question!r} -> {titles}")
    return 1 - len(misses) / len(QUESTIONS), misses


def test_default_pages_are_the_wikipedia_intros() -> None:
    pages = default_pages()
    assert len(pages) == 10_033
    by_title = {p["title"]: p for p in pages}
    assert by_title["Mount Everest"]["url"] == "https://en.wikipedia.org/wiki/Mount_Everest"
    assert by_title["Mount Everest"]["text"].startswith("Mount Everest is")
    assert wikipedia_url("2001: A Space Odyssey") == "https://en.wikipedia.org/wiki/2001:_A_Space_Odyssey"


def test_default_kb_manifest(wiki_kb: Path, wiki_index: TextIndex) -> None:
    assert wiki_kb.name.startswith("wikipedia-en-vital-intros-")
    manifest = read_manifest(wiki_kb)
    assert manifest["pages"] == 10_033
    assert manifest["passages"] == len(wiki_index) >= 10_033
    assert manifest["embedder"] == "all-MiniLM-L6-v2"


def test_hybrid_recall_at_5_is_high_and_no_worse_than_bm25(wiki_index: TextIndex) -> None:
    hybrid, hybrid_misses = recall_at_5(wiki_index, "hybrid")
    bm25, _ = recall_at_5(wiki_index, "bm25")
    assert hybrid >= 0.9, hybrid_misses
    assert hybrid >= bm25


def test_dense_alone_finds_most_paraphrases(wiki_index: TextIndex) -> None:
    dense, misses = recall_at_5(wiki_index, "dense")
    assert dense >= 0.7, misses


def test_hits_carry_title_url_and_the_passage(wiki_index: TextIndex) -> None:
    top = wiki_index.search("Which German-born physicist came up with relativity?", 1)[0]
    assert top.passage["title"] == "Albert Einstein"
    assert top.passage["url"] == "https://en.wikipedia.org/wiki/Albert_Einstein"
    assert "theory of relativity" in top.passage["text"]

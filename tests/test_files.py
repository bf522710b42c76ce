"""JSON Lines and folders built beside their place: the helpers every stage writes its files with."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepmmsearch.files import build_beside
from deepmmsearch.records import append_jsonl, read_jsonl, write_jsonl


def test_jsonl_written_appended_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "rows.jsonl"
    write_jsonl(path, ({"id": i, "text": "café"} for i in range(2)))
    append_jsonl(path, [{"id": 2}])
    assert list(read_jsonl(path)) == [{"id": 0, "text": "café"}, {"id": 1, "text": "café"}, {"id": 2}]
    assert "café" in path.read_text(encoding="utf-8")  # UTF-8 as is, not \\u escapes
    write_jsonl(path, [])
    assert list(read_jsonl(path)) == []  # written anew, not appended


def test_a_build_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    out = tmp_path / "index"
    with build_beside(out) as tmp:
        (tmp / "a").write_text("new")
        assert not out.exists() and tmp.parent == out.parent
    assert (out / "a").read_text() == "new"
    with pytest.raises(RuntimeError), build_beside(out) as tmp:
        (tmp / "a").write_text("half")
        raise RuntimeError("killed mid-build")
    assert (out / "a").read_text() == "new"  # the failed build left the old one whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # and nothing beside it


def test_replace_or_keep_an_existing_build(tmp_path: Path) -> None:
    out = tmp_path / "index"
    out.mkdir()
    (out / "a").write_text("old")
    with build_beside(out, replace=False) as tmp:
        (tmp / "a").write_text("new")
    assert (out / "a").read_text() == "old"
    with build_beside(out) as tmp:
        (tmp / "a").write_text("new")
    assert (out / "a").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_a_finished_build_of_another_process_is_kept_and_an_unfinished_one_replaced(tmp_path: Path) -> None:
    out = tmp_path / "index"
    finished = lambda folder: (folder / "done").is_file()  # noqa: E731
    with build_beside(out, replace=False, complete=finished) as tmp:
        (tmp / "mine").write_text("")
        out.mkdir()  # another process renames its finished build into place first
        (out / "done").write_text("")
    assert sorted(p.name for p in out.iterdir()) == ["done"]
    other = tmp_path / "other"
    with build_beside(other, replace=False, complete=finished) as tmp:
        (tmp / "done").write_text("")
        other.mkdir()  # a folder in the way that is no finished build
        (other / "junk").write_text("")
    assert sorted(p.name for p in other.iterdir()) == ["done"]

"""Reverse image search: finds the source of perturbed copies; index files, loading, errors; the local backend
and ``dmms search image``.

The collection and the perturbations are those of bench/bench_image_search.py, so the recall asserted here
and the recall the benchmark reports are measured the same way.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepmmsearch.engine.image_index import DIM, RECORDS_FILE, WINDOWS, ImageIndex, build_image_index, describe_image
from deepmmsearch.errors import ConfigError, InputError, ToolError
from deepmmsearch.tools.local_image import LocalImageSearch

_BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_image_search.py"
_spec = importlib.util.spec_from_file_location("bench_image_search", _BENCH)
bench = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(bench)  # type: ignore[union-attr]

EXAMPLES_KB = Path(__file__).resolve().parents[2] / "examples" / "kb"


def _collection(tmp_path: Path, images: list[Image.Image]) -> list[dict]:
    (tmp_path / "pics").mkdir()
    records = []
    for i, image in enumerate(images):
        image.save(tmp_path / "pics" / f"{i}.png")
        records.append(
            {"id": f"img{i}", "path": f"pics/{i}.png", "page_url": f"https://ex.org/{i}", "title": f"Picture {i}"}
        )
    return records


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Image.Image], ImageIndex, Path]:
    tmp = tmp_path_factory.mktemp("drawn")
    rng = np.random.default_rng(7)
    images = [bench.drawn_picture(rng) for _ in range(60)]
    records = _collection(tmp, images)
    assert build_image_index(records, tmp, tmp / "index") == 60
    return images, ImageIndex.load(tmp / "index"), tmp


def _recall_at_1(index: ImageIndex, images: list[Image.Image], kinds: list[str], per_kind: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    recall = {}
    for kind in kinds:
        right = 0
        for _ in range(per_kind):
            target = int(rng.integers(len(images)))
            hits = index.search(bench.PERTURBATIONS[kind](images[target], rng), 5)
            right += hits[0].url.endswith(f"/{target}")
        recall[kind] = right / per_kind
    return recall


def test_finds_the_source_of_240_perturbed_copies(drawn: tuple) -> None:
    images, index, _ = drawn
    recall = _recall_at_1(index, images, list(bench.PERTURBATIONS), per_kind=48, seed=1)
    overall = sum(recall.values()) / len(recall)
    assert overall >= 0.95, recall
    assert min(recall.values()) >= 0.9, recall  # no kind of perturbation is a blind spot


def test_finds_the_source_of_perturbed_skimage_photos(tmp_path: Path) -> None:
    photos = bench.skimage_photos()
    assert len(photos) >= 15  # scikit-image ships these in its wheel
    index = ImageIndex.build(_collection(tmp_path, photos), tmp_path)
    recall = _recall_at_1(index, photos, list(bench.PERTURBATIONS), per_kind=12, seed=2)
    assert sum(recall.values()) / len(recall) >= 0.95, recall


def test_hits_carry_the_records_fields_distinct_and_best_first(drawn: tuple) -> None:
    images, index, _ = drawn
    hits = index.search(images[3], 5)
    assert hits[0].title == "Picture 3" and hits[0].url == "https://ex.org/3"
    assert len({h.url for h in hits}) == 5
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.99  # the image itself matches exactly
    assert Path(hits[0].image).is_file()
    assert len(index.search(images[0], 500)) == 60  # k beyond the collection: every image once
    assert index.search(images[0], 0) == []


def test_index_files_are_relocatable_and_validated(drawn: tuple, tmp_path: Path) -> None:
    _, index, root = drawn
    lines = (root / "index" / RECORDS_FILE).read_text().splitlines()
    assert json.loads(lines[0])["path"] == "../pics/0.png"  # inside the folder: stored relative
    assert index.num_vectors == 60 * len(WINDOWS) and describe_image(Image.new("RGB", (9, 5))).shape == (DIM,)
    with pytest.raises(ConfigError, match="no image index"):
        ImageIndex.load(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("image_index.faiss", "image_index.npy", RECORDS_FILE):
        (broken / name).write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="damaged"):
        ImageIndex.load(broken)


def test_a_missing_image_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such image"):
        ImageIndex.build([{"id": "x", "path": "nope.png"}], tmp_path)
    assert len(ImageIndex.build([], tmp_path).search(Image.new("RGB", (8, 8)), 5)) == 0


def test_local_backend_indexes_a_plain_folder_once_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DMMS_CACHE_DIR", str(tmp_path / "cache"))
    backend = LocalImageSearch(EXAMPLES_KB)
    query = Image.open(EXAMPLES_KB / "images" / "korvath_point.png").convert("RGB").crop((40, 20, 280, 220))
    hits = asyncio.run(backend.search(query, 5))
    assert [h.title for h in hits] == ["Korvath Point Lighthouse", "Elmbrook Mill"]
    built = list((tmp_path / "cache" / "images").iterdir())
    assert len(built) == 1 and ImageIndex.exists(built[0])
    assert LocalImageSearch(EXAMPLES_KB).cache_id == backend.cache_id  # stable while the data is unchanged
    with pytest.raises(ToolError, match="--kb"):
        asyncio.run(LocalImageSearch(None).search(query, 5))


def test_dmms_search_image_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from deepmmsearch.cli import app

    monkeypatch.setenv("DMMS_CACHE_DIR", str(tmp_path / "cache"))
    scene = Image.new("RGB", (300, 200), "white")
    scene.paste(Image.open(EXAMPLES_KB / "images" / "elmbrook_mill.png").resize((120, 90)), (170, 60))
    scene.paste(Image.new("RGB", (60, 60), (200, 30, 30)), (20, 70))
    scene.save(tmp_path / "scene.png")
    runner = CliRunner()
    args = ["search", "image", str(tmp_path / "scene.png"), "--kb", str(EXAMPLES_KB), "--json"]
    result = runner.invoke(app, [*args, "--crop", "the object on the right", "-k", "1"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["box"] is not None and record["box"][0] >= 165
    assert [h["title"] for h in record["hits"]] == ["Elmbrook Mill"]
    result = runner.invoke(app, [*args, "--crop", "the green circle"])
    assert result.exit_code == 0 and json.loads(result.stdout)["box"] is None  # not found: whole image searched
    result = runner.invoke(app, ["search", "image", str(tmp_path / "missing.png"), "--kb", str(EXAMPLES_KB)])
    assert result.exit_code == 1 and "no such image" in result.output

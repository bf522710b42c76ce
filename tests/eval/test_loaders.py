"""Benchmark loaders on small fixtures in each benchmark's native format."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.eval.judges import judge_infoseek
from deepmmsearch.eval.loaders import BENCHMARKS, load_benchmark

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def data(tmp_path: Path):
    """A copy of one fixture folder: loaders may write extracted images next to the data."""

    def copy(name: str) -> Path:
        return Path(shutil.copytree(FIXTURES / name, tmp_path / name))

    return copy


def test_infoseek(data) -> None:
    qs = load_benchmark("infoseek", data("infoseek"))
    assert [q.id for q in qs] == ["infoseek_val_00000001", "infoseek_val_00000002", "infoseek_val_00000003"]
    num, string, time = qs
    assert num.question_type == "numerical" and num.answer_eval == ["34.2", "41.8"]  # the range, as officially read
    assert num.split == "val_unseen_question" and num.image.endswith("images/oven_01.jpg")
    assert Path(num.image).is_file()
    assert string.answer_eval == ["Vellmar", "Province of Vellmar"] and time.question_type == "time"
    assert judge_infoseek("about 40", num).correct and not judge_infoseek("50", num).correct


def test_encyclopedic_vqa(data) -> None:
    qs = load_benchmark("encyclopedic_vqa", data("evqa"))
    assert qs[0].answers == ["38 metres", "38 m"]
    assert qs[0].image.endswith("images/a1b2c3.jpg") and Path(qs[0].image).is_file()  # first of the image ids
    assert (qs[0].question_type, qs[0].category, qs[1].category) == ("templated", "landmarks", "inaturalist")


def test_simplevqa_keeps_english_and_writes_embedded_images(data) -> None:
    qs = load_benchmark("simplevqa", data("simplevqa"))
    assert [(q.id, q.answers, q.category) for q in qs] == [("7", ["red"], "attribute")]
    assert Image.open(qs[0].image).getpixel((0, 0)) == (255, 0, 0)


def test_dynvqa(data) -> None:
    (q,) = load_benchmark("dynvqa", data("dynvqa"))
    assert (q.id, q.image, q.answers) == ("dyn-1", "https://example.org/a.jpg", ["Jane Doe", "J. Doe"])


def test_okvqa_has_ten_answers_and_coco_paths(data) -> None:
    (q,) = load_benchmark("okvqa", data("okvqa"))
    assert q.id == "420" and len(q.answers) == 10 and q.answers.count("tennis") == 8
    assert q.image.endswith("val2014/COCO_val2014_000000000042.jpg")


def test_aokvqa(data) -> None:
    (q,) = load_benchmark("aokvqa", data("aokvqa"))
    assert q.id == "aok1" and len(q.answers) == 10 and q.image.endswith("val2017/000000000099.jpg")
    assert q.extra["choices"][q.extra["correct_choice_idx"]] == "racket"


def test_mmsearch_parquet_skips_questions_without_an_image(data) -> None:
    (q,) = load_benchmark("mmsearch", data("mmsearch"))
    assert q.id == "ms-1" and q.answers == ["Spain", "Spain national team"] and q.category == "sports"
    assert Image.open(q.image).getpixel((0, 0)) == (0, 128, 0)


def test_fvqa_parquet(data) -> None:
    (q,) = load_benchmark("fvqa", data("fvqa"))
    assert (q.id, q.answers, q.category) == ("fv-1", ["Eiffel Tower", "Tour Eiffel"], "image_search")
    assert Path(q.image).is_file()


def test_missing_files_say_where_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"infoseek_val\.jsonl.*github.com/open-vision-language/infoseek"):
        load_benchmark("infoseek", tmp_path)
    with pytest.raises(InputError, match="no such folder"):
        load_benchmark("okvqa", tmp_path / "nope")
    with pytest.raises(ConfigError, match="known: infoseek, encyclopedic_vqa"):
        load_benchmark("vqav2", tmp_path)
    assert set(BENCHMARKS) == {
        "infoseek",
        "encyclopedic_vqa",
        "simplevqa",
        "dynvqa",
        "okvqa",
        "aokvqa",
        "mmsearch",
        "fvqa",
    }

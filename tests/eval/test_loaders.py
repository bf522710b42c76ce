"""Benchmark loaders on small samples written in each benchmark's released layout: the real file names, field names,
nesting and folders, with made-up values and 4x4 images."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from deepmmsearch.cli import app
from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.eval.harness import EvalConfig, evaluate
from deepmmsearch.eval.loaders import (
    BENCHMARKS,
    check_images,
    load_benchmark_set,
    stratified_sample,
)
from deepmmsearch.policies.scripted import ScriptedPolicy
from deepmmsearch.records import Question


def load_benchmark(name: str, data_dir: Path, **options: str) -> list[Question]:
    return load_benchmark_set(name, data_dir, **options).questions


def image(path: Path, color: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".png": "PNG", ".webp": "WEBP"}.get(path.suffix.lower(), "JPEG")
    Image.new("RGB", (4, 4), color).save(path, format=fmt)
    return path


def image_bytes(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, format="PNG")
    return buffer.getvalue()


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def parquet(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def all_found(questions: list[Question]) -> None:
    """Every question has its image on disk and at least one gold answer."""
    for q in questions:
        assert Path(q.image).is_file(), (q.id, q.image)
        assert q.answers or q.answer_eval, q.id


# ---------------------------------------------------------------------------------------------- InfoSeek


def infoseek(root: Path, images: Path) -> None:
    data = root / "infoseek_data"
    jsonl(
        data / "infoseek_val.jsonl",
        [
            {
                "data_id": "infoseek_val_00000001",
                "image_id": "oven_01000001",
                "question": "How tall is this tower?",
                "answer": ["38"],
                "answer_eval": [{"wikidata": 38.0, "range": [34.2, 41.8]}],
                "data_split": "val_unseen_question",
            },
            {
                "data_id": "infoseek_val_00000002",
                "image_id": "oven_02000002",
                "question": "How long is this bridge?",
                "answer": ["120"],
                "answer_eval": {"wikidata": 120.0, "range": [108.0, 132.0]},  # the bare-dict shape
                "data_split": "val_unseen_entity",
            },
            {
                "data_id": "infoseek_val_00000003",
                "image_id": "oven_03000003",
                "question": "Which province is this town in?",
                "answer": ["Vellmar"],
                "answer_eval": ["Vellmar", "Province of Vellmar"],
                "data_split": "val_unseen_entity",
            },
        ],
    )
    jsonl(
        data / "infoseek_val_qtype.jsonl",
        [
            {"data_id": "infoseek_val_00000001", "question_type": "Numerical"},
            {"data_id": "infoseek_val_00000002", "question_type": "Numerical"},
            {"data_id": "infoseek_val_00000003", "question_type": "String"},
        ],
    )
    test = [{"data_id": "infoseek_test_00000001", "image_id": "oven_01000001", "question": "?"}]
    jsonl(data / "infoseek_test.jsonl", test)  # the test split is released without answers
    image(images / "oven_images" / "01" / "oven_01000001.JPEG")  # extensions vary in case
    image(images / "oven_images" / "02" / "oven_02000002.jpg")
    image(images / "oven_images" / "03" / "oven_03000003.png")


def test_infoseek_reads_oven_shards_and_both_answer_eval_shapes(tmp_path: Path) -> None:
    infoseek(tmp_path, tmp_path)
    qs = load_benchmark("infoseek", tmp_path)
    all_found(qs)
    num, bare, string = qs
    assert num.image.endswith("oven_images/01/oven_01000001.JPEG")
    assert num.question_type == bare.question_type == "numerical"
    assert num.answer_eval == ["34.2", "41.8"] and bare.answer_eval == ["108.0", "132.0"]
    assert string.answer_eval == ["Vellmar", "Province of Vellmar"] and string.question_type == "string"
    assert [q.split for q in qs] == ["val_unseen_question", "val_unseen_entity", "val_unseen_entity"]

    with pytest.raises(InputError, match=r"no question to evaluate.*infoseek_test\.jsonl.*no gold answer: 1"):
        load_benchmark("infoseek", tmp_path, split="test")
    with pytest.raises(ConfigError, match="known: val, test, human"):
        load_benchmark("infoseek", tmp_path, split="dev")


def test_image_root_holds_the_images_elsewhere(tmp_path: Path) -> None:
    data, images = tmp_path / "annotations", tmp_path / "oven"
    infoseek(data, images)
    bench = load_benchmark_set("infoseek", data, image_roots=[images])
    all_found(bench.questions)
    assert bench.image_roots == [str(images), str(data)] and bench.split == "val"
    with pytest.raises(InputError, match="3 of 3 images are missing"):
        check_images(load_benchmark("infoseek", data), "here")


# ---------------------------------------------------------------------------------------------- Encyclopedic-VQA

EVQA_FIELDS = [
    "question",
    "answer",
    "dataset_image_ids",
    "dataset_name",
    "dataset_category_id",
    "question_type",
    "wikipedia_url",
    "wikipedia_title",
    "evidence",
    "evidence_section_id",
    "evidence_section_title",
    "encyclopedic_vqa_split",
    "question_original",
    "wikipedia_url_used_in_train",
]


def test_encyclopedic_vqa_landmarks_inaturalist_and_multi_answer_parts(tmp_path: Path) -> None:
    rows = [
        ("How tall is this lighthouse?", "38 metres|38 m", "abc123def|abd999", "landmarks", "templated"),
        ("What does this bird eat?", "insects", "4242|4243", "inaturalist", "automatic"),
        ("What colours are its flowers?", "red&&white|red&&pink", "4243", "inaturalist", "multi_answer"),
        ("Who built it?", "", "abc123def", "landmarks", "templated"),  # no gold: left out
    ]
    with (tmp_path / "test.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, EVQA_FIELDS)
        writer.writeheader()
        for question, answer, ids, dataset, qtype in rows:
            row = {
                "question": question,
                "answer": answer,
                "dataset_image_ids": ids,
                "dataset_name": dataset,
                "question_type": qtype,
                "wikipedia_url": "https://en.wikipedia.org/wiki/X",
                "encyclopedic_vqa_split": "test",
            }
            writer.writerow({k: "" for k in EVQA_FIELDS} | row)
    images = tmp_path / "images"
    image(images / "landmarks" / "train" / "a" / "b" / "c" / "abc123def.jpg")
    inat = images / "inaturalist"
    files = {4242: "train/00001_Animalia_Aves_x/5b1c.jpg", 4243: "val/00002_Plantae_y/77aa.jpg"}
    inat.mkdir(parents=True)
    (inat / "train.json").write_text(json.dumps({"images": [{"id": 4242, "file_name": files[4242]}]}))
    (inat / "val.json").write_text(json.dumps({"images": [{"id": 4243, "file_name": files[4243]}]}))
    for name in files.values():
        image(inat / name)

    bench = load_benchmark_set("encyclopedic_vqa", tmp_path, image_roots=[images])
    all_found(bench.questions)
    lighthouse, bird, flowers = bench.questions
    assert lighthouse.answers == ["38 metres", "38 m"] and lighthouse.image.endswith("train/a/b/c/abc123def.jpg")
    assert bird.image == str(inat / files[4242]) and bird.category == "inaturalist"
    assert flowers.question_type == "multi_answer" and flowers.answers == ["red&&white", "red&&pink"]
    assert bench.left_out == {"no gold answer": 1}


# ---------------------------------------------------------------------------------------------- SimpleVQA, Dyn-VQA


def test_simplevqa_prefers_test_parquet_and_reads_english_by_default(tmp_path: Path) -> None:
    def row(data_id: int, language: str, answer: str) -> dict:
        return {
            "data_id": data_id,
            "image": {"bytes": image_bytes((255, 0, 0)), "path": None},
            "image_description": "",
            "language": language,
            "question": "What colour is the roof?",
            "answer": answer,
            "original_category": "建筑",
            "source": "https://example.org",
            "atomic_question": "What is this?",
            "atomic_fact": "x",
            "vqa_category": "attribute",
        }

    parquet(tmp_path / "test.parquet", [row(7, "EN", "red"), row(8, "CN", "红色"), row(9, "EN", "")])
    (tmp_path / "SimpleVQA_category_of_final.json").write_text(json.dumps([{"data_id": 1, "question": "old"}]))
    bench = load_benchmark_set("simplevqa", tmp_path)
    assert bench.files[0].endswith("test.parquet") and bench.left_out == {"no gold answer": 1}
    (q,) = bench.questions
    all_found([q])
    assert (q.id, q.answers, q.category) == ("7", ["red"], "attribute")
    assert Image.open(q.image).getpixel((0, 0)) == (255, 0, 0)
    assert [q.id for q in load_benchmark("simplevqa", tmp_path, split="cn")] == ["8"]


def test_dynvqa_reads_the_newest_version_and_counts_null_answers(tmp_path: Path) -> None:
    base = "https://example.org/Freshqa_en_extracted_images/"

    def rows(answers: list) -> list[dict]:
        return [
            {
                "image_url": f"{base}image_{i}.jpeg",
                "question": "Who leads it?",
                "question_id": f"en{i}",
                "answer": a,
                "gloden_query": "who",
            }
            for i, a in enumerate(answers, 1)
        ]

    folder = tmp_path / "dataset" / "DynVQA_en"
    jsonl(folder / "DynVQA_en.202406.jsonl", rows([["Jane Doe", "J. Doe"], ["1871"]]))
    jsonl(folder / "DynVQA_en.202408.jsonl", rows([None, ["1872"]]))  # this version nulls some answers
    jsonl(folder / "DynVQA_en.202410.jsonl", rows([[["Jane Roe", "J. Roe"]], [["1873"]]]))  # nested lists
    jsonl(folder / "DynVQA_en.202502.jsonl", rows([["Jane Poe"], ["1874"]]))
    jsonl(tmp_path / "dataset" / "DynVQA_zh" / "DynVQA_zh.202502.jsonl", rows([["简"], ["1874"]]))
    image(tmp_path / "images" / "image_2.jpeg")  # a local copy of one image

    newest = load_benchmark_set("dynvqa", tmp_path)
    assert (newest.version, newest.split) == ("202502", "en") and newest.files[0].endswith("DynVQA_en.202502.jsonl")
    first, second = newest.questions
    assert first.answers == ["Jane Poe"] and first.image == f"{base}image_1.jpeg"
    assert second.image == str(tmp_path / "images" / "image_2.jpeg")

    older = load_benchmark_set("dynvqa", tmp_path, version="202408")
    assert [q.id for q in older.questions] == ["en2"] and older.left_out == {"no gold answer": 1}
    assert load_benchmark("dynvqa", tmp_path, version="202410")[0].answers == ["Jane Roe", "J. Roe"]
    assert load_benchmark("dynvqa", tmp_path, split="zh")[0].answers == ["简"]
    with pytest.raises(ConfigError, match="found: 202502, 202410, 202408, 202406"):
        load_benchmark("dynvqa", tmp_path, version="202301")


# ---------------------------------------------------------------------------------------------- OK-VQA, A-OKVQA


def test_okvqa_has_ten_answers_and_coco_paths(tmp_path: Path) -> None:
    questions = {"questions": [{"image_id": 42, "question": "What sport is this?", "question_id": 420}]}
    answers = [
        {"answer": a, "raw_answer": a, "answer_confidence": "yes", "answer_id": i + 1}
        for i, a in enumerate(["tennis"] * 8 + ["squash"] * 2)
    ]
    annotations = {
        "annotations": [
            {"image_id": 42, "question_id": 420, "question_type": "other", "answer_type": "other", "answers": answers}
        ]
    }
    (tmp_path / "OpenEnded_mscoco_val2014_questions.json").write_text(json.dumps(questions))
    (tmp_path / "mscoco_val2014_annotations.json").write_text(json.dumps(annotations))
    image(tmp_path / "val2014" / "COCO_val2014_000000000042.jpg")
    (q,) = load_benchmark("okvqa", tmp_path)
    all_found([q])
    assert q.id == "420" and len(q.answers) == 10 and q.answers.count("tennis") == 8


def aokvqa(root: Path) -> Path:
    """Two val questions, the second marked difficult_direct_answer; COCO images under ``root/coco``."""

    def entry(qid: str, difficult: bool) -> dict:
        return {
            "split": "val",
            "image_id": 99,
            "question_id": qid,
            "question": "What is the man holding?",
            "choices": ["bat", "racket", "club", "stick"],
            "correct_choice_idx": 1,
            "direct_answers": ["racket"] * 9 + ["tennis racket"],
            "difficult_direct_answer": difficult,
            "rationales": ["He plays tennis."],
        }

    (root / "aokvqa_v1p0_val.json").write_text(json.dumps([entry("aok1", False), entry("aok2", True)]))
    image(root / "coco" / "val2017" / "000000000099.jpg")
    return root / "coco"


def test_aokvqa_leaves_out_difficult_direct_answer_questions(tmp_path: Path) -> None:
    bench = load_benchmark_set("aokvqa", tmp_path, image_roots=[aokvqa(tmp_path)])
    (q,) = bench.questions
    all_found([q])
    assert q.id == "aok1" and len(q.answers) == 10 and bench.left_out == {"difficult_direct_answer": 1}


def test_the_report_says_what_was_read_and_left_out(tmp_path: Path) -> None:
    bench = load_benchmark_set("aokvqa", tmp_path, image_roots=[aokvqa(tmp_path)])
    policy = ScriptedPolicy({"aok1": ["<reason>a racket</reason>\n<answer>racket</answer>"]}, name="script")
    config = EvalConfig(mode="direct", metric="vqa", plots=False)
    report = asyncio.run(evaluate(bench.questions, policy, tmp_path / "out", config, source=bench))
    assert report["benchmark"]["left_out"] == {"difficult_direct_answer": 1} and report["accuracy"]["score"] == 100
    assert (report["benchmark"]["name"], report["benchmark"]["split"], report["benchmark"]["evaluated"]) == (
        "aokvqa",
        "val",
        1,
    )
    assert "left out: 1 question(s), difficult_direct_answer" in (tmp_path / "out" / "report.md").read_text()


# ---------------------------------------------------------------------------------------------- MMSearch, FVQA


def test_mmsearch_parquet_leaves_out_text_only_queries(tmp_path: Path) -> None:
    def row(sample_id: str, query_image: dict | None) -> dict:
        return {
            "sample_id": sample_id,
            "query": "Who won this match?",
            "query_image": query_image,
            "gt_answer": "Spain",
            "alternative_gt_answers": ["Spain national team"],
            "area": "sports",
            "subfield": "football",
            "timestamp": "2024-07",
        }

    parquet(
        tmp_path / "end2end.parquet",
        [row("ms-1", {"bytes": image_bytes((0, 128, 0)), "path": None}), row("ms-2", None)],
    )
    bench = load_benchmark_set("mmsearch", tmp_path)
    (q,) = bench.questions
    all_found([q])
    assert q.answers == ["Spain", "Spain national team"] and bench.left_out == {"text-only query (no image)": 1}


def test_fvqa_reads_the_verl_layout(tmp_path: Path) -> None:
    def row(data_id: str, category: str, truth: str, candidates: list[str]) -> dict:
        return {
            "prompt": [{"content": "<image>What is the name of this tower?", "role": "user"}],
            "images": [{"bytes": image_bytes((10, 20, 30)), "path": None}],
            "reward_model": {"candidate_answers": json.dumps(candidates), "ground_truth": truth, "style": "rule"},
            "data_source": "mmsearch_r1/fvqa_test",
            "image_urls": None,
            "data_id": data_id,
            "category": category,
        }

    rows = [
        row("fvqa_test_0", "search_required", "Eiffel Tower", ["Tour Eiffel", "Eiffel Tower"]),
        row("fvqa_test_1", "search_free", "namus", []),
    ]
    parquet(tmp_path / "fvqa_test.parquet", rows)
    first, second = load_benchmark("fvqa", tmp_path)
    all_found([first, second])
    assert first.question == "What is the name of this tower?"
    assert first.answers == ["Eiffel Tower", "Tour Eiffel"] and second.answers == ["namus"]
    assert (first.category, first.requires_search, second.requires_search) == ("search_required", True, False)


# ---------------------------------------------------------------------------------------------- newer benchmarks


def test_livevqa_reads_both_levels_of_each_subset(tmp_path: Path) -> None:
    def item(item_id: str, img: str) -> dict:
        def qa(question: str, golds: list[str]) -> dict:
            return {
                "question": question,
                "question_type": "person",
                "options": ["A. x", "B. y"],
                "Ground_Truth": "A",
                "Ground_Truth_List": golds,
                "img_path": img,
                "img_url": "",
            }

        return {
            "id": item_id,
            "img_path": img,
            "level1_qa": qa("Who is on stage?", ["Dave Smith", "Mr Smith"]),
            "level2_qa": qa("How many albums has he released?", ["7"]),
            "source": "BBC",
            "time": "2025-04",
        }

    news, paper = tmp_path / "News", tmp_path / "Paper"
    news.mkdir()
    paper.mkdir()
    (news / "benchmark.json").write_text(json.dumps([item("0_2025", "bbc_9cae.png")]))
    (paper / "benchmark.json").write_text(json.dumps([item("2505.00049", "2505.00049/x2.png")]))
    image(news / "News_imgs" / "bbc_9cae.png")
    image(paper / "Paper_images" / "2505.00049" / "x2.png")
    qs = load_benchmark("livevqa", tmp_path)
    all_found(qs)
    assert [(q.id, q.split, q.category) for q in qs] == [
        ("0_2025-level1", "news", "level1"),
        ("0_2025-level2", "news", "level2"),
        ("2505.00049-level1", "paper", "level1"),
        ("2505.00049-level2", "paper", "level2"),
    ]
    assert qs[0].answers == ["Dave Smith", "Mr Smith"] and qs[1].answers == ["7"]
    assert [q.split for q in load_benchmark("livevqa", tmp_path, split="paper")] == ["paper", "paper"]


def test_browsecomp_vl_reads_both_levels(tmp_path: Path) -> None:
    for level in ("level1", "level2"):
        rows = [
            {
                "question": f"Which city hosts this {level} event?",
                "image_path": f"image/{level}/{level}_1.jpg",
                "answers": ["Santa Fe"],
                "domain": "Geography",
            }
        ]
        jsonl(tmp_path / "benchmark" / f"bc_vl_{level}.jsonl", rows)
        image(tmp_path / "images" / "image" / level / f"{level}_1.jpg")  # where WebWatcher's download puts them
    qs = load_benchmark("browsecomp_vl", tmp_path)
    all_found(qs)
    assert [(q.id, q.split, q.category) for q in qs] == [
        ("bc_vl_level1_1", "level1", "Geography"),
        ("bc_vl_level2_1", "level2", "Geography"),
    ]
    assert [q.id for q in load_benchmark("browsecomp_vl", tmp_path, split="level2")] == ["bc_vl_level2_1"]


def test_mmsearch_plus_decrypts_with_the_canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    canary = "a-canary"

    def encrypt(text: str) -> str:
        data = text.encode()
        key = hashlib.sha256(canary.encode()).digest()
        return base64.b64encode(bytes(b ^ key[i % len(key)] for i, b in enumerate(data))).decode()

    row = {
        "question": encrypt("In which city was this photo taken?"),
        "answer": [encrypt("Lisbon"), encrypt("Lisboa")],
        "img_1": {"bytes": image_bytes((1, 2, 3)), "path": None},
        "img_2": None,
        "video_url": "",
        "arxiv_id": "",
        "category": "geography",
        "difficulty": "hard",
        "subtask": "location",
    }
    parquet(tmp_path / "data" / "train-00000-of-00001.parquet", [row])
    monkeypatch.delenv("MMSEARCH_PLUS", raising=False)
    with pytest.raises(InputError, match="set MMSEARCH_PLUS"):
        load_benchmark("mmsearch_plus", tmp_path)
    monkeypatch.setenv("MMSEARCH_PLUS", canary)
    (q,) = load_benchmark("mmsearch_plus", tmp_path)
    all_found([q])
    assert (q.question, q.answers, q.category) == (
        "In which city was this photo taken?",
        ["Lisbon", "Lisboa"],
        "geography",
    )


# ---------------------------------------------------------------------------------------------- limit, checks, CLI


def test_limit_draws_a_fixed_stratified_sample() -> None:
    qs = [
        Question(str(i), "x.png", "?", ["a"], split="unseen_question" if i < 80 else "unseen_entity")
        for i in range(100)
    ]
    drawn = stratified_sample(qs, 10, seed=0)
    assert [q.split for q in drawn].count("unseen_question") == 8 and len(drawn) == 10
    assert drawn == stratified_sample(qs, 10, seed=0) and drawn != stratified_sample(qs, 10, seed=1)
    assert [int(q.id) for q in drawn] == sorted(int(q.id) for q in drawn) and drawn != qs[:10]
    odd = stratified_sample(qs, 5, seed=3)  # 4.0 and 1.0 places: no remainder to hand out
    assert [q.split for q in odd].count("unseen_entity") == 1
    assert stratified_sample(qs, 200) == qs


def test_eval_stops_before_any_episode_when_images_are_missing(tmp_path: Path) -> None:
    infoseek(tmp_path / "data", tmp_path / "elsewhere")  # images not where --data-dir says
    out = tmp_path / "out"
    args = ["eval", "--benchmark", "infoseek", "--data-dir", str(tmp_path / "data"), "--model", "oracle"]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--limit", "2"])
    assert result.exit_code == 1
    assert "2 of 2 images are missing" in result.output and str(tmp_path / "data") in result.output
    assert "infoseek_val_0000000" in result.output and "oven_images/NN" in result.output
    assert not (out / "trajectories.jsonl").exists()

    script = tmp_path / "script.json"
    ids = [f"infoseek_val_0000000{i}" for i in (1, 2, 3)]
    script.write_text(json.dumps({i: ["<reason>guess</reason>\n<answer>40</answer>"] for i in ids}))
    args = [*args[:-1], f"script:{script}", "--image-root", str(tmp_path / "elsewhere"), "--mode", "direct"]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--limit", "2", "--metric", "infoseek", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 2 and report["benchmark"]["evaluated"] == 2 and report["benchmark"]["questions"] == 3
    splits = {r["split"] for r in map(json.loads, (out / "trajectories.jsonl").read_text().splitlines())}
    assert splits == {"val_unseen_question", "val_unseen_entity"}  # the draw keeps both splits


def test_registry_and_the_benchmarks_command(tmp_path: Path) -> None:
    assert set(BENCHMARKS) == {
        "infoseek",
        "encyclopedic_vqa",
        "simplevqa",
        "dynvqa",
        "okvqa",
        "aokvqa",
        "mmsearch",
        "fvqa",
        "livevqa",
        "browsecomp_vl",
        "mmsearch_plus",
    }
    result = CliRunner().invoke(app, ["benchmarks", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert all(r["source"].startswith("https://") and r["files"] and r["metric"] for r in rows.values())
    assert rows["dynvqa"]["versions"][0] == "202502" and rows["infoseek"]["judge"] == "infoseek"
    with pytest.raises(InputError, match=r"infoseek_val\.jsonl.*github.com/edchengg/infoseek_eval"):
        load_benchmark("infoseek", tmp_path)
    with pytest.raises(InputError, match="no such folder"):
        load_benchmark("okvqa", tmp_path / "nope")
    with pytest.raises(ConfigError, match="known: infoseek, encyclopedic_vqa"):
        load_benchmark("vqav2", tmp_path)
    with pytest.raises(ConfigError, match="okvqa has no versions"):
        load_benchmark("okvqa", tmp_path, version="1")

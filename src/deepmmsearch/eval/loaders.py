"""Benchmark loaders: each reads a benchmark's native files from a folder and yields question records.

Images are referenced by path (they stay where the benchmark put them); images embedded in Parquet or JSON
(MMSearch, FVQA, SimpleVQA) are written once to ``DATA_DIR/_images/``. A missing file is one error that says
which file was expected and where to obtain it.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.records import Question, read_jsonl

IMAGE_EXTS = (".jpg", ".jpeg", ".JPEG", ".JPG", ".png", ".webp")


@dataclass(frozen=True)
class Benchmark:
    name: str
    load: Callable[[Path], list[Question]]
    files: str  # what the folder must hold
    source: str  # where to obtain it


def _find(data_dir: Path, patterns: Iterable[str], bench: str) -> Path:
    for pattern in patterns:
        found = sorted(data_dir.glob(pattern))
        if found:
            return found[0]
    b = BENCHMARKS[bench]
    raise InputError(
        f"{bench}: no {' or '.join(patterns)} in {data_dir}; expected {b.files}. Obtain it from {b.source}"
    )


def _image_in(data_dir: Path, stem: str, folders: Iterable[str] = ("images", "")) -> str:
    """The image file named ``stem`` under one of ``folders``, or the first candidate path when none exists yet."""
    candidates = [data_dir / folder / f"{stem}{ext}" for folder in folders for ext in IMAGE_EXTS]
    return str(next((c for c in candidates if c.is_file()), candidates[0]))


def _save_embedded(data_dir: Path, qid: str, value: Any) -> str:
    """Write an embedded image (bytes, base64 text or a Parquet image struct) to ``_images/`` and return its path."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path") or ""
    if isinstance(value, str):
        if value.startswith(("http://", "https://", "data:")):
            return value
        if Path(value).suffix.lower() in {e.lower() for e in IMAGE_EXTS}:
            return str(Path(value) if Path(value).is_absolute() else data_dir / value)
        try:
            value = base64.b64decode(value, validate=True)
        except ValueError:
            raise InputError(f"{qid}: the image field is neither a path, a URL nor base64 data") from None
    if not isinstance(value, (bytes, bytearray)) or not value:
        raise InputError(f"{qid}: no image data")
    from PIL import Image

    out = data_dir / "_images"
    out.mkdir(exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in qid)
    path = out / f"{safe}.png"
    if not path.is_file():
        Image.open(io.BytesIO(value)).convert("RGB").save(path)
    return str(path)


def _records(path: Path) -> list[dict]:
    """Rows of a JSON Lines, JSON (a list, or an object holding one) or Parquet file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if path.suffix == ".jsonl":
        return list(read_jsonl(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list)), list(data.values()))
    return [d for d in data if isinstance(d, dict)]


def _first(record: dict, *keys: str) -> Any:
    return next((record[k] for k in keys if record.get(k) not in (None, "")), None)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v not in (None, "")]
    return [str(value)]


# ---------------------------------------------------------------------------------------------- InfoSeek


def _infoseek_answer_eval(raw: Any, qtype: str) -> list[str]:
    # The official evaluation reads a numerical answer as the range of its first answer_eval item.
    if qtype == "numerical":
        item = raw[0] if isinstance(raw, list) and raw else raw
        if isinstance(item, dict):
            return [str(v) for v in (item.get("range") or [item.get("wikidata")])][:2]
    return _as_list(raw)


def load_infoseek(data_dir: Path) -> list[Question]:
    """``infoseek_val.jsonl`` (data_id, image_id, question, answer, answer_eval, data_split) joined with
    ``infoseek_val_qtype.jsonl`` (data_id, question_type); images at ``images/IMAGE_ID.jpg``."""
    annotations = _find(data_dir, ["infoseek_val.jsonl", "infoseek_test.jsonl", "infoseek_*.jsonl"], "infoseek")
    qtype_path = annotations.with_name(annotations.stem + "_qtype.jsonl")
    if not qtype_path.is_file():
        qtype_path = _find(data_dir, ["infoseek_*_qtype.jsonl"], "infoseek")
    qtypes = {str(d["data_id"]): str(d["question_type"]).lower() for d in read_jsonl(qtype_path)}
    questions = []
    for d in read_jsonl(annotations):
        qid = str(d["data_id"])
        qtype = qtypes.get(qid, "string")
        extra = {k: v for k, v in d.items() if k not in ("data_id", "question", "answer", "answer_eval", "data_split")}
        questions.append(
            Question(
                id=qid,
                image=_image_in(data_dir, str(d.get("image_id", qid))),
                question=d["question"],
                answers=_as_list(d.get("answer")),
                answer_eval=_infoseek_answer_eval(d.get("answer_eval"), qtype),
                question_type=qtype,
                split=d.get("data_split"),
                extra={**extra, "benchmark": "infoseek"},
            )
        )
    return questions


# ---------------------------------------------------------------------------------------------- Encyclopedic-VQA


def load_encyclopedic_vqa(data_dir: Path) -> list[Question]:
    """``test.csv`` (or ``val.csv``): question, answer ("|" between alternatives), dataset_image_ids ("|" between
    the up to 5 images; the first is used), question_type, dataset_name; images at ``images/ID.jpg``."""
    path = _find(data_dir, ["test.csv", "val.csv", "*.csv"], "encyclopedic_vqa")
    questions = []
    with path.open(encoding="utf-8", newline="") as f:
        for row, d in enumerate(csv.DictReader(f)):
            image_ids = [i for i in (d.get("dataset_image_ids") or "").split("|") if i]
            answers = [a.strip() for a in (d.get("answer") or "").split("|") if a.strip()]
            questions.append(
                Question(
                    id=f"evqa-{row}",
                    image=_image_in(data_dir, image_ids[0] if image_ids else str(row)),
                    question=d["question"],
                    answers=answers,
                    question_type=d.get("question_type") or None,
                    category=d.get("dataset_name") or None,
                    split=d.get("encyclopedic_vqa_split") or None,
                    extra={"benchmark": "encyclopedic_vqa", "wikipedia_url": d.get("wikipedia_url")},
                )
            )
    return questions


# ---------------------------------------------------------------------------------------------- SimpleVQA, DynVQA


def load_simplevqa(data_dir: Path) -> list[Question]:
    """SimpleVQA rows (data_id, image, question, answer, language, vqa_category, original_category); only
    English questions are kept, as in the paper. ``image`` is a path, a URL or base64 data."""
    path = _find(data_dir, ["*.jsonl", "*.json", "*.parquet"], "simplevqa")
    questions = []
    for d in _records(path):
        if str(d.get("language", "EN")).lower() not in ("en", "english"):
            continue
        qid = str(_first(d, "data_id", "id"))
        questions.append(
            Question(
                id=qid,
                image=_save_embedded(data_dir, qid, d.get("image")),
                question=d["question"],
                answers=_as_list(d.get("answer")),
                category=_first(d, "vqa_category", "original_category"),
                extra={"benchmark": "simplevqa", "atomic_question": d.get("atomic_question")},
            )
        )
    return questions


def load_dynvqa(data_dir: Path) -> list[Question]:
    """Dyn-VQA (OmniSearch) English rows: image_url (or image), question, answer (a list of acceptable answers)."""
    path = _find(data_dir, ["*en*.jsonl", "*en*.json", "*.jsonl", "*.json"], "dynvqa")
    questions = []
    for i, d in enumerate(_records(path)):
        qid = str(_first(d, "question_id", "id", "data_id") or f"dynvqa-{i}")
        answers = d.get("answer")
        if isinstance(answers, list) and answers and isinstance(answers[0], list):
            answers = [a for group in answers for a in group]  # several acceptable answer lists
        questions.append(
            Question(
                id=qid,
                image=_save_embedded(data_dir, qid, _first(d, "image_url", "image", "image_path")),
                question=d["question"],
                answers=_as_list(answers),
                category=_first(d, "category", "domain"),
                extra={"benchmark": "dynvqa"},
            )
        )
    return questions


# ---------------------------------------------------------------------------------------------- OK-VQA, A-OKVQA


def load_okvqa(data_dir: Path) -> list[Question]:
    """``OpenEnded_mscoco_val2014_questions.json`` + ``mscoco_val2014_annotations.json`` (VQA format: 10 answers per
    question); images at ``val2014/COCO_val2014_%012d.jpg``."""
    q_path = _find(data_dir, ["OpenEnded_mscoco_val2014_questions.json", "*questions*.json"], "okvqa")
    a_path = _find(data_dir, ["mscoco_val2014_annotations.json", "*annotations*.json"], "okvqa")
    questions_json = json.loads(q_path.read_text(encoding="utf-8"))["questions"]
    annotations = {a["question_id"]: a for a in json.loads(a_path.read_text(encoding="utf-8"))["annotations"]}
    questions = []
    for q in questions_json:
        a = annotations.get(q["question_id"], {})
        image = data_dir / "val2014" / f"COCO_val2014_{int(q['image_id']):012d}.jpg"
        questions.append(
            Question(
                id=str(q["question_id"]),
                image=str(image),
                question=q["question"],
                answers=[str(x["answer"]) for x in a.get("answers", [])],
                category=a.get("question_type"),
                extra={"benchmark": "okvqa", "answer_type": a.get("answer_type")},
            )
        )
    return questions


def load_aokvqa(data_dir: Path) -> list[Question]:
    """``aokvqa_v1p0_val.json`` (question_id, image_id, question, direct_answers (10), choices, split); images at
    ``{split}2017/%012d.jpg`` (COCO 2017)."""
    path = _find(data_dir, ["aokvqa_v1p0_val.json", "aokvqa_*.json"], "aokvqa")
    questions = []
    for d in json.loads(path.read_text(encoding="utf-8")):
        split = d.get("split", "val")
        questions.append(
            Question(
                id=str(d["question_id"]),
                image=str(data_dir / f"{split}2017" / f"{int(d['image_id']):012d}.jpg"),
                question=d["question"],
                answers=[str(a) for a in d.get("direct_answers", [])],
                split=split,
                extra={
                    "benchmark": "aokvqa",
                    "choices": d.get("choices"),
                    "correct_choice_idx": d.get("correct_choice_idx"),
                },
            )
        )
    return questions


# ---------------------------------------------------------------------------------------------- MMSearch, FVQA


def load_mmsearch(data_dir: Path) -> list[Question]:
    """MMSearch ``end2end.parquet``: sample_id, query, query_image, gt_answer, alternative_gt_answers, area,
    subfield. Questions without a query image (text-only queries) are skipped: ours are image questions."""
    path = _find(data_dir, ["end2end.parquet", "*.parquet", "*.jsonl", "*.json"], "mmsearch")
    questions = []
    for d in _records(path):
        qid = str(d["sample_id"])
        image = d.get("query_image")
        if image is None or (isinstance(image, dict) and not (image.get("bytes") or image.get("path"))):
            continue
        questions.append(
            Question(
                id=qid,
                image=_save_embedded(data_dir, qid, image),
                question=d["query"],
                answers=_as_list(d.get("gt_answer")) + _as_list(d.get("alternative_gt_answers")),
                category=d.get("area"),
                extra={"benchmark": "mmsearch", "subfield": d.get("subfield"), "timestamp": d.get("timestamp")},
            )
        )
    return questions


def load_fvqa(data_dir: Path) -> list[Question]:
    """FVQA of MMSearch-R1 (``fvqa_test.parquet``): an id, the image, the question and its answer(s); a
    search-behaviour label, when present, becomes ``category``."""
    path = _find(data_dir, ["fvqa_test.parquet", "fvqa_*.parquet", "*.parquet", "*.jsonl"], "fvqa")
    questions = []
    for i, d in enumerate(_records(path)):
        qid = str(_first(d, "data_id", "id", "question_id") or f"fvqa-{i}")
        image = _first(d, "image", "images", "image_url", "image_urls")
        if isinstance(image, list):
            image = image[0] if image else None
        questions.append(
            Question(
                id=qid,
                image=_save_embedded(data_dir, qid, image),
                question=str(_first(d, "question", "prompt", "query")),
                answers=_as_list(_first(d, "answer", "answers", "gt_answer")),
                category=_first(d, "search_type", "category", "label"),
                extra={"benchmark": "fvqa"},
            )
        )
    return questions


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "infoseek",
            load_infoseek,
            "infoseek_val.jsonl, infoseek_val_qtype.jsonl and images/",
            "https://github.com/open-vision-language/infoseek (annotations and question types; images from OVEN)",
        ),
        Benchmark(
            "encyclopedic_vqa",
            load_encyclopedic_vqa,
            "test.csv (or val.csv) and images/",
            "https://github.com/google-research/google-research/tree/master/encyclopedic_vqa",
        ),
        Benchmark(
            "simplevqa",
            load_simplevqa,
            "the SimpleVQA JSON/JSONL/Parquet file",
            "https://huggingface.co/datasets/m-a-p/SimpleVQA",
        ),
        Benchmark(
            "dynvqa", load_dynvqa, "the Dyn-VQA English JSON/JSONL file", "https://github.com/Alibaba-NLP/OmniSearch"
        ),
        Benchmark(
            "okvqa",
            load_okvqa,
            "OpenEnded_mscoco_val2014_questions.json, mscoco_val2014_annotations.json and val2014/",
            "https://okvqa.allenai.org/download.html (images: COCO val2014)",
        ),
        Benchmark(
            "aokvqa",
            load_aokvqa,
            "aokvqa_v1p0_val.json and val2017/",
            "https://github.com/allenai/aokvqa (images: COCO 2017)",
        ),
        Benchmark("mmsearch", load_mmsearch, "end2end.parquet", "https://huggingface.co/datasets/CaraJ/MMSearch"),
        Benchmark("fvqa", load_fvqa, "fvqa_test.parquet", "https://huggingface.co/datasets/lmms-lab/FVQA"),
    )
}


def load_benchmark(name: str, data_dir: str | Path) -> list[Question]:
    """The questions of benchmark ``name`` read from its native files in ``data_dir``."""
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    path = Path(data_dir)
    if not path.is_dir():
        b = BENCHMARKS[name]
        raise InputError(f"{name}: no such folder {path}; it should hold {b.files}. Obtain it from {b.source}")
    try:
        return BENCHMARKS[name].load(path)
    except KeyError as e:
        raise InputError(f"{name}: a record in {path} lacks the field {e}; is this the native {name} format?") from None

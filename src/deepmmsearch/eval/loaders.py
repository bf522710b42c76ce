"""Benchmark loaders: each reads a benchmark's files as its official release lays them out and yields question records.

Images are referenced by path and stay where the benchmark's download put them; ``image_roots`` (``--image-root``)
name other folders that hold them, searched before the data folder. Images embedded in Parquet or JSON (MMSearch,
FVQA, SimpleVQA, MMSearch-Plus) are written once to ``DATA_DIR/_images/``. A benchmark with versions or languages
reads the newest version and the paper's language unless ``version`` / ``split`` say otherwise; questions without a
gold answer are left out and counted in ``BenchmarkSet.left_out``. ``BENCHMARKS`` is the registry ``dmms benchmarks``
prints: where to download each benchmark, the layout expected and the metric its authors used.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.records import Question, read_jsonl

IMAGE_EXTS = (".jpg", ".jpeg", ".JPEG", ".JPG", ".png", ".PNG", ".webp", ".gif")
NO_GOLD = "no gold answer"
_REMOTE = ("http://", "https://", "data:")


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: how to read it, where to get it, the layout expected and the metric its authors used."""

    name: str
    load: Callable[[_Reader], list[Question]]
    files: str  # the folder layout expected
    source: str  # where to download it
    metric: str = ""  # the metric the benchmark's paper / official script uses
    judge: str = "llm"  # the ``--metric`` closest to it
    images: str = ""  # where its images are expected, relative to an image root
    splits: tuple[str, ...] = ()  # ``--split`` choices; the first is the default
    versions: tuple[str, ...] = ()  # ``--version`` choices known at release, newest first


@dataclass
class BenchmarkSet:
    """The questions read from a benchmark's files, with what was chosen and what was left out on the way."""

    name: str
    questions: list[Question]
    data_dir: str
    image_roots: list[str]
    files: list[str] = field(default_factory=list)  # the annotation files read
    split: str | None = None
    version: str | None = None
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> number of questions

    def where(self) -> str:
        """Where the images were looked for, for error messages."""
        b = BENCHMARKS[self.name]
        return f"{', '.join(self.image_roots)}" + (f" as {b.images}" if b.images else "")

    def summary(self) -> dict[str, Any]:
        """The record of this set that goes into the evaluation report."""
        return {
            "name": self.name,
            "split": self.split,
            "version": self.version,
            "files": self.files,
            "questions": len(self.questions),
            "left_out": dict(self.left_out),
            "metric": BENCHMARKS[self.name].metric,
        }


class _Reader:
    """What a loader needs: the data folder, the image roots, the split and version asked for, and a tally of what
    it leaves out. Directory listings are cached: a benchmark has tens of thousands of images in a few folders."""

    def __init__(self, name: str, data_dir: Path, image_roots: Sequence[Path], split: str | None, version: str | None):
        self.name, self.data_dir = name, data_dir
        self.roots = [*image_roots, data_dir]
        self.split, self.version = split, version
        self.files: list[str] = []
        self.left_out: Counter[str] = Counter()
        self._listings: dict[Path, dict[str, str]] = {}

    @property
    def bench(self) -> Benchmark:
        return BENCHMARKS[self.name]

    def choose_split(self) -> str:
        """The split asked for, or the benchmark's default; an unknown one is an error listing the choices."""
        splits = self.bench.splits
        split = (self.split or splits[0]).lower()
        if split not in splits:
            raise ConfigError(f"{self.name}: unknown split {self.split!r}; known: {', '.join(splits)}")
        return split

    def find(self, *patterns: str) -> Path:
        """The first file matching one of ``patterns`` in the data folder or one folder below it."""
        for pattern in patterns:
            found = sorted(self.data_dir.glob(pattern)) or sorted(self.data_dir.glob(f"*/{pattern}"))
            if found:
                self.files.append(str(found[0]))
                return found[0]
        b = self.bench
        raise InputError(
            f"{self.name}: no {' or '.join(patterns)} in {self.data_dir}; expected {b.files}. Obtain it from {b.source}"
        )

    def leave_out(self, reason: str) -> None:
        self.left_out[reason] += 1

    def _listing(self, folder: Path) -> dict[str, str]:
        if folder not in self._listings:
            try:
                names = [e.name for e in os.scandir(folder) if e.is_file()]
            except OSError:
                names = []
            # Extensions vary in case (.jpg, .JPEG, ...): index every file by its stem.
            self._listings[folder] = {os.path.splitext(n)[0]: n for n in sorted(names, reverse=True)}
        return self._listings[folder]

    def image_by_stem(self, folders: Iterable[str], stem: str) -> str:
        """The image named ``stem`` (any extension) in one of ``folders`` under an image root; when none exists,
        the path it was first expected at, so the image check can name it."""
        folders = list(folders)
        for root in self.roots:
            for folder in folders:
                name = self._listing(root / folder).get(stem)
                if name:
                    return str(root / folder / name)
        return str(self.roots[0] / folders[0] / f"{stem}.jpg")

    def image_at(self, *relative: str) -> str:
        """The first of the ``relative`` paths that exists under an image root, else the first one under the first."""
        for root in self.roots:
            for rel in relative:
                if (root / rel).is_file():
                    return str(root / rel)
        return str(self.roots[0] / relative[0])


def _save_embedded(data_dir: Path, qid: str, value: Any) -> str:
    """Write an embedded image (bytes, base64 text or a Parquet image struct) to ``_images/`` and return its path."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path") or ""
    if isinstance(value, str):
        if value.startswith(_REMOTE):
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
    """Non-empty answers as strings; nested lists (several acceptable answer lists) are flattened, repeats kept."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _as_list(v)]
    text = str(value).strip()
    return [text] if text else []


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


# ---------------------------------------------------------------------------------------------- InfoSeek


def _infoseek_answer_eval(raw: Any, qtype: str) -> list[str]:
    # The official script reads a numerical answer_eval as the range of its first item, list-wrapped or bare.
    if qtype == "numerical":
        item = raw[0] if isinstance(raw, list) and raw else raw
        if isinstance(item, dict):
            return [str(v) for v in (item.get("range") or [item.get("wikidata")]) if v is not None][:2]
    return _as_list(raw)


def _infoseek_images(r: _Reader) -> dict[str, str]:
    """``id2image.jsonl`` (image_id -> image_path), which the official starter code reads, when the folder has one."""
    for root in r.roots:
        path = root / "id2image.jsonl"
        if path.is_file():
            return {str(d["image_id"]): str(root / d["image_path"]) for d in read_jsonl(path)}
    return {}


def load_infoseek(r: _Reader) -> list[Question]:
    """``infoseek_{split}.jsonl`` (data_id, image_id, question, answer, answer_eval, data_split) joined with
    ``infoseek_{split}_qtype.jsonl`` (data_id, question_type) from edchengg/infoseek_eval; OVEN images at
    ``oven_images/NN/oven_XXXXXXXX.<ext>`` (NN: the id's first two digits), as the OVEN download scripts shard them."""
    split = r.choose_split()
    annotations = r.find(f"infoseek_{split}.jsonl")
    qtype_path = annotations.with_name(f"infoseek_{split}_qtype.jsonl")
    qtypes: dict[str, str] = {}
    if qtype_path.is_file():
        r.files.append(str(qtype_path))
        qtypes = {str(d["data_id"]): str(d["question_type"]).lower() for d in read_jsonl(qtype_path)}
    id2image = _infoseek_images(r)
    questions = []
    for d in read_jsonl(annotations):
        qid = str(d["data_id"])
        if d.get("answer") in (None, [], "") and d.get("answer_eval") in (None, [], ""):
            r.leave_out(NO_GOLD)  # infoseek_test.jsonl and infoseek_human.jsonl carry no answers
            continue
        if qid not in qtypes:
            raise InputError(
                f"infoseek: {qid} has no question type; put infoseek_{split}_qtype.jsonl (from "
                "https://github.com/edchengg/infoseek_eval, infoseek_data/) next to the annotations"
            )
        qtype = qtypes[qid]
        image_id = str(d.get("image_id", qid))
        shard = image_id.split("_")[-1][:2]
        image = id2image.get(image_id) or r.image_by_stem(
            [f"oven_images/{shard}", f"infoseek_images/{shard}", "images", ""], image_id
        )
        extra = {k: v for k, v in d.items() if k not in ("data_id", "question", "answer", "answer_eval", "data_split")}
        questions.append(
            Question(
                id=qid,
                image=image,
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

_INAT_DIRS = ("inaturalist", "inat2021", "")
_GLDV2_DIRS = ("landmarks", "gldv2", "")
_GLDV2_PARTS = ("train", "index", "test")


def _inat_index(r: _Reader, needed: set[str]) -> dict[str, str]:
    """The paths of the ``needed`` iNaturalist 2021 image ids, from an ``*id2name*.json`` id -> file map or the
    competition's annotation json (COCO format: ``images[].id``, ``images[].file_name`` relative to the json's
    folder). The smaller files are read first and reading stops once every id is found: train.json is large."""
    index: dict[str, str] = {}
    folders = [root / sub for root in r.roots for sub in _INAT_DIRS if (root / sub).is_dir()]
    for folder in folders:
        for path in sorted(folder.glob("*id2name*.json")):
            mapping = json.loads(path.read_text(encoding="utf-8"))
            index.update({str(k): str(folder / v) for k, v in mapping.items() if str(k) in needed})
    for name in ("val.json", "public_test.json", "train_mini.json", "train.json"):
        for folder in folders:
            if needed <= index.keys():
                return index
            if (folder / name).is_file():
                images = json.loads((folder / name).read_text(encoding="utf-8")).get("images", [])
                index.update({str(i["id"]): str(folder / i["file_name"]) for i in images if str(i["id"]) in needed})
    return index


def _evqa_answers(raw: str) -> list[str]:
    """Alternatives are separated by ``|``; a multi_answer alternative keeps its ``&&``-joined parts as one string,
    which the judges split (a prediction must name the parts of one alternative)."""
    alternatives = [a.strip() for a in (raw or "").split("|")]
    return [a for a in alternatives if a.strip("& ")]


def load_encyclopedic_vqa(r: _Reader) -> list[Question]:
    """``{split}.csv``: question, answer, dataset_image_ids ("|" between up to 5 images; the first is used),
    dataset_name (inaturalist or landmarks), question_type, wikipedia_url, encyclopedic_vqa_split. Google Landmarks v2
    images at ``landmarks/train/a/b/c/abc....jpg``; iNaturalist 2021 images located through its annotation json
    (``inaturalist/train.json``, ``inaturalist/val.json``)."""
    split = r.choose_split()
    path = r.find(f"{split}.csv")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))

    def first_image(row: int, d: dict) -> tuple[list[str], str]:
        ids = [i.strip() for i in (d.get("dataset_image_ids") or "").split("|") if i.strip()]
        return ids, ids[0] if ids else str(row)

    def is_inat(d: dict) -> bool:
        return (d.get("dataset_name") or "").lower().startswith("inat")

    needed = {first_image(row, d)[1] for row, d in enumerate(rows) if is_inat(d)}
    inat = _inat_index(r, needed) if needed else {}
    questions = []
    for row, d in enumerate(rows):
        qtype = d.get("question_type") or None
        answers = _evqa_answers(d.get("answer") or "")
        if not answers:
            r.leave_out(NO_GOLD)
            continue
        image_ids, image_id = first_image(row, d)
        if is_inat(d):
            image = inat.get(image_id) or str(r.roots[0] / _INAT_DIRS[0] / f"{image_id}.jpg")
        else:
            # GLDv2 shards each image by the first three characters of its id: train/a/b/c/abc....jpg
            folders = [str(Path(g, part, *image_id[:3])) for g in _GLDV2_DIRS for part in _GLDV2_PARTS]
            image = r.image_by_stem(folders, image_id)
        extra: dict[str, Any] = {
            "benchmark": "encyclopedic_vqa",
            "wikipedia_url": d.get("wikipedia_url"),
            "dataset_image_ids": image_ids,
        }
        questions.append(
            Question(
                id=f"evqa-{split}-{row}",
                image=image,
                question=d["question"],
                answers=answers,
                question_type=qtype,
                category=d.get("dataset_name") or None,
                split=d.get("encyclopedic_vqa_split") or split,
                extra=extra,
            )
        )
    return questions


# ---------------------------------------------------------------------------------------------- SimpleVQA, Dyn-VQA


def load_simplevqa(r: _Reader) -> list[Question]:
    """SimpleVQA rows (data_id, image, question, answer, language, vqa_category, original_category, atomic_question):
    ``test.parquet`` of the dataset repository, else its json release. English by default, as in the paper."""
    split = r.choose_split()
    path = r.find("test.parquet", "data/test-*.parquet", "*.parquet", "SimpleVQA*.json", "*.jsonl", "*.json")
    questions = []
    for d in _records(path):
        language = str(d.get("language", "EN")).lower()
        if split != "all" and language not in ({"en", "english"} if split == "en" else {"cn", "zh", "chinese"}):
            continue
        qid = str(_first(d, "data_id", "id"))
        answers = _as_list(d.get("answer"))
        if not answers:
            r.leave_out(NO_GOLD)
            continue
        questions.append(
            Question(
                id=qid,
                image=_save_embedded(r.data_dir, qid, d.get("image")),
                question=d["question"],
                answers=answers,
                category=_first(d, "vqa_category", "original_category"),
                split=language,
                extra={"benchmark": "simplevqa", "atomic_question": d.get("atomic_question")},
            )
        )
    return questions


_DYN_NAME = re.compile(r"DynVQA_(en|zh)(?:\.(\d{6}))?\.jsonl$")


def load_dynvqa(r: _Reader) -> list[Question]:
    """Dyn-VQA (OmniSearch ``dataset/DynVQA_{en,zh}/DynVQA_{lang}.{YYYYMM}.jsonl``): image_url, question, question_id,
    answer (a list, possibly of lists; null in some questions of some versions). The newest version by default."""
    language = r.choose_split()
    files: dict[str, Path] = {}
    for path in sorted(r.data_dir.rglob("DynVQA_*.jsonl")):
        m = _DYN_NAME.search(path.name)
        if m and m.group(1) == language:
            files.setdefault(m.group(2) or "unversioned", path)
    if not files:
        b = r.bench
        raise InputError(
            f"dynvqa: no DynVQA_{language}.*.jsonl under {r.data_dir}; expected {b.files}. Obtain it from {b.source}"
        )
    versions = sorted((v for v in files if v != "unversioned"), reverse=True) or ["unversioned"]
    version = r.version or versions[0]
    if version not in files:
        raise ConfigError(f"dynvqa: no version {version!r} in {r.data_dir}; found: {', '.join(versions)}")
    r.version = version
    r.files.append(str(files[version]))
    questions = []
    for i, d in enumerate(read_jsonl(files[version])):
        qid = str(_first(d, "question_id", "id") or f"dynvqa-{i}")
        answers = _unique(_as_list(d.get("answer")))
        if not answers:
            r.leave_out(NO_GOLD)
            continue
        url = str(_first(d, "image_url", "image") or "")
        # A local copy (named as the URL's last part) wins over the URL, which may have moved since release.
        local = r.image_at(f"images/{url.rsplit('/', 1)[-1]}", url.rsplit("/", 1)[-1]) if url else ""
        questions.append(
            Question(
                id=qid,
                image=local if local and Path(local).is_file() else url,
                question=d["question"],
                answers=answers,
                split=language,
                extra={
                    "benchmark": "dynvqa",
                    "version": version,
                    "golden_query": _first(d, "golden_query", "gloden_query"),
                },
            )
        )
    return questions


# ---------------------------------------------------------------------------------------------- OK-VQA, A-OKVQA


def load_okvqa(r: _Reader) -> list[Question]:
    """``OpenEnded_mscoco_val2014_questions.json`` + ``mscoco_val2014_annotations.json`` (VQA format: 10 answers per
    question); images at ``val2014/COCO_val2014_%012d.jpg``."""
    q_path = r.find("OpenEnded_mscoco_val2014_questions.json", "*questions*.json")
    a_path = r.find("mscoco_val2014_annotations.json", "*annotations*.json")
    questions_json = json.loads(q_path.read_text(encoding="utf-8"))["questions"]
    annotations = {a["question_id"]: a for a in json.loads(a_path.read_text(encoding="utf-8"))["annotations"]}
    questions = []
    for q in questions_json:
        a = annotations.get(q["question_id"], {})
        answers = [str(x["answer"]) for x in a.get("answers", [])]
        if not answers:
            r.leave_out(NO_GOLD)
            continue
        questions.append(
            Question(
                id=str(q["question_id"]),
                image=r.image_at(f"val2014/COCO_val2014_{int(q['image_id']):012d}.jpg"),
                question=q["question"],
                answers=answers,
                category=a.get("question_type"),
                extra={"benchmark": "okvqa", "answer_type": a.get("answer_type")},
            )
        )
    return questions


def load_aokvqa(r: _Reader) -> list[Question]:
    """``aokvqa_v1p0_{split}.json`` (question_id, image_id, question, direct_answers (10), choices,
    correct_choice_idx, difficult_direct_answer); COCO 2017 images at ``{split}2017/%012d.jpg``. Questions marked
    difficult_direct_answer are left out, as the official direct-answer evaluation leaves them out."""
    split = r.choose_split()
    path = r.find(f"aokvqa_v1p0_{split}.json", "aokvqa_*.json")
    questions = []
    for d in json.loads(path.read_text(encoding="utf-8")):
        answers = [str(a) for a in d.get("direct_answers") or []]
        if not answers:
            r.leave_out(NO_GOLD)  # the test split carries no answers
            continue
        if d.get("difficult_direct_answer") is True:
            r.leave_out("difficult_direct_answer")
            continue
        image_split = d.get("split", split)
        questions.append(
            Question(
                id=str(d["question_id"]),
                image=r.image_at(f"{image_split}2017/{int(d['image_id']):012d}.jpg"),
                question=d["question"],
                answers=answers,
                split=image_split,
                extra={
                    "benchmark": "aokvqa",
                    "choices": d.get("choices"),
                    "correct_choice_idx": d.get("correct_choice_idx"),
                    "difficult_direct_answer": d.get("difficult_direct_answer"),
                },
            )
        )
    return questions


# ---------------------------------------------------------------------------------------------- MMSearch, FVQA


def load_mmsearch(r: _Reader) -> list[Question]:
    """MMSearch ``end2end.parquet`` (config end2end): sample_id, query, query_image, gt_answer,
    alternative_gt_answers, area, subfield. Questions without a query image (text-only) are left out: ours are image
    questions."""
    path = r.find("end2end.parquet", "end2end/*.parquet", "*end2end*.parquet")
    questions = []
    for d in _records(path):
        qid = str(d["sample_id"])
        image = d.get("query_image")
        if image is None or (isinstance(image, dict) and not (image.get("bytes") or image.get("path"))):
            r.leave_out("text-only query (no image)")
            continue
        answers = _unique(_as_list(d.get("gt_answer")) + _as_list(d.get("alternative_gt_answers")))
        if not answers:
            r.leave_out(NO_GOLD)
            continue
        questions.append(
            Question(
                id=qid,
                image=_save_embedded(r.data_dir, qid, image),
                question=d["query"],
                answers=answers,
                category=d.get("area"),
                extra={"benchmark": "mmsearch", "subfield": d.get("subfield"), "timestamp": d.get("timestamp")},
            )
        )
    return questions


def _prompt_text(prompt: Any) -> str:
    """The user's words in a veRL ``prompt``: a list of chat messages, possibly serialized as JSON."""
    if isinstance(prompt, str):
        try:
            prompt = json.loads(prompt)
        except json.JSONDecodeError:
            return prompt.replace("<image>", "").strip()
    if isinstance(prompt, dict):
        prompt = [prompt]
    users = [m for m in prompt or [] if isinstance(m, dict) and m.get("role", "user") == "user"]
    content = users[-1].get("content", "") if users else ""
    if isinstance(content, list):  # multimodal content parts
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content).replace("<image>", "").strip()


def _fvqa_golds(reward_model: Any) -> list[str]:
    """``reward_model.ground_truth`` plus ``reward_model.candidate_answers`` (a JSON string holding a list)."""
    if isinstance(reward_model, str):
        reward_model = json.loads(reward_model)
    reward_model = reward_model or {}
    candidates = reward_model.get("candidate_answers")
    if isinstance(candidates, str):
        try:
            candidates = json.loads(candidates) if candidates.strip() else []
        except json.JSONDecodeError:
            candidates = [candidates]
    return _unique(_as_list(reward_model.get("ground_truth")) + _as_list(candidates))


def load_fvqa(r: _Reader) -> list[Question]:
    """FVQA of MMSearch-R1 (``fvqa_{split}.parquet``), a veRL dataset: prompt (chat messages holding the question),
    images (a list of image structs), reward_model (ground_truth, candidate_answers as a JSON string), data_id,
    category (search_required / search_free)."""
    split = r.choose_split()
    path = r.find(f"fvqa_{split}.parquet")
    questions = []
    for i, d in enumerate(_records(path)):
        qid = str(_first(d, "data_id", "id") or f"fvqa-{i}")
        answers = _fvqa_golds(d.get("reward_model"))
        if not answers:
            r.leave_out(NO_GOLD)
            continue
        images = d.get("images") or d.get("image_urls") or []
        image = images[0] if isinstance(images, list) and images else images
        if not image:
            r.leave_out("no image")
            continue
        category = d.get("category")
        questions.append(
            Question(
                id=qid,
                image=_save_embedded(r.data_dir, qid, image),
                question=_prompt_text(d.get("prompt")),
                answers=answers,
                category=category,
                requires_search={"search_required": True, "search_free": False}.get(str(category)),
                split=split,
                extra={"benchmark": "fvqa", "data_source": d.get("data_source")},
            )
        )
    return questions


# ---------------------------------------------------------------------------------------------- LiveVQA, BrowseComp-VL

_LIVEVQA_SUBSETS = {
    "news": ("News", "News_imgs"),
    "paper": ("Paper", "Paper_images"),
    "video": ("Video", "Video_images"),
}


def load_livevqa(r: _Reader) -> list[Question]:
    """LiveVQA (``liveVQA_benchmarks/``): ``{News,Paper,Video}/benchmark.json``, each item holding ``level1_qa`` and
    ``level2_qa`` (question, question_type, options, Ground_Truth_List, img_path); images in ``News/News_imgs/``,
    ``Paper/Paper_images/``, ``Video/Video_images/``. Each level is one question, asked open-ended as the official
    evaluation asks it."""
    split = r.choose_split()
    subsets = list(_LIVEVQA_SUBSETS) if split == "all" else [split]
    present = [s for s in subsets if (r.data_dir / _LIVEVQA_SUBSETS[s][0] / "benchmark.json").is_file()]
    if not present:
        r.find(*(f"{_LIVEVQA_SUBSETS[s][0]}/benchmark.json" for s in subsets))  # raises the missing-file error
    questions = []
    for subset in present:
        folder, image_dir = _LIVEVQA_SUBSETS[subset]
        path = r.data_dir / folder / "benchmark.json"
        r.files.append(str(path))
        for item in json.loads(path.read_text(encoding="utf-8")):
            for level in ("level1", "level2"):
                qa = item.get(f"{level}_qa")
                if not qa:
                    continue
                answers = _unique(_as_list(qa.get("Ground_Truth_List")))
                if not answers:
                    r.leave_out(NO_GOLD)
                    continue
                image = str(qa.get("img_path") or item.get("img_path") or "")
                questions.append(
                    Question(
                        id=f"{item['id']}-{level}",
                        image=r.image_at(f"{folder}/{image_dir}/{image}", f"{folder}/{image}"),
                        question=qa["question"],
                        answers=answers,
                        question_type=qa.get("question_type"),
                        category=level,
                        split=subset,
                        extra={
                            "benchmark": "livevqa",
                            "options": qa.get("options"),
                            "source": item.get("source"),
                            "time": item.get("time"),
                            "img_url": qa.get("img_url"),
                        },
                    )
                )
    return questions


def load_browsecomp_vl(r: _Reader) -> list[Question]:
    """BrowseComp-VL (WebWatcher ``benchmark/bc_vl_level1.jsonl`` and ``bc_vl_level2.jsonl``): question, image_path
    (``image/level1/level1_1.jpg``), answers, domain. Images where their relative paths say, under an image root or
    its ``images/`` folder (where WebWatcher's download script puts them)."""
    split = r.choose_split()
    levels = ["level1", "level2"] if split == "all" else [split]
    questions = []
    for level in levels:
        path = r.find(f"bc_vl_{level}.jsonl")
        beside = path.parent.relative_to(r.data_dir)
        for i, d in enumerate(read_jsonl(path)):
            image = str(d.get("image_path") or "")
            answers = _unique(_as_list(d.get("answers", d.get("answer"))))
            if not answers:
                r.leave_out(NO_GOLD)
                continue
            stem = Path(image).stem or f"{level}_{i + 1}"
            questions.append(
                Question(
                    id=f"bc_vl_{stem}",
                    image=r.image_at(image, f"images/{image}", str(beside / image), str(beside / "images" / image)),
                    question=d["question"],
                    answers=answers,
                    category=d.get("domain"),
                    split=level,
                    extra={"benchmark": "browsecomp_vl"},
                )
            )
    return questions


# ---------------------------------------------------------------------------------------------- MMSearch-Plus


def _mmsearch_plus_decrypt(text: str, canary: str) -> str:
    # The release XORs each text field's UTF-8 bytes with SHA-256(canary) repeated, then base64-encodes it.
    data = base64.b64decode(text)
    key = hashlib.sha256(canary.encode()).digest()
    return bytes(b ^ key[i % len(key)] for i, b in enumerate(data)).decode("utf-8")


def _is_encrypted(text: str) -> bool:
    # A question in clear has spaces; base64 never does.
    try:
        base64.b64decode(text, validate=True)
    except ValueError:
        return False
    return bool(text)


def _mmsearch_plus_rows(r: _Reader) -> list[dict]:
    parquet = sorted(r.data_dir.glob("data/*.parquet")) or sorted(r.data_dir.glob("*.parquet"))
    if parquet:
        r.files.extend(str(p) for p in parquet)
        return [row for p in parquet for row in _records(p)]
    arrow = sorted(r.data_dir.glob("data-*.arrow"))  # a ``save_to_disk`` folder, as decrypt_after_load.py writes
    if arrow:
        import pyarrow as pa

        r.files.extend(str(p) for p in arrow)
        rows = []
        for p in arrow:
            with pa.memory_map(str(p)) as source:
                rows += pa.ipc.open_stream(source).read_all().to_pylist()
        return rows
    r.find("data/train-*.parquet")  # raises the missing-file error
    return []


def load_mmsearch_plus(r: _Reader) -> list[Question]:
    """MMSearch-Plus (``Cie1/MMSearch-Plus``, split train): question, answer (a list), img_1 ... img_5, category,
    difficulty, subtask, area, subfield, video_url, arxiv_id. Text fields are encrypted in the release; they are
    decrypted with the canary string in ``MMSEARCH_PLUS``, as the official decrypt_after_load.py does. The first image
    is the question's image."""
    rows = _mmsearch_plus_rows(r)
    canary = os.environ.get("MMSEARCH_PLUS", "")
    questions = []
    for i, d in enumerate(rows):
        qid = str(_first(d, "id", "question_id", "sample_id") or f"mmsearch_plus-{i}")
        text, answers = str(d.get("question") or ""), _as_list(d.get("answer"))
        if _is_encrypted(text):
            if not canary:
                raise InputError(
                    "mmsearch_plus: the questions are encrypted; set MMSEARCH_PLUS to the canary string, as "
                    "https://github.com/mmsearch-plus/MMSearch-Plus (decrypt_after_load.py) describes"
                )
            text = _mmsearch_plus_decrypt(text, canary)
            answers = [_mmsearch_plus_decrypt(a, canary) for a in answers]
        answers = _unique(answers)
        images = [d[k] for k in sorted(d) if re.fullmatch(r"img_\d+", k) and d[k]]
        if not answers:
            r.leave_out(NO_GOLD)
            continue
        if not images:
            r.leave_out("no image")
            continue
        questions.append(
            Question(
                id=qid,
                image=_save_embedded(r.data_dir, qid, images[0]),
                question=text,
                answers=answers,
                category=_first(d, "category", "area"),
                question_type=d.get("difficulty"),
                extra={
                    "benchmark": "mmsearch_plus",
                    "images": len(images),
                    "subtask": d.get("subtask"),
                    "subfield": d.get("subfield"),
                },
            )
        )
    return questions


# ---------------------------------------------------------------------------------------------- registry

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "infoseek",
            load_infoseek,
            "infoseek_val.jsonl and infoseek_val_qtype.jsonl (in the folder or infoseek_data/), OVEN images",
            "https://github.com/edchengg/infoseek_eval (annotations, question types) and "
            "https://github.com/edchengg/oven_eval (OVEN image snapshot)",
            metric="InfoSeek accuracy: exact match over answer_eval (strings, time), range match (numbers); the "
            "score is the harmonic mean of the unseen-question and unseen-entity splits",
            judge="infoseek",
            images="oven_images/NN/oven_XXXXXXXX.<ext>",
            splits=("val", "test", "human"),
        ),
        Benchmark(
            "encyclopedic_vqa",
            load_encyclopedic_vqa,
            "test.csv (val.csv, train.csv); images: landmarks/ (Google Landmarks v2) and inaturalist/ (iNaturalist "
            "2021 with train.json, val.json)",
            "https://github.com/google-research/google-research/tree/master/encyclopedic_vqa",
            metric="exact match (multi_answer: the parts, IoU >= 0.5), else BEM answer equivalence",
            judge="encyclopedic_vqa",
            images="landmarks/train/a/b/c/<id>.jpg and inaturalist/<file_name from train.json or val.json>",
            splits=("test", "val", "train"),
        ),
        Benchmark(
            "simplevqa",
            load_simplevqa,
            "test.parquet of the dataset repository (or its SimpleVQA json)",
            "https://huggingface.co/datasets/m-a-p/SimpleVQA",
            metric="an LLM grades each answer correct / incorrect / not attempted; accuracy is the share correct",
            judge="llm",
            images="embedded in the parquet",
            splits=("en", "cn", "all"),
        ),
        Benchmark(
            "dynvqa",
            load_dynvqa,
            "DynVQA_en/DynVQA_en.YYYYMM.jsonl (the repository's dataset/ folder)",
            "https://github.com/Alibaba-NLP/OmniSearch",
            metric="token F1-recall of the answer against the gold answers (OmniSearch evaluate.py)",
            judge="llm",
            images="image_url (a local copy at images/<name> is used when present)",
            splits=("en", "zh"),
            versions=("202502", "202412", "202410", "202408", "202406"),
        ),
        Benchmark(
            "okvqa",
            load_okvqa,
            "OpenEnded_mscoco_val2014_questions.json, mscoco_val2014_annotations.json; COCO val2014 images",
            "https://okvqa.allenai.org/download.html (images: COCO val2014)",
            metric="VQA accuracy over the 10 annotator answers (GT-Vision-Lab/VQA vqaEval.py)",
            judge="vqa",
            images="val2014/COCO_val2014_%012d.jpg",
        ),
        Benchmark(
            "aokvqa",
            load_aokvqa,
            "aokvqa_v1p0_val.json; COCO 2017 images",
            "https://github.com/allenai/aokvqa (images: COCO 2017)",
            metric="direct-answer accuracy min(1, matches / 3) over direct_answers, difficult_direct_answer "
            "questions left out (evaluation/eval_predictions.py)",
            judge="aokvqa",
            images="{split}2017/%012d.jpg",
            splits=("val", "test", "train"),
        ),
        Benchmark(
            "mmsearch",
            load_mmsearch,
            "end2end.parquet (config end2end)",
            "https://huggingface.co/datasets/CaraJ/MMSearch",
            metric="end-to-end answer F1 against gt_answer and alternative_gt_answers (eval_end2end.py)",
            judge="llm",
            images="embedded in the parquet",
        ),
        Benchmark(
            "fvqa",
            load_fvqa,
            "fvqa_test.parquet (veRL format)",
            "https://huggingface.co/datasets/lmms-lab/FVQA",
            metric="exact match against reward_model ground_truth and candidate_answers (MMSearch-R1 reward); the "
            "MMSearch-R1 paper reports accuracy judged by an LLM",
            judge="exact",
            images="embedded in the parquet",
            splits=("test", "train"),
        ),
        Benchmark(
            "livevqa",
            load_livevqa,
            "News/benchmark.json, Paper/benchmark.json, Video/benchmark.json with their image folders",
            "https://github.com/fumingyang2004/LIVEVQA (liveVQA_benchmarks/)",
            metric="an LLM grades each open answer against Ground_Truth_List (A correct / B incorrect / C not "
            "attempted); accuracy per level",
            judge="llm",
            images="News/News_imgs/, Paper/Paper_images/, Video/Video_images/",
            splits=("all", "news", "paper", "video"),
        ),
        Benchmark(
            "browsecomp_vl",
            load_browsecomp_vl,
            "bc_vl_level1.jsonl, bc_vl_level2.jsonl (WebWatcher benchmark/) and their images",
            "https://github.com/Alibaba-NLP/WebAgent (WebWatcher/benchmark)",
            metric="LLM-as-judge Pass@1 (WebWatcher pass3.sh)",
            judge="llm",
            images="image/level1/level1_N.jpg, image/level2/level2_N.jpg (or under images/)",
            splits=("all", "level1", "level2"),
        ),
        Benchmark(
            "mmsearch_plus",
            load_mmsearch_plus,
            "data/train-*.parquet of the dataset repository (or a save_to_disk folder); MMSEARCH_PLUS set to the "
            "canary string",
            "https://huggingface.co/datasets/Cie1/MMSearch-Plus (decryption: "
            "https://github.com/mmsearch-plus/MMSearch-Plus)",
            metric="accuracy of the final answer judged by an LLM against answer (the paper's protocol)",
            judge="llm",
            images="embedded in the parquet (img_1 is used)",
        ),
    )
}


def load_benchmark_set(
    name: str,
    data_dir: str | Path,
    *,
    split: str | None = None,
    version: str | None = None,
    image_roots: Sequence[str | Path] = (),
) -> BenchmarkSet:
    """The questions of benchmark ``name`` read from its released files in ``data_dir``, with images looked for under
    ``image_roots`` then ``data_dir``. Raises when no question has a gold answer."""
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    b = BENCHMARKS[name]
    path = Path(data_dir)
    if not path.is_dir():
        raise InputError(f"{name}: no such folder {path}; it should hold {b.files}. Obtain it from {b.source}")
    if split is not None and not b.splits:
        raise ConfigError(f"{name} has no splits to choose from")
    if version is not None and not b.versions:
        raise ConfigError(f"{name} has no versions to choose from")
    roots = [Path(p) for p in image_roots]
    for root in roots:
        if not root.is_dir():
            raise InputError(f"{name}: no such image folder {root}")
    reader = _Reader(name, path, roots, split, version)
    try:
        questions = b.load(reader)
    except KeyError as e:
        raise InputError(
            f"{name}: a record in {path} lacks the field {e}; is this the released {name} format?"
        ) from None
    if not questions:
        counts = ", ".join(f"{k}: {v}" for k, v in reader.left_out.items()) or "the files hold none"
        raise InputError(f"{name}: no question to evaluate in {', '.join(reader.files) or path} ({counts})")
    return BenchmarkSet(
        name=name,
        questions=questions,
        data_dir=str(path),
        image_roots=[str(p) for p in reader.roots],
        files=reader.files,
        split=reader.choose_split() if b.splits else None,
        version=reader.version,
        left_out=dict(reader.left_out),
    )


def check_images(questions: Sequence[Question], where: str) -> None:
    """One error naming how many local images are missing, where they were looked for and the first few ids."""
    missing = [q for q in questions if not q.image.startswith(_REMOTE) and not Path(q.image).is_file()]
    if missing:
        first = ", ".join(f"{q.id} ({q.image})" for q in missing[:3])
        raise InputError(
            f"{len(missing)} of {len(questions)} images are missing (looked in {where}); first: {first}. "
            "Download them or pass --image-root DIR where they are"
        )


def stratified_sample(questions: Sequence[Question], n: int, seed: int = 0) -> list[Question]:
    """``n`` questions drawn with ``seed``, each split represented in proportion to its size (largest remainders get
    the leftover places); the drawn questions keep their order."""
    if n >= len(questions):
        return list(questions)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(questions):
        groups[str(q.split or "")].append(i)
    shares = {k: n * len(v) / len(questions) for k, v in groups.items()}
    quota = {k: int(s) for k, s in shares.items()}
    for k in sorted(groups, key=lambda k: (quota[k] - shares[k], k))[: n - sum(quota.values())]:
        quota[k] += 1
    rng = random.Random(seed)
    chosen = [i for k in sorted(groups) for i in rng.sample(groups[k], quota[k])]
    return [questions[i] for i in sorted(chosen)]

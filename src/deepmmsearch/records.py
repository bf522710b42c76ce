"""The records that flow through the system: questions, search hits, messages, tool results and trajectories.

All are JSON-serializable and round-trip losslessly; fields a record does not know are kept in ``extra``
and written back, never dropped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from deepmmsearch.errors import InputError
from deepmmsearch.protocol import Action

Role = Literal["system", "user", "assistant"]


def _split_known(cls: type, data: dict, exclude: tuple[str, ...] = ("extra",)) -> tuple[dict, dict]:
    names = {f.name for f in fields(cls)} - set(exclude)
    return {k: v for k, v in data.items() if k in names}, {k: v for k, v in data.items() if k not in names}


@dataclass
class Question:
    """One VQA item: an image, a question and the acceptable answers."""

    id: str
    image: str  # a path or an http(s) URL
    question: str
    answers: list[str] = field(default_factory=list)
    answer_eval: list[str] | None = None
    question_type: str | None = None  # "string", "numerical" or "time"
    requires_search: bool | None = None
    category: str | None = None
    split: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        data = {k: v for k, v in data.items() if v is not None}
        return {**data, **self.extra}

    @classmethod
    def from_dict(cls, data: dict) -> Question:
        missing = [k for k in ("id", "image", "question") if k not in data]
        if missing:
            raise InputError(f"question record lacks {', '.join(missing)}: {json.dumps(data)[:200]}")
        known, extra = _split_known(cls, data)
        known["id"] = str(known["id"])
        if isinstance(known.get("answers"), str):
            known["answers"] = [known["answers"]]
        return cls(**known, extra=extra)


@dataclass
class TextHit:
    """One text search result."""

    title: str
    url: str
    text: str  # the passage or snippet
    score: float | None = None

    def to_source(self) -> dict:
        return asdict(self)


@dataclass
class ImageHit:
    """One image search result: a page whose image looks like the query image."""

    title: str
    url: str  # the page the image appears on
    description: str = ""
    image: str | None = None  # where the matched image itself lives
    score: float | None = None

    def to_source(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Box:
    """A region of the input image in pixels, (x0, y0) inclusive and (x1, y1) exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int
    label: str = ""

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]

    def clip(self, width: int, height: int) -> Box | None:
        """The box limited to the image, or None when nothing of it is left."""
        x0, y0 = max(0, self.x0), max(0, self.y0)
        x1, y1 = min(width, self.x1), min(height, self.y1)
        return Box(x0, y0, x1, y1, self.label) if x1 > x0 and y1 > y0 else None


@dataclass
class ToolResult:
    """What one tool call did: its arguments, what the model was shown, and where it came from."""

    tool: str  # an ActionKind value: image_search, crop_search or text_search
    query: str  # the text query or the referring expression; "" for a whole-image search
    backend: str
    observation: str  # the text that goes inside <information>
    sources: list[dict[str, Any]] = field(default_factory=list)  # title, url, snippet of each hit
    box: list[int] | None = None  # the crop, (x0, y0, x1, y1) in input-image pixels
    error: str | None = None  # set when the tool failed; the observation then says so
    cached: bool = False
    latency_s: float = 0.0

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> ToolResult:
        return cls(**data)


@dataclass
class Message:
    """One turn of an episode. Only assistant turns are trainable: the mask is set here, once."""

    role: Role
    text: str
    image: str | None = None  # the input image, on the turn that shows it to the policy
    action: Action | None = None  # assistant turns: the parsed action
    error: str | None = None  # assistant turns: why the reply was invalid
    tool: ToolResult | None = None  # user turns that return a tool result
    latency_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    finish_reason: str | None = None
    redrawn: list[int] | None = None  # positions in token_ids that guided decoding chose, not the model's own draw

    @property
    def trainable(self) -> bool:
        return self.role == "assistant"

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"role": self.role, "text": self.text}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("role", "text") or value is None:
                continue
            data[f.name] = value.to_dict() if hasattr(value, "to_dict") else value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Message:
        data = dict(data)
        if data.get("action") is not None:
            data["action"] = Action.from_dict(data["action"])
        if data.get("tool") is not None:
            data["tool"] = ToolResult.from_dict(data["tool"])
        return cls(**data)


@dataclass
class Trajectory:
    """A whole episode: the question, every message, the answer, why it stopped, and its accounting."""

    question: Question
    model: str
    messages: list[Message] = field(default_factory=list)
    answer: str | None = None
    stop_reason: str = ""
    error: str | None = None  # what went wrong when the episode ended on a policy error or a timeout
    tool_calls: dict[str, int] = field(default_factory=dict)  # per ActionKind value of the tools
    format_errors: int = 0
    rule_errors: int = 0
    turns: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # total_s, policy_s, tools_s
    tokens: dict[str, int] = field(default_factory=dict)  # prompt, completion
    cache: dict[str, int] = field(default_factory=dict)  # hits, misses
    correct: bool | None = None
    score: float | None = None

    @property
    def num_tool_calls(self) -> int:
        return sum(self.tool_calls.values())

    def to_dict(self) -> dict:
        data = self.question.to_dict()
        for f in fields(self):
            if f.name == "question":
                continue
            value = getattr(self, f.name)
            if f.name == "messages":
                value = [m.to_dict() for m in value]
            data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Trajectory:
        # "question" is the question's text at the top level; the Question object is rebuilt from the rest.
        known, rest = _split_known(cls, data, exclude=("question",))
        known["messages"] = [Message.from_dict(m) for m in known.get("messages", [])]
        return cls(question=Question.from_dict(rest), **known)


# ---------------------------------------------------------------------------------------------- JSON Lines


def read_jsonl(path: str | Path) -> Iterator[dict]:
    """Yield the objects of a JSON Lines file; a bad line is an error that names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with path.open(encoding="utf-8") as f:
        for number, line in _lines(f, path):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                if not line.endswith("\n"):
                    return  # a torn last line from a killed writer: the record was never finished
                raise InputError(f"{path}:{number}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{number}: expected a JSON object per line")
            yield obj


def _lines(f: Any, path: Path) -> Iterator[tuple[int, str]]:
    number = 0
    try:
        for number, line in enumerate(f, 1):
            yield number, line
    except UnicodeDecodeError:
        raise InputError(f"{path}:{number + 1}: not UTF-8 text; expected JSON Lines") from None


def read_questions(path: str | Path) -> list[Question]:
    """Read question records; relative image paths are taken relative to the file's folder, as in HTML."""
    questions = [Question.from_dict(d) for d in read_jsonl(path)]
    base = Path(path).parent
    for q in questions:
        if not q.image.startswith(("http://", "https://", "data:")) and not Path(q.image).is_absolute():
            q.image = os.path.normpath(base / q.image)
    return questions


def trim_torn_tail(path: str | Path) -> None:
    """Cut a last line that a killed writer left unfinished, so that appending can resume cleanly."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        data = f.read()
        if data.endswith(b"\n"):
            return
        f.truncate(data.rfind(b"\n") + 1)


def write_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    """Write records as JSON Lines (UTF-8, one object a line), replacing the file and creating its folder."""
    _put_jsonl(path, records, "w")


def append_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    """Append records durably: each line is flushed and synced, so a crash loses at most the line in flight."""
    _put_jsonl(path, records, "a")


def _put_jsonl(path: str | Path, records: Iterable[dict], mode: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode, encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())

"""A policy that replays given replies: for tests, examples and debugging the loop."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from deepmmsearch.errors import InputError, PolicyError
from deepmmsearch.policies.base import Conversation, Generation, Policy


class ScriptedPolicy(Policy):
    """Replays a list of replies; the n-th assistant turn of every episode gets the n-th reply.

    ``scripts`` maps a question id to its own list; the key ``"*"`` is the list for every other question.
    It holds no state: the position is the number of assistant turns already in the conversation.
    """

    max_batch_size = 64

    def __init__(self, scripts: dict[str, list[str]] | list[str], name: str = "scripted") -> None:
        self.scripts = {"*": list(scripts)} if isinstance(scripts, list) else {k: list(v) for k, v in scripts.items()}
        self.name = name

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedPolicy:
        """Read a JSON file holding a list of replies, or an object mapping question ids (or "*") to lists."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: no such script file") from None
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        ok_list = isinstance(data, list) and all(isinstance(t, str) for t in data)
        ok_map = isinstance(data, dict) and all(
            isinstance(v, list) and all(isinstance(t, str) for t in v) for v in data.values()
        )
        if not (ok_list or ok_map):
            raise InputError(f"{path}: a script is a list of strings, or an object of such lists by question id")
        return cls(data, name=f"script:{path}")

    async def generate(self, conversations: Sequence[Conversation]) -> list[Generation]:
        return [self._next(c) for c in conversations]

    def _next(self, conversation: Conversation) -> Generation:
        question_id = conversation.question_id
        script = self.scripts.get(question_id, self.scripts.get("*"))
        if script is None:
            raise PolicyError(f"the script has no replies for question {question_id!r} and no '*' entry")
        turn = sum(m.role == "assistant" for m in conversation.messages)
        if turn >= len(script):
            raise PolicyError(f"the script for {question_id!r} ran out after {len(script)} replies")
        return Generation(text=script[turn], finish_reason="stop")

"""A golden trajectory: one fixed scripted episode over the shipped example knowledge base, through the real local
tools (hybrid text search, reverse image search, grounding, extractive summaries), written to a trajectory file
as ``dmms eval`` appends them, and compared whole with the one stored in ``tests/golden/``.

Any change of behaviour shows up here: prompts, parsing, the rules, tool observations, rankings, accounting. Only
what cannot be stable is left out: latencies and timings become null, scores are compared to 5 significant digits
(float32 arithmetic differs in the last bits between CPUs), and paths are taken relative to the repository. When
a change is meant, regenerate the file and review its diff::

    DMMS_REGENERATE_GOLDEN=1 python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from deepmmsearch.agent import Agent
from deepmmsearch.images import load_image
from deepmmsearch.policies.scripted import ScriptedPolicy
from deepmmsearch.records import Question, append_jsonl, read_jsonl
from deepmmsearch.tools import ToolsConfig, build_toolbox

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "lighthouse.trajectory.json"
# Crop search, text search, a reply that breaks the format, a refined search, the answer: every kind of turn.
SCRIPT = [
    "<reason>The lighthouse may be a known one; search with a crop of it.</reason>\n"
    "<img_search>the lighthouse</img_search>",
    "<reason>It is Korvath Point Lighthouse. I need its height.</reason>\n"
    "<text_search>Korvath Point Lighthouse</text_search>",
    "The height is probably in there somewhere.",
    "<reason>Ask for the height directly.</reason>\n<text_search>Korvath Point Lighthouse height metres</text_search>",
    "<reason>The result says the tower is 38 metres tall.</reason>\n<answer>38 metres</answer>",
]


def _stable(value: Any, key: str = "") -> Any:
    if key in ("latency_s", "timings"):
        return {k: None for k in value} if isinstance(value, dict) else None
    if isinstance(value, dict):
        return {k: _stable(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    if isinstance(value, str):
        return value.replace(f"{REPO}{os.sep}", "")  # the matched images' paths, wherever the clone is
    return float(f"{value:.5g}") if isinstance(value, float) else value


def test_the_scripted_episode_matches_its_golden_trajectory(example_kb: Path, example_image: Path, tmp_path) -> None:
    tools = ToolsConfig(kb=str(example_kb), no_cache=True)
    agent = Agent(ScriptedPolicy(SCRIPT, name="script:golden"), build_toolbox(tools))
    question = Question(
        id="golden", image=example_image.name, question="How tall is this lighthouse?", answers=["38 m"]
    )
    trajectory = asyncio.run(agent.run(question, load_image(str(example_image))))
    append_jsonl(tmp_path / "trajectories.jsonl", [trajectory.to_dict()])
    (record,) = read_jsonl(tmp_path / "trajectories.jsonl")
    got = json.dumps(_stable(record), indent=1, ensure_ascii=False) + "\n"
    if os.environ.get("DMMS_REGENERATE_GOLDEN"):
        GOLDEN.write_text(got, encoding="utf-8")
    # Compared as text, so that a failure shows a line diff of the episode.
    assert got == GOLDEN.read_text(encoding="utf-8"), "the episode changed; if that is meant, regenerate (docstring)"

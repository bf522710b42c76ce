import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import datasets

from deepmmsearch.data.build import DataBuildConfig, build_data, sample_balanced
from deepmmsearch.records import Question, Trajectory, read_jsonl, read_questions
from deepmmsearch.runner import RunConfig
from deepmmsearch.tools import ToolsConfig


def _trajectory(i: int, category: str, search: bool) -> Trajectory:
    return Trajectory(Question(f"q{i:03d}", "x.png", "?", ["a"], category=category, requires_search=search), "t")


def test_balanced_sampling_spreads_over_categories_and_search_need():
    pool = [
        _trajectory(i, c, s)
        for i, (c, s) in enumerate(
            [(c, s) for c in "abc" for s in (True, False) for _ in range(20)] + [("d", True)] * 3
        )
    ]
    kept = sample_balanced(pool, 24, 0.5, seed=0)
    cells = {(t.question.category, t.question.requires_search) for t in kept}
    assert len(kept) == 24 and sum(t.question.requires_search for t in kept) == 12
    assert {c for c, _ in cells} == set("abcd")
    counts = [sum(t.question.category == c for t in kept) for c in "abc"]
    assert max(counts) - min(counts) <= 2
    assert len({t.question.id for t in kept}) == 24


def test_data_build_writes_a_maskable_sft_dataset(small_world, tmp_path):
    questions = read_questions(small_world / "questions" / "train.jsonl")
    run_config = RunConfig(tools=ToolsConfig(kb=str(small_world / "kb"), no_cache=True))
    stats = asyncio.run(build_data(questions, "oracle", tmp_path, DataBuildConfig(size=40), run_config))
    assert stats["questions"] == len(questions) and stats["kept"] == 40
    assert stats["search_required_share"]["kept"] == 50.0
    assert stats["teacher_accuracy"] >= 90
    assert max(stats["per_category"].values()) - min(stats["per_category"].values()) <= 2
    assert sum(stats["drop_reasons"].values()) == stats["questions"] - stats["qualified"]
    kept = [Trajectory.from_dict(d) for d in read_jsonl(tmp_path / "kept.jsonl")]
    assert all(t.stop_reason == "answer" and t.format_errors == 0 for t in kept)
    sft = datasets.load_from_disk(str(tmp_path / "sft"))
    assert len(sft) == 40
    row = next(r for r in sft if r["requires_search"])
    kinds = [m["kind"] for m in row["messages"]]
    assert "tool_result" in kinds and kinds[-1] == "generation"
    assert all(m["train"] == (m["kind"] == "generation") for m in row["messages"])
    assert row["messages"][1]["image"] and os.path.isfile(row["image"])
    assert "# Data build" in (tmp_path / "stats.md").read_text()


def test_short_prompt_data_opens_with_one_sentence_and_the_teacher_still_searches(small_world, tmp_path):
    from typer.testing import CliRunner

    from deepmmsearch.cli import app
    from deepmmsearch.models.build import read_prompt_style
    from deepmmsearch.protocol import PromptStyle, system_prompt

    flags = ["data", "build", "--questions", str(small_world / "questions" / "train.jsonl"), "--teacher", "oracle"]
    flags += ["--out", str(tmp_path), "--kb", str(small_world / "kb"), "--size", "12", "--prompts", "short", "--json"]
    result = CliRunner().invoke(app, flags)
    assert result.exit_code == 0, result.output
    kept = [Trajectory.from_dict(d) for d in read_jsonl(tmp_path / "kept.jsonl")]
    assert len(kept) == 12 and {t.messages[0].text for t in kept} == {system_prompt(PromptStyle.SHORT)}
    assert sum(t.num_tool_calls > 0 for t in kept) == 6  # half need a search, and the oracle made it
    assert {row["messages"][0]["content"] for row in datasets.load_from_disk(str(tmp_path / "sft"))} == {
        system_prompt(PromptStyle.SHORT)
    }
    assert read_prompt_style(tmp_path) is PromptStyle.SHORT  # metadata of the data, which SFT keeps
    # A resumed build may not prompt its episodes in another style than the folder's.
    again = CliRunner().invoke(app, [a for a in flags if a not in ("--prompts", "short")])
    assert again.exit_code == 1 and "prompted in the short style, this build's in full" in again.output


def test_kill_and_resume_loses_and_repeats_nothing(small_world, tmp_path):
    command = [
        sys.executable,
        "-m",
        "deepmmsearch",
        "data",
        "build",
        "--questions",
        str(small_world / "questions" / "train.jsonl"),
        "--teacher",
        "oracle",
        "--out",
        str(tmp_path),
        "--kb",
        str(small_world / "kb"),
        "--workers",
        "2",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    path = tmp_path / "trajectories.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not path.exists() or path.read_text().count("\n") < 5):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = path.read_text().count("\n")
    total = len(read_questions(small_world / "questions" / "train.jsonl"))
    assert 5 <= written < total, "the kill should land mid-run"
    with path.open("a") as f:
        f.write('{"id": "torn')  # what a kill in the middle of a write leaves behind
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == total
    assert json.loads((tmp_path / "stats.json").read_text())["questions"] == total

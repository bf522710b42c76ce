"""Report figures: tool-use patterns, cost from a price table."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepmmsearch.errors import ConfigError
from deepmmsearch.eval.report import PriceTable, build_report, render_markdown, tool_flags, tool_pattern
from deepmmsearch.records import Question, Trajectory

ROOT = Path(__file__).resolve().parents[2]


def traj(calls: dict[str, int], correct: bool = True, prompt: int = 0, completion: int = 0) -> Trajectory:
    t = Trajectory(Question("q", "x.png", "?", ["a"]), "openai:gpt-4o-mini@http://h/v1", tool_calls=calls)
    t.tokens, t.correct, t.score, t.stop_reason = (
        {"prompt": prompt, "completion": completion},
        correct,
        float(correct),
        "answer",
    )
    t.timings = {"total_s": 1.0}
    return t


def test_patterns_and_flags() -> None:
    assert tool_pattern(traj({})) == "none"
    assert tool_pattern(traj({"image_search": 1})) == "image_only"
    assert tool_pattern(traj({"crop_search": 1})) == "image_only"
    assert tool_pattern(traj({"text_search": 3})) == "text_only"
    assert tool_pattern(traj({"crop_search": 1, "text_search": 1})) == "image+text"
    assert tool_flags(traj({"crop_search": 1, "text_search": 2})) == ["crop", "repeated_text_search"]
    assert tool_flags(traj({"text_search": 1})) == []


def test_cost_from_the_shipped_price_table() -> None:
    prices = PriceTable.load(ROOT / "configs" / "prices.yaml")
    assert prices.price_for("openai:gpt-4o-mini@http://h/v1").prompt_per_1m == 0.15  # longest prefix wins
    assert prices.price_for("openai:gpt-4o").completion_per_1m == 10.0
    assert prices.price_for("hf:unknown").prompt_per_1m == 0.0
    trajectories = [traj({"text_search": 2, "image_search": 1}, prompt=1_000_000, completion=500_000), traj({}, False)]
    report = build_report(trajectories, "rule", "agent", trajectories[0].model, prices)
    assert report["cost_usd"]["tokens"] == pytest.approx(0.15 + 0.30)
    assert report["cost_usd"]["search"] == pytest.approx(2 * 0.005 + 0.015)
    assert report["cost_usd"]["per_question"] == pytest.approx((0.45 + 0.025) / 2)
    assert report["tokens"] == {
        "prompt": 1_000_000,
        "completion": 500_000,
        "mean_prompt": 500000.0,
        "mean_completion": 250000.0,
    }
    assert report["tool_use"]["accuracy_by_pattern"] == {"none": 0.0, "image+text": 100.0}
    assert "estimated cost: $0.4750" in render_markdown(report)


def test_bad_price_table(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("models:\n  gpt-4o:\n    prompt: 1\n")
    with pytest.raises(ConfigError, match="unknown key"):
        PriceTable.load(bad)


def test_report_leaves_out_difficult_aokvqa_questions_and_says_so() -> None:
    trajectories = [traj({}), traj({}, False), traj({})]
    trajectories[2].question.extra["difficult_direct_answer"] = True
    report = build_report(trajectories, "aokvqa", "agent", "m")
    assert report["accuracy"]["n"] == 2 and report["accuracy"]["score"] == 50.0
    assert "left out: 1 question(s) marked `difficult_direct_answer`" in render_markdown(report)

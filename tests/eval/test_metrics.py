"""Aggregation: intervals, breakdowns and the InfoSeek split harmonic mean."""

from __future__ import annotations

import pytest

from deepmmsearch.eval.metrics import harmonic_mean, mean_ci, summarize


def test_wilson_interval_for_binary_scores() -> None:
    mean, low, high = mean_ci([1.0] * 8 + [0.0] * 2)
    assert mean == pytest.approx(80.0)
    assert low == pytest.approx(49.02, abs=0.01) and high == pytest.approx(94.33, abs=0.01)  # Wilson, z=1.96
    assert mean_ci([]) == (0.0, 0.0, 0.0)
    assert mean_ci([1.0])[2] == pytest.approx(100.0)


def test_fractional_scores_use_the_normal_interval() -> None:
    mean, low, high = mean_ci([0.6, 1.0, 0.3, 0.9])
    assert mean == pytest.approx(70.0) and low < mean < high <= 100.0


def test_harmonic_mean_as_the_official_script() -> None:
    assert harmonic_mean(50.0, 25.0) == pytest.approx(100 / 3)
    assert harmonic_mean(50.0, 0.0) == pytest.approx(2e-12, rel=1e-3)  # a zero split sinks the score


def test_summarize_breakdowns() -> None:
    items = [
        {"score": 1.0, "correct": True, "question_type": "string", "category": "a", "split": "s"},
        {"score": 0.0, "correct": False, "question_type": "string", "category": "b", "split": "s"},
        {"score": 1.0, "correct": True, "question_type": "time", "category": "b"},
    ]
    s = summarize(items, "rule")
    assert s["score"] == pytest.approx(66.67) and s["n"] == 3 and s["correct"] == 2
    assert s["by_question_type"]["string"]["score"] == 50.0 and s["by_question_type"]["time"]["n"] == 1
    assert s["by_category"]["b"]["score"] == 50.0
    assert s["by_split"] == {"s": {"score": 50.0, "ci95": s["by_split"]["s"]["ci95"], "n": 2}}


def test_infoseek_score_is_the_harmonic_mean_of_the_splits() -> None:
    items = [{"score": 1.0, "split": "val_unseen_question"}, {"score": 0.0, "split": "val_unseen_question"}]
    items += [{"score": 1.0, "split": "val_unseen_entity"}] + [{"score": 0.0, "split": "val_unseen_entity"}] * 3
    s = summarize(items, "infoseek")
    assert s["unseen_question_score"] == 50.0 and s["unseen_entity_score"] == 25.0
    assert s["score"] == pytest.approx(33.33)  # equal to the pooled 2/6 here; an unequal case below
    items.append({"score": 1.0, "split": "val_unseen_question"})  # 2/3 and 1/4
    s = summarize(items, "infoseek")
    assert s["score"] == pytest.approx(round(2 / (1 / 66.67 + 1 / 25.0), 2))
    assert s["score"] != pytest.approx(100 * 3 / 7, abs=0.01)  # not the pooled mean


@pytest.mark.parametrize("metric", ["rule", "exact", "llm"])
def test_infoseek_harmonic_mean_under_every_metric(metric: str) -> None:
    items = [{"score": 1.0, "split": "val_unseen_question"}] * 2 + [{"score": 0.0, "split": "val_unseen_question"}]
    items += [{"score": 1.0, "split": "val_unseen_entity"}] + [{"score": 0.0, "split": "val_unseen_entity"}] * 3
    s = summarize(items, metric)
    assert (s["unseen_question_score"], s["unseen_entity_score"]) == (66.67, 25.0)
    assert s["score"] == pytest.approx(round(2 / (1 / 66.67 + 1 / 25.0), 2))
    mixed = summarize([*items, {"score": 1.0, "split": "test"}], metric)  # not all InfoSeek: the plain mean
    assert "unseen_question_score" not in mixed and mixed["score"] == 50.0


def test_aokvqa_leaves_out_difficult_direct_answer_questions() -> None:
    items = [{"score": 1.0, "correct": True}, {"score": 0.0}, {"score": 1.0, "difficult_direct_answer": True}]
    s = summarize(items, "aokvqa")
    assert s["n"] == 2 and s["score"] == 50.0 and s["left_out"] == {"difficult_direct_answer": 1}
    assert summarize(items, "rule")["n"] == 3 and "left_out" not in summarize(items, "rule")

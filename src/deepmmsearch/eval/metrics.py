"""Aggregation: per-item verdicts -> a score (0-100) with a 95% interval, broken down by type, category and split."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any


def mean_ci(scores: list[float], z: float = 1.959964) -> tuple[float, float, float]:
    """(mean, low, high) in percent. Binary scores get the Wilson interval; fractional ones (VQA accuracy) the
    normal approximation, clipped to [0, 100]."""
    n = len(scores)
    if n == 0:
        return 0.0, 0.0, 0.0
    mean = sum(scores) / n
    if all(s in (0.0, 1.0) for s in scores):
        denom = 1 + z * z / n
        centre = (mean + z * z / (2 * n)) / denom
        half = z * math.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n)) / denom
    else:
        var = sum((s - mean) ** 2 for s in scores) / max(n - 1, 1)
        centre, half = mean, z * math.sqrt(var / n)
    return 100 * mean, max(0.0, 100 * (centre - half)), min(100.0, 100 * (centre + half))


def harmonic_mean(*values: float) -> float:
    """The official InfoSeek harmonic mean: a zero counts as 1e-12, so one empty split drags the mean to ~0."""
    safe = [v if v != 0 else 1e-12 for v in values]
    return len(safe) / sum(1.0 / v for v in safe)


def _group(items: list[dict], key: str) -> dict[str, dict]:
    groups: dict[str, list[float]] = defaultdict(list)
    for item in items:
        value = item.get(key)
        if value is not None:
            groups[str(value)].append(float(item.get("score") or 0.0))
    out = {}
    for name, scores in sorted(groups.items()):
        mean, low, high = mean_ci(scores)
        out[name] = {"score": round(mean, 2), "ci95": [round(low, 2), round(high, 2)], "n": len(scores)}
    return out


def _infoseek_split(split: str) -> str | None:
    for name in ("unseen_question", "unseen_entity"):
        if split.endswith(name):
            return name
    return None


def summarize(items: Iterable[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The score of scored items (each with ``score`` in [0, 1], ``question_type``, ``category``, ``split``).

    When every item is in InfoSeek's ``unseen_question`` or ``unseen_entity`` split and both are present, the
    headline score is the official harmonic mean of the two split scores (each rounded to 2 decimals first, as the
    official script does), whatever the metric. Under ``aokvqa``, questions marked ``difficult_direct_answer`` are
    left out, as A-OKVQA's official direct-answer evaluation does, and counted in ``left_out``.
    """
    items = list(items)
    left_out = 0
    if metric == "aokvqa":
        kept = [i for i in items if not i.get("difficult_direct_answer")]
        left_out, items = len(items) - len(kept), kept
    scores = [float(i.get("score") or 0.0) for i in items]
    mean, low, high = mean_ci(scores)
    summary: dict[str, Any] = {
        "metric": metric,
        "n": len(items),
        "score": round(mean, 2),
        "ci95": [round(low, 2), round(high, 2)],
        "correct": sum(bool(i.get("correct")) for i in items),
        "by_question_type": _group(items, "question_type"),
        "by_category": _group(items, "category"),
        "by_split": _group(items, "split"),
    }
    if left_out:
        summary["left_out"] = {"difficult_direct_answer": left_out}
    halves: dict[str, list[float]] = defaultdict(list)
    for item, score in zip(items, scores, strict=True):
        half = _infoseek_split(str(item.get("split") or ""))
        if half:
            halves[half].append(score)
    if len(halves) == 2 and sum(len(v) for v in halves.values()) == len(items):
        split_scores = {k: round(100 * sum(v) / len(v), 2) for k, v in halves.items()}
        summary["unseen_question_score"] = split_scores["unseen_question"]
        summary["unseen_entity_score"] = split_scores["unseen_entity"]
        summary["score"] = round(harmonic_mean(*split_scores.values()), 2)
        summary["score_is"] = "harmonic mean of the unseen_question and unseen_entity splits"
    return summary

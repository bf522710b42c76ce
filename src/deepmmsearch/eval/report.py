"""The evaluation report: accuracy with its 95% interval, tool use, latency, tokens and an estimated cost, as
``report.json``, ``report.md`` and PNG plots. Everything is computed from judged trajectories alone."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepmmsearch.config import from_dict, load_yaml
from deepmmsearch.eval.metrics import summarize
from deepmmsearch.records import Trajectory

PATTERNS = ("none", "image_only", "text_only", "image+text")  # exclusive: every trajectory has exactly one
FLAGS = ("crop", "repeated_text_search")  # may come on top of a pattern


@dataclass
class ModelPrice:
    prompt_per_1m: float = field(default=0.0, metadata={"help": "USD per 1M prompt tokens"})
    completion_per_1m: float = field(default=0.0, metadata={"help": "USD per 1M completion tokens"})


@dataclass
class PriceTable:
    """Prices for the cost estimate; a model takes the entry whose key is the longest prefix of its name."""

    models: dict[str, ModelPrice] = field(default_factory=dict, metadata={"help": "model name prefix -> prices"})
    text_search_per_call: float = field(default=0.0, metadata={"help": "USD per text search call"})
    image_search_per_call: float = field(default=0.0, metadata={"help": "USD per image search call (crop too)"})

    @classmethod
    def load(cls, path: str | Path | None) -> PriceTable:
        """Read a price table from YAML; no path means everything is free."""
        if path is None:
            return cls()
        data = load_yaml(path)
        models = {
            str(k): from_dict(ModelPrice, v, f"{path}.models.{k}") for k, v in (data.pop("models", {}) or {}).items()
        }
        table = from_dict(cls, data, str(path))
        table.models = models
        return table

    def price_for(self, model: str) -> ModelPrice:
        name = model.removeprefix("openai:").partition("@")[0]
        keys = [k for k in self.models if name.startswith(k) or model.startswith(k)]
        return self.models[max(keys, key=len)] if keys else ModelPrice()


def tool_pattern(trajectory: Trajectory) -> str:
    """The exclusive tool-use pattern of one trajectory (crop search counts as image search)."""
    calls = trajectory.tool_calls
    image = calls.get("image_search", 0) + calls.get("crop_search", 0) > 0
    text = calls.get("text_search", 0) > 0
    return {(False, False): "none", (True, False): "image_only", (False, True): "text_only"}.get(
        (image, text), "image+text"
    )


def tool_flags(trajectory: Trajectory) -> list[str]:
    flags = []
    if trajectory.tool_calls.get("crop_search", 0) > 0:
        flags.append("crop")
    if trajectory.tool_calls.get("text_search", 0) > 1:
        flags.append("repeated_text_search")
    return flags


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "p50": 0.0, "p90": 0.0, "max": 0.0}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "mean": round(statistics.fmean(values), 4),
        "p50": round(statistics.median(values), 4),
        "p90": round(p90, 4),
        "max": round(ordered[-1], 4),
    }


def build_report(
    trajectories: list[Trajectory], metric: str, mode: str, model: str, prices: PriceTable | None = None
) -> dict[str, Any]:
    """Every figure of the report, from judged trajectories."""
    prices = prices or PriceTable()
    n = len(trajectories)
    items = [{**t.question.to_dict(), "score": t.score or 0.0, "correct": bool(t.correct)} for t in trajectories]
    accuracy = summarize(items, metric)
    patterns = [tool_pattern(t) for t in trajectories]
    flags = [tool_flags(t) for t in trajectories]
    calls = [t.num_tool_calls for t in trajectories]
    pairs = list(zip(trajectories, patterns, strict=True))
    per_tool: Counter[str] = Counter()
    for t in trajectories:
        per_tool.update(t.tool_calls)
    share = (lambda k: round(100 * k / n, 2)) if n else (lambda k: 0.0)
    tool_use = {
        "share_with_tools": share(sum(c > 0 for c in calls)),
        "mean_calls": round(sum(calls) / n, 4) if n else 0.0,
        "calls_by_tool": dict(sorted(per_tool.items())),
        "patterns": {p: share(patterns.count(p)) for p in PATTERNS},
        "flags": {f: share(sum(f in fl for fl in flags)) for f in FLAGS},
        "accuracy_by_pattern": {
            p: round(100 * statistics.fmean([t.score or 0.0 for t, q in pairs if q == p]), 2)
            for p in PATTERNS
            if p in patterns
        },
    }
    prompt_tokens = sum(t.tokens.get("prompt", 0) for t in trajectories)
    completion_tokens = sum(t.tokens.get("completion", 0) for t in trajectories)
    price = prices.price_for(model)
    text_calls = per_tool.get("text_search", 0)
    image_calls = per_tool.get("image_search", 0) + per_tool.get("crop_search", 0)
    cost_tokens = prompt_tokens / 1e6 * price.prompt_per_1m + completion_tokens / 1e6 * price.completion_per_1m
    cost_search = text_calls * prices.text_search_per_call + image_calls * prices.image_search_per_call
    stop_reasons = Counter(t.stop_reason or "unknown" for t in trajectories)
    return {
        "mode": mode,
        "model": model,
        "metric": metric,
        "n": n,
        "accuracy": accuracy,
        "tool_use": tool_use,
        "latency_s": {
            "total": _quantiles([t.timings.get("total_s", 0.0) for t in trajectories]),
            "policy": _quantiles([t.timings.get("policy_s", 0.0) for t in trajectories]),
            "tools": _quantiles([t.timings.get("tools_s", 0.0) for t in trajectories]),
        },
        "tokens": {
            "prompt": prompt_tokens,
            "completion": completion_tokens,
            "mean_prompt": round(prompt_tokens / n, 2) if n else 0.0,
            "mean_completion": round(completion_tokens / n, 2) if n else 0.0,
        },
        "cost_usd": {
            "tokens": round(cost_tokens, 6),
            "search": round(cost_search, 6),
            "total": round(cost_tokens + cost_search, 6),
            "per_question": round((cost_tokens + cost_search) / n, 6) if n else 0.0,
        },
        "stop_reasons": dict(sorted(stop_reasons.items())),
    }


def render_markdown(report: dict[str, Any]) -> str:
    """The report as a short Markdown page."""
    acc = report["accuracy"]
    lines = [
        f"# Evaluation: {report['model']} ({report['mode']} mode)",
        "",
        f"- questions: {report['n']}, metric: `{report['metric']}`",
        f"- **score: {acc['score']:.2f}** (95% interval {acc['ci95'][0]:.2f}-{acc['ci95'][1]:.2f}),"
        f" correct: {acc['correct']}/{acc['n']}",
    ]
    bench = report.get("benchmark")
    if bench:
        chosen = ", ".join(f"{k} {bench[k]}" for k in ("split", "version") if bench.get(k))
        drawn = f"; {bench['evaluated']} drawn with seed {bench['seed']}" if bench.get("limit") else ""
        lines.append(
            f"- benchmark: {bench['name']}{f' ({chosen})' if chosen else ''}, {bench['questions']} questions{drawn}"
        )
        for reason, count in bench["left_out"].items():
            lines.append(f"- left out: {count} question(s), {reason}")
    fallbacks = report.get("judge", {}).get("rule_fallbacks", 0)
    if fallbacks:
        lines.append(f"- the llm judge failed on {fallbacks} question(s); the rule judge decided those")
    if "score_is" in acc:
        lines.append(f"- the score is the {acc['score_is']}")
    for reason, count in acc.get("left_out", {}).items():
        lines.append(f"- left out: {count} question(s) marked `{reason}`, as the official evaluation does")
    for key, title in (("by_question_type", "question type"), ("by_category", "category"), ("by_split", "split")):
        if acc[key]:
            lines += ["", f"## Accuracy by {title}", "", f"| {title} | n | score | 95% interval |", "|---|---|---|---|"]
            lines += [
                f"| {k} | {v['n']} | {v['score']:.2f} | {v['ci95'][0]:.2f}-{v['ci95'][1]:.2f} |"
                for k, v in acc[key].items()
            ]
    tools = report["tool_use"]
    lines += [
        "",
        "## Tool use",
        "",
        f"- questions with any tool call: {tools['share_with_tools']:.2f}%",
        f"- mean tool calls per question: {tools['mean_calls']:.2f}",
        "",
        "| pattern | share % |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.2f} |" for k, v in {**tools["patterns"], **tools["flags"]}.items()]
    lat, tok, cost = report["latency_s"]["total"], report["tokens"], report["cost_usd"]
    lines += [
        "",
        "## Cost",
        "",
        f"- latency per question: mean {lat['mean']:.3f} s, p50 {lat['p50']:.3f} s, p90 {lat['p90']:.3f} s",
        f"- tokens: {tok['prompt']} prompt, {tok['completion']} completion",
        f"- estimated cost: ${cost['total']:.4f} (tokens ${cost['tokens']:.4f}, search ${cost['search']:.4f})",
        "",
        "## Stop reasons",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in report["stop_reasons"].items()]
    return "\n".join(lines) + "\n"


def write_plots(report: dict[str, Any], trajectories: list[Trajectory], out_dir: Path) -> list[Path]:
    """Accuracy (with 95% intervals) per category and question type, tool patterns and latency, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")  # no display, ever
    import matplotlib.pyplot as plt

    paths = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        paths.append(out_dir / name)

    acc = report["accuracy"]
    for key, name in (("by_category", "accuracy_by_category.png"), ("by_question_type", "accuracy_by_type.png")):
        groups = acc[key] or {"all": {"score": acc["score"], "ci95": acc["ci95"], "n": acc["n"]}}
        labels = list(groups)
        scores = [groups[k]["score"] for k in labels]
        # Clipped: a harmonic-mean headline (InfoSeek) may lie outside the interval of the plain mean.
        errors = [
            [max(0.0, s - groups[k]["ci95"][0]) for k, s in zip(labels, scores, strict=True)],
            [max(0.0, groups[k]["ci95"][1] - s) for k, s in zip(labels, scores, strict=True)],
        ]
        fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(labels) + 2), 3.5))
        ax.bar(labels, scores, yerr=errors, capsize=4, color="#4c72b0")
        ax.set_ylim(0, 100)
        ax.set_ylabel(f"{report['metric']} score (95% interval)")
        ax.set_title(f"{report['model']} · {report['mode']}")
        ax.tick_params(axis="x", rotation=30)
        save(fig, name)
    shares = {**report["tool_use"]["patterns"], **report["tool_use"]["flags"]}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(list(shares), list(shares.values()), color="#55a868")
    ax.set_ylabel("% of questions")
    ax.set_title("tool-use patterns")
    ax.tick_params(axis="x", rotation=30)
    save(fig, "tool_patterns.png")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist([t.timings.get("total_s", 0.0) for t in trajectories] or [0.0], bins=20, color="#c44e52")
    ax.set_xlabel("seconds per question")
    ax.set_ylabel("questions")
    save(fig, "latency.png")
    return paths


def write_report(
    report: dict[str, Any], trajectories: list[Trajectory], out_dir: str | Path, plots: bool = True
) -> dict[str, Path]:
    """Write report.json, report.md and (unless ``plots`` is false) the plots into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
    written = write_plots(report, trajectories, out_dir) if plots else []
    return {"json": out_dir / "report.json", "md": out_dir / "report.md", **{p.stem: p for p in written}}

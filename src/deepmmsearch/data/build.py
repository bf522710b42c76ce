"""``dmms data build``: DeepMMSearchVQA-style training data from seed questions and a teacher.

The teacher (any policy: the world's ``oracle``, an API model, a local model) answers each question through
the agent loop and the real tools. Episodes with invalid tags, with too many turns, that did not end in an
answer, or that the judge finds wrong are dropped. The rest are sampled uniformly over the knowledge taxonomy
and half search-required, half search-free, as the paper found best.

Output folder::

    trajectories.jsonl   every teacher episode, appended as it ends (what makes the build resumable)
    kept.jsonl           the sampled, kept trajectories
    sft/                 the SFT dataset (HF ``datasets`` on disk), one conversation per row
    prompt_style.txt     the prompt style the episodes were prompted in; SFT keeps it beside the model it trains
    stats.json, stats.md per category, per tool pattern, turns histogram, drop reasons
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deepmmsearch.data.sft import to_sft_row
from deepmmsearch.errors import ConfigError
from deepmmsearch.eval.harness import TRAJECTORIES, load_done
from deepmmsearch.eval.judges import get_judge
from deepmmsearch.eval.report import tool_pattern
from deepmmsearch.files import build_beside
from deepmmsearch.policies import Policy
from deepmmsearch.protocol import StopReason
from deepmmsearch.records import Question, Trajectory, append_jsonl, write_jsonl


@dataclass
class DataBuildConfig:
    size: int | None = field(default=None, metadata={"help": "conversations to keep; None keeps all that qualify"})
    search_share: float = field(default=0.5, metadata={"help": "share of search-required conversations"})
    max_turns: int = field(default=10, metadata={"help": "drop episodes with this many assistant turns or more"})
    metric: str = field(default="rule", metadata={"help": "judge that decides whether the teacher was right"})
    classifier: str | None = field(
        default=None, metadata={"help": "MODEL[@BASE_URL] that labels questions without a category"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the sampling"})

    def __post_init__(self) -> None:
        if not 0 <= self.search_share <= 1:
            raise ConfigError(f"search_share must be in [0, 1], got {self.search_share}")
        if self.size is not None and self.size < 1:
            raise ConfigError(f"--size must be at least 1, got {self.size}")


def drop_reason(trajectory: Trajectory, max_turns: int, judge: Callable) -> str | None:
    """Why a teacher episode is not fit to train on, or None when it is."""
    if trajectory.stop_reason != StopReason.ANSWER:
        return f"stopped: {trajectory.stop_reason}"
    if trajectory.format_errors or trajectory.rule_errors:
        return "invalid tags"
    if trajectory.turns >= max_turns:
        return f"{max_turns}+ turns"
    if not judge(trajectory.answer, trajectory.question).correct:
        return "wrong answer"
    return None


def sample_balanced(
    trajectories: list[Trajectory], size: int | None, search_share: float, seed: int
) -> list[Trajectory]:
    """Pick ``size`` trajectories spread evenly over categories, ``search_share`` of them search-required.

    Cells that hold too few give their quota to the others, so the total is met whenever enough exist.
    """
    if size is None or size >= len(trajectories):
        return sorted(trajectories, key=lambda t: t.question.id)
    rng = random.Random(seed)
    cells: dict[tuple[str, bool], list[Trajectory]] = {}
    for t in sorted(trajectories, key=lambda t: t.question.id):
        cells.setdefault((t.question.category or "unknown", bool(t.question.requires_search)), []).append(t)
    for members in cells.values():
        rng.shuffle(members)
    categories = sorted({c for c, _ in cells})
    quota = {True: round(size * search_share), False: size - round(size * search_share)}
    picked: list[Trajectory] = []
    for needs_search, total in quota.items():
        pools = {c: cells.get((c, needs_search), []) for c in categories}
        taken = _fill_evenly(pools, total)
        picked += [t for c in categories for t in pools[c][: taken[c]]]
    # A side (search-required or search-free) short of its quota lends the rest to the other side.
    missing = size - len(picked)
    if missing > 0:
        chosen = {t.question.id for t in picked}
        rest = [t for members in cells.values() for t in members if t.question.id not in chosen]
        picked += rest[:missing]
    return sorted(picked, key=lambda t: t.question.id)


def _fill_evenly(pools: dict[str, list], total: int) -> dict[str, int]:
    taken = dict.fromkeys(pools, 0)
    while total > 0:
        open_cells = [c for c in pools if taken[c] < len(pools[c])]
        if not open_cells:
            break
        share = max(1, total // len(open_cells))
        for c in open_cells:
            step = min(share, len(pools[c]) - taken[c], total)
            taken[c] += step
            total -= step
            if total == 0:
                break
    return taken


async def build_data(
    questions: Sequence[Question],
    teacher: str | Policy,
    out_dir: str | Path,
    config: DataBuildConfig | None = None,
    run_config: Any = None,
    on_start: Callable[[int, int], None] | None = None,
    on_done: Callable[[Trajectory], None] | None = None,
) -> dict[str, Any]:
    """Run the teacher on every question not done yet, then filter, sample and write the dataset and stats."""
    from deepmmsearch.models.build import read_prompt_style, write_prompt_style
    from deepmmsearch.runner import RunConfig, build_agent, resolve_agent_config

    config = config or DataBuildConfig()
    run_config = run_config or RunConfig()
    run_config = replace(run_config, agent=resolve_agent_config(teacher, run_config.agent))
    style = run_config.agent.prompt_style()
    out = Path(out_dir)
    recorded = read_prompt_style(out)
    if recorded is not None and recorded is not style:
        raise ConfigError(
            f"{out}: its episodes were prompted in the {recorded} style, this build's in {style}: "
            f"set --prompts {recorded}, or build into a new folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_prompt_style(out, style)  # metadata of the data: SFT keeps it beside the model it trains
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise ConfigError("question ids must be unique: they are how a resumed build knows what is done")
    if config.classifier:
        from deepmmsearch.data.taxonomy import classify_missing

        questions = await classify_missing(list(questions), config.classifier)
    path = out / TRAJECTORIES
    done = load_done(path)
    todo = [q for q in questions if q.id not in done]
    if on_start is not None:
        on_start(len(questions), len(questions) - len(todo))

    def finished(trajectory: Trajectory) -> None:
        append_jsonl(path, [trajectory.to_dict()])
        done[trajectory.question.id] = trajectory
        if on_done is not None:
            on_done(trajectory)

    if todo:
        agent = build_agent(teacher, run_config, questions=todo)
        try:
            await agent.run_many(todo, on_done=finished)
        finally:
            await agent.policy.aclose()

    judge = get_judge(config.metric)
    trajectories = [done[q.id] for q in questions]
    drops: Counter[str] = Counter()
    qualified = []
    for t in trajectories:
        reason = drop_reason(t, config.max_turns, judge)
        if reason is None:
            qualified.append(t)
        else:
            drops[reason] += 1
    kept = sample_balanced(qualified, config.size, config.search_share, config.seed)
    _write_outputs(out, kept)
    stats = _stats(trajectories, qualified, kept, drops, config)
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    (out / "stats.md").write_text(render_stats(stats), encoding="utf-8")
    return stats


def _write_outputs(out: Path, kept: list[Trajectory]) -> None:
    import datasets

    write_jsonl(out / "kept.jsonl", (t.to_dict() for t in kept))
    rows = [to_sft_row(t) for t in kept]
    dataset = (
        datasets.Dataset.from_list(rows)
        if rows
        else datasets.Dataset.from_dict({"id": [], "image": [], "messages": [], "category": [], "requires_search": []})
    )
    with build_beside(out / "sft") as tmp:
        dataset.save_to_disk(str(tmp))


def _stats(
    all_: list[Trajectory], qualified: list[Trajectory], kept: list[Trajectory], drops: Counter, config: DataBuildConfig
) -> dict[str, Any]:
    def share(items: list[Trajectory]) -> float:
        return round(100 * sum(bool(t.question.requires_search) for t in items) / len(items), 1) if items else 0.0

    return {
        "questions": len(all_),
        "qualified": len(qualified),
        "kept": len(kept),
        "teacher_accuracy": round(100 * len(qualified) / len(all_), 1) if all_ else 0.0,
        "drop_reasons": dict(drops.most_common()),
        "search_required_share": {"kept": share(kept), "target": round(100 * config.search_share, 1)},
        "per_category": dict(sorted(Counter(t.question.category or "unknown" for t in kept).items())),
        "per_category_and_search": {
            f"{c}/{'search' if s else 'free'}": n
            for (c, s), n in sorted(
                Counter((t.question.category or "unknown", bool(t.question.requires_search)) for t in kept).items()
            )
        },
        "tool_patterns": dict(Counter(tool_pattern(t) for t in kept).most_common()),
        "turns_histogram": dict(sorted(Counter(t.turns for t in kept).items())),
    }


def render_stats(stats: dict[str, Any]) -> str:
    """The stats report as Markdown."""
    lines = [
        "# Data build",
        "",
        f"- questions run by the teacher: {stats['questions']}",
        f"- qualified (valid, under the turn limit, judged right): {stats['qualified']} ({stats['teacher_accuracy']}%)",
        f"- kept after balanced sampling: {stats['kept']}",
        f"- search-required share of kept: {stats['search_required_share']['kept']}% "
        f"(target {stats['search_required_share']['target']}%)",
        "",
    ]
    for title, key in (
        ("Drop reasons", "drop_reasons"),
        ("Per category", "per_category"),
        ("Per category and search need", "per_category_and_search"),
        ("Tool patterns", "tool_patterns"),
        ("Turns", "turns_histogram"),
    ):
        lines += [f"## {title}", "", "| | count |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in stats[key].items()] or ["| (none) | 0 |"]
        lines.append("")
    return "\n".join(lines)

"""The evaluation harness: questions + a model + a mode -> judged trajectories and a report. Resumable: each
trajectory is appended to ``trajectories.jsonl`` as it ends, and a re-run skips the ids already there."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deepmmsearch.errors import ConfigError
from deepmmsearch.eval.judges import ALL_METRICS, JudgeResult, get_judge
from deepmmsearch.eval.loaders import BenchmarkSet, check_images, stratified_sample
from deepmmsearch.eval.metrics import summarize
from deepmmsearch.eval.modes import MODES, PLANS
from deepmmsearch.eval.report import PriceTable, build_report, write_report
from deepmmsearch.policies import Policy
from deepmmsearch.records import Question, Trajectory, append_jsonl, read_jsonl, trim_torn_tail

TRAJECTORIES = "trajectories.jsonl"


@dataclass
class EvalConfig:
    """What an evaluation run does besides running the agent."""

    mode: str = field(default="agent", metadata={"help": f"one of {', '.join(MODES)}"})
    metric: str = field(default="rule", metadata={"help": f"one of {', '.join(ALL_METRICS)}"})
    limit: int | None = field(
        default=None, metadata={"help": "evaluate N questions drawn with a fixed seed, stratified over splits"}
    )
    seed: int = field(default=0, metadata={"help": "the seed of the --limit draw"})
    judge_model: str | None = field(default=None, metadata={"help": "MODEL[@BASE_URL] of the llm judge"})
    prices: str | None = field(default=None, metadata={"help": "YAML price table for the cost estimate"})
    plots: bool = field(default=True, metadata={"help": "write PNG plots next to the report"})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; known: {', '.join(MODES)}")
        if self.metric not in ALL_METRICS:
            raise ConfigError(f"unknown metric {self.metric!r}; known: {', '.join(ALL_METRICS)}")
        if self.metric == "llm" and not self.judge_model:
            raise ConfigError("the llm metric needs a judge model: pass --judge-model MODEL[@BASE_URL]")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be at least 1, got {self.limit}")


class Scorer:
    """One interface over sync judges and the async llm judge."""

    def __init__(self, metric: str, judge_model: str | None = None, cache_path: str | Path | None = None) -> None:
        self.metric = metric
        self.llm = None
        if metric == "llm":
            from deepmmsearch.eval.llm_judge import LLMJudge

            if not judge_model:
                raise ConfigError("the llm metric needs a judge model: pass --judge-model MODEL[@BASE_URL]")
            self.llm = LLMJudge.from_spec(judge_model, cache_path)
            self.sync = None
        else:
            self.sync = get_judge(metric)

    async def judge(self, prediction: str | None, question: Question) -> JudgeResult:
        if self.llm is not None:
            return await self.llm.judge(prediction, question)
        assert self.sync is not None
        return self.sync(prediction, question)

    async def aclose(self) -> None:
        if self.llm is not None:
            await self.llm.aclose()


def load_done(path: Path) -> dict[str, Trajectory]:
    """The trajectories already written by an earlier run, by question id (the last one wins)."""
    if not path.is_file():
        return {}
    trim_torn_tail(path)
    return {t.question.id: t for t in (Trajectory.from_dict(d) for d in read_jsonl(path))}


async def evaluate(
    questions: Sequence[Question],
    model: str | Policy,
    out_dir: str | Path,
    config: EvalConfig | None = None,
    run_config: Any = None,
    on_done: Callable[[Trajectory], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    source: BenchmarkSet | None = None,
) -> dict[str, Any]:
    """Run, judge and report. ``on_start(total, already_done)`` and ``on_done(trajectory)`` drive a progress bar.
    ``source``, the benchmark the questions came from, says where images were looked for and goes into the report.
    Every local image is checked before the first episode: a missing one is an error, never an ``input_error`` run."""
    from deepmmsearch.runner import RunConfig, build_agent

    config = config or EvalConfig()
    run_config = run_config or RunConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / TRAJECTORIES
    questions = stratified_sample(questions, config.limit, config.seed) if config.limit else list(questions)
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise ConfigError("question ids must be unique for a resumable evaluation")
    done = load_done(path)
    todo = [q for q in questions if q.id not in done]
    check_images(todo, source.where() if source else "the image paths of the question records")
    if on_start is not None:
        on_start(len(questions), len(questions) - len(todo))
    scorer = Scorer(config.metric, config.judge_model, out / "judge_cache.jsonl")

    def finished(trajectory: Trajectory) -> None:
        if scorer.sync is not None:  # judged on the spot, so the file holds verdicts; the llm judge runs at the end
            verdict = scorer.sync(trajectory.answer, trajectory.question)
            trajectory.correct, trajectory.score = verdict.correct, verdict.score
        append_jsonl(path, [trajectory.to_dict()])
        if on_done is not None:
            on_done(trajectory)

    if todo:
        agent = build_agent(model, run_config, PLANS[config.mode], todo)
        try:
            for trajectory in await agent.run_many(todo, on_done=finished):
                done[trajectory.question.id] = trajectory
        finally:
            await agent.policy.aclose()
    trajectories = [done[q.id] for q in questions]
    fallbacks = 0
    try:
        for trajectory in trajectories:
            verdict = await scorer.judge(trajectory.answer, trajectory.question)
            trajectory.correct, trajectory.score = verdict.correct, verdict.score
            fallbacks += "llm judge" in verdict.detail  # the llm judge failed and the rule judge decided
    finally:
        await scorer.aclose()
    model_name = model.name if isinstance(model, Policy) else model
    report = build_report(trajectories, config.metric, config.mode, model_name, PriceTable.load(config.prices))
    report["judge"] = {"metric": config.metric, "model": config.judge_model, "rule_fallbacks": fallbacks}
    if source is not None:
        report["benchmark"] = {
            **source.summary(),
            "evaluated": len(questions),
            "limit": config.limit,
            "seed": config.seed,
        }
    write_report(report, trajectories, out, plots=config.plots)
    return report


async def score_records(records: list[dict], metric: str, judge_model: str | None = None) -> dict[str, Any]:
    """Judge scored-prediction records (a question record plus ``prediction``): the ``dmms score`` result. A record
    needs no ``image``: scoring never opens it."""
    scorer = Scorer(metric, judge_model)  # an unknown metric is a ConfigError here
    items = []
    try:
        for record in records:
            question = Question.from_dict({"image": "", **record})
            prediction = record.get("prediction")
            if prediction is not None and not isinstance(prediction, str):
                prediction = str(prediction)
            verdict = await scorer.judge(prediction, question)
            items.append(
                {
                    "id": question.id,
                    "prediction": prediction,
                    "question_type": question.question_type,
                    "category": question.category,
                    "split": question.split,
                    **({"difficult_direct_answer": True} if question.extra.get("difficult_direct_answer") else {}),
                    **asdict(verdict),
                }
            )
    finally:
        await scorer.aclose()
    return {**summarize(items, metric), "items": items}

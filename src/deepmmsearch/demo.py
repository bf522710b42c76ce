"""``dmms demo``: the whole pipeline on the offline world, in one command, on a CPU.

Stages, in order, each written to its own folder under ``out`` and skipped on a re-run once finished:

    world/       the offline world and its knowledge base
    data/        SFT data: the oracle teacher's episodes, filtered and balanced
    model-init/  the student: a released language model (SmolLM2-135M-Instruct by default) inside a Qwen2.5-VL
                 with a new vision tower (``dmms model init --lm``)
    align/       vision alignment: the tower learns the world's captioned pictures, then the LM to read it
    sft/         SFT cold start (TRL SFTTrainer, LoRA on every language-model block, vision frozen)
    grpo/        online GRPO from the SFT model, rollouts through the real tools
    eval/        the test split under five systems, as the paper's Table 1 compares them
    run.yaml     the run config they were evaluated under: `dmms ask ... --config run.yaml` asks the same way
    report.md    the table, plots and sample trajectories
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from deepmmsearch.errors import DmmsError
from deepmmsearch.records import Trajectory, read_jsonl, read_questions

SKILLS = ("search_free", "image_search", "crop_search", "multi_hop", "refine")


@dataclass
class DemoConfig:
    """Sizes of the demo's stages; the recipe itself is the ready-made configs (:func:`recipe`). ``quick()`` gives
    the smoke-run sizes."""

    seed: int = field(default=0, metadata={"help": "seed of the world and of training"})
    lm: str = field(default="smollm2-135m-instruct", metadata={"help": "the student's language model"})
    entities: int = field(default=300, metadata={"help": "pictured entities of the world"})
    captions: int = field(default=3000, metadata={"help": "captioned pictures the world draws"})
    teacher_questions: int = field(default=1300, metadata={"help": "train questions the teacher plays (all 1,261)"})
    data_size: int = field(default=600, metadata={"help": "SFT conversations kept"})
    prompts: str = field(default="short", metadata={"help": "prompt style of the data, so of the trained models"})
    align_pictures: int = field(default=1200, metadata={"help": "captioned pictures vision alignment learns on"})
    tower_steps: int = field(default=2000, metadata={"help": "steps of 64 pictures in alignment's tower stage"})
    grpo_steps: int = field(default=6, metadata={"help": "GRPO optimizer steps"})
    grpo_questions: int = field(default=20, metadata={"help": "search questions GRPO rolls out on, each many times"})
    grpo_questions_per_step: int = field(default=2, metadata={"help": "questions per GRPO step"})
    grpo_group: int = field(default=4, metadata={"help": "GRPO rollouts per question"})
    # Two rollouts per forward pass: eight of ~1,000 tokens with a 49k-token vocabulary do not fit in 24 GiB.
    grpo_batch: int = field(default=2, metadata={"help": "GRPO rollouts per forward pass"})
    test_questions: int = field(default=240, metadata={"help": "test questions each system answers"})
    eval_workers: int = field(default=2, metadata={"help": "systems evaluated at once, each in a process of its own"})

    @classmethod
    def quick(cls, seed: int = 0, **changes: Any) -> DemoConfig:
        return cls(
            **changes,
            seed=seed,
            entities=36,
            captions=300,
            teacher_questions=160,
            data_size=24,
            align_pictures=32,
            tower_steps=20,
            grpo_steps=2,
            grpo_questions_per_step=1,
            grpo_group=2,
            test_questions=20,
        )


@dataclass
class System:
    """One row of the table: a name, the model it runs and how."""

    name: str
    model: str
    mode: str
    detail: str


def run_demo(out: str | Path, config: DemoConfig, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage not yet finished, then evaluate and write the report; returns the results table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings_path = out / "timings.json"
    timings: dict[str, float] = json.loads(timings_path.read_text()) if timings_path.exists() else {}

    def stage(name: str, done: Callable[[], bool], work: Callable[[], Any]) -> None:
        if done():
            say(f"[{name}] already done, reusing {out / name}")
            return
        say(f"[{name}] ...")
        start = time.perf_counter()
        work()
        timings[name] = round(time.perf_counter() - start, 1)
        timings_path.write_text(json.dumps(timings, indent=2))
        say(f"[{name}] done in {timings[name]:.0f} s")

    if not (out / "model-init" / "config.json").is_file():
        from deepmmsearch.models.graft import resolve_lm

        resolve_lm(config.lm, say)  # a bad --lm fails now, not after the world and data stages
    world, data = out / "world", out / "data"
    stage("world", lambda: (world / "kb" / "manifest.json").is_file(), lambda: _build_world(world, config))
    stage("data", lambda: (data / "stats.json").is_file(), lambda: _build_data(world, data, config))
    stage(
        "model-init",
        lambda: (out / "model-init" / "config.json").is_file(),
        lambda: _in_fresh_process(_init_model, out / "model-init", config),
    )
    for name in RECIPES:  # align, sft, grpo
        stage(name, lambda n=name: (out / n / "final" / "config.json").is_file(), lambda n=name: _train(out, config, n))
    sft, rl, base = f"hf:{out / 'sft' / 'final'}", f"hf:{out / 'grpo' / 'final'}", f"hf:{out / 'align' / 'final'}"
    # The baselines run the aligned student before SFT, as the paper runs the released instruction-tuned model.
    baselines = [
        System("Direct answer", base, "direct", "the aligned student before SFT, no tools"),
        System("RAG workflow", base, "rag", "the aligned student reads one image search and one text search"),
        System("Prompt agent", base, "prompt_agent", "the aligned student before SFT under the agent protocol"),
    ]
    systems = [
        *baselines,
        System("Agent, SFT", sft, "agent", "the agent after SFT"),
        System("Agent, SFT + RL", rl, "agent", "the agent after SFT then GRPO"),
    ]
    folders = [out / "eval" / f"{index}-{system.mode}" for index, system in enumerate(systems)]
    todo = [(s, f) for s, f in zip(systems, folders, strict=True) if not (f / "report.json").is_file()]
    stage("eval", lambda: not todo, lambda: _evaluate_all(world, todo, config))
    _write_run_config(out / "run.yaml", _eval_run_config(world.resolve()))
    table = results_table(out, systems)
    write_demo_report(out, table, timings)
    return {"table": table, "timings": timings}


# ---------------------------------------------------------------------------------------------- stages


def _build_world(world: Path, config: DemoConfig) -> None:
    from deepmmsearch.progress import progress_bars
    from deepmmsearch.world.build import WorldConfig, build_world, index_world

    with progress_bars() as bars:
        build_world(
            world,
            WorldConfig(seed=config.seed, entities=config.entities, captions=config.captions),
            lambda part, done, total: bars.update(f"world: {part}", completed=done, total=total),
        )
    index_world(world)


RECIPES = {"align": "align-smollm2-cpu", "sft": "sft-smollm2-cpu", "grpo": "grpo-smollm2-cpu"}
NO_CHECKPOINTS = 10_000  # save_steps past every stage's end: the demo keeps only final/, a stage cut short runs anew


def recipe(stage: str, overrides: dict[str, Any] | None = None) -> Any:
    """The training config of ``stage`` (align, sft or grpo) as ``configs/<name>.yaml`` states it, with
    ``overrides`` nested like the YAML. The configs ship inside the package (``deepmmsearch/configs`` is the
    repository's ``configs/``), so a wheel finds them as a clone does."""
    from importlib.resources import files

    from deepmmsearch.config import load_config
    from deepmmsearch.train.config import TrainAlignConfig, TrainGRPOConfig, TrainSFTConfig

    classes = {"align": TrainAlignConfig, "sft": TrainSFTConfig, "grpo": TrainGRPOConfig}
    path = files("deepmmsearch") / "configs" / f"{RECIPES[stage]}.yaml"
    return load_config(classes[stage], str(path), overrides)


def _tool_paths(world: Path) -> dict[str, str]:
    # One tool cache per demo folder: re-runs and the five evaluations replay searches for free.
    return {"kb": str(world / "kb"), "cache_path": str(world.parent / "tools.sqlite")}


def _run_config(world: Path) -> Any:
    """The GRPO recipe's tools (its hits per search) on the world's knowledge base: the data is built, the agent
    trained and every system evaluated with the same tools."""
    from deepmmsearch.runner import RunConfig

    return RunConfig(tools=recipe("grpo", {"tools": _tool_paths(world)}).tools)


def _eval_run_config(world: Path) -> Any:
    run_config = _run_config(world)
    # The reply length GRPO trains with: the student's replies are short, and a runaway one stops sooner.
    run_config.sampling.max_new_tokens = recipe("grpo").sampling.max_new_tokens
    # Greedy decoding repeats an invalid reply: no episode recovered after one (0 of 112 retried, seed 0).
    run_config.agent.rules = replace(run_config.agent.rules, max_consecutive_errors=1)
    return run_config


def _write_run_config(path: Path, run_config: Any) -> None:
    import yaml

    path.write_text(yaml.safe_dump(asdict(run_config), sort_keys=False))


def _build_data(world: Path, data: Path, config: DemoConfig) -> None:
    import asyncio

    from deepmmsearch.data.build import DataBuildConfig, build_data
    from deepmmsearch.progress import progress_bars

    questions = read_questions(world / "questions" / "train.jsonl")[: config.teacher_questions]
    run_config = _run_config(world)
    run_config.agent.prompts = config.prompts  # SFT saves it beside the model; GRPO, eval and `dmms ask` read it there
    with progress_bars() as bars:
        asyncio.run(
            build_data(
                questions,
                "oracle",
                data,
                DataBuildConfig(size=config.data_size, seed=config.seed),
                run_config,
                *bars.counter("data: teacher episodes"),
            )
        )


def _init_model(out: Path, config: DemoConfig) -> None:
    from deepmmsearch.models.graft import graft

    graft(out, config.lm, vision="tiny", seed=config.seed)


def stage_configs(out: Path, config: DemoConfig) -> dict[str, Any]:
    """The align, SFT and GRPO configs the demo trains with: the ready-made recipes, given the demo's folders, seed
    and sizes, and no intermediate checkpoints."""
    world = out / "world"
    folders = {
        "align": {"model": out / "model-init", "captions": world / "captions.jsonl", "out": out / "align"},
        "sft": {"model": out / "align" / "final", "data": out / "data", "out": out / "sft"},
        "grpo": {"model": out / "sft" / "final", "questions": world / "questions" / "train.jsonl", "out": out / "grpo"},
    }
    sizes: dict[str, dict[str, Any]] = {
        "align": {"rows": config.align_pictures, "tower_steps": config.tower_steps},
        "sft": {},
        "grpo": {
            "num_generations": config.grpo_group,
            "questions_per_step": config.grpo_questions_per_step,
            "limit": config.grpo_questions,
            "tools": _tool_paths(world),
            "schedule": {"per_device_batch_size": config.grpo_batch, "max_steps": config.grpo_steps},
        },
    }
    configs = {}
    for stage in RECIPES:
        schedule = {"seed": config.seed, "save_steps": NO_CHECKPOINTS, **sizes[stage].pop("schedule", {})}
        paths = {key: str(path) for key, path in folders[stage].items()}
        configs[stage] = recipe(stage, {**paths, **sizes[stage], "schedule": schedule})
    return configs


def _train(out: Path, config: DemoConfig, stage: str) -> None:
    from deepmmsearch.train.align import train_align
    from deepmmsearch.train.grpo import train_grpo
    from deepmmsearch.train.sft import train_sft

    train = {"align": train_align, "sft": train_sft, "grpo": train_grpo}[stage]
    _in_fresh_process(train, stage_configs(out, config)[stage])


def _in_fresh_process(function: Callable[..., Any], *args: Any) -> None:
    """Run a stage that loads a model in a process of its own. Loading several models, training them and running
    the search engine in one process left global state behind (seen: a later model load came up with meta
    tensors, and a model built after the data stage saved its tied output head untied); a fresh process also frees
    each stage's memory when it ends."""
    import multiprocessing

    process = multiprocessing.get_context("spawn").Process(target=function, args=args)
    process.start()
    process.join()
    if process.exitcode != 0:
        raise DmmsError(f"{function.__name__} failed (exit code {process.exitcode}); its error is printed above")


def _evaluate_all(world: Path, jobs: list[tuple[System, Path]], config: DemoConfig) -> None:
    """Evaluate each (system, folder), ``config.eval_workers`` at a time, each in a fresh process (as
    :func:`_in_fresh_process`), under one display of bars that the processes feed through a queue: two displays
    drawn by two processes at once would garble the terminal."""
    import contextlib
    import multiprocessing
    import os
    import queue

    from deepmmsearch.progress import progress_bars

    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    workers = max(1, config.eval_workers)
    threads = max(1, (os.cpu_count() or 1) // workers)  # the cores shared out, not oversubscribed
    waiting, running = list(jobs), {}
    with progress_bars() as bars:
        try:
            while waiting or running:
                while waiting and len(running) < workers:
                    system, folder = waiting.pop(0)
                    args = (world, system, folder, config, events, threads)
                    running[system.name] = context.Process(target=_evaluate, args=args)
                    running[system.name].start()
                with contextlib.suppress(queue.Empty):
                    name, fields = events.get(timeout=0.5)
                    bars.update(f"eval: {name}", **fields)
                for name, process in list(running.items()):
                    if process.exitcode is None:
                        continue
                    del running[name]
                    if process.exitcode != 0:
                        raise DmmsError(f"evaluating {name} failed (exit code {process.exitcode}); see above")
            with contextlib.suppress(queue.Empty):  # the last updates of processes that have ended
                while True:
                    name, fields = events.get_nowait()
                    bars.update(f"eval: {name}", **fields)
        finally:
            for process in running.values():
                process.terminate()


def _evaluate(world: Path, system: System, folder: Path, config: DemoConfig, events: Any, threads: int) -> None:
    import asyncio

    import torch

    from deepmmsearch.eval.harness import EvalConfig, evaluate

    torch.set_num_threads(threads)
    run_config = _eval_run_config(world)
    questions = read_questions(world / "questions" / "test.jsonl")[: config.test_questions]
    asyncio.run(
        evaluate(
            questions,
            system.model,
            folder,
            EvalConfig(mode=system.mode, plots=False),
            run_config,
            on_done=lambda _: events.put((system.name, {"advance": 1})),
            on_start=lambda total, done: events.put((system.name, {"completed": done, "total": total})),
        )
    )


# ---------------------------------------------------------------------------------------------- results


def results_table(out: Path, systems: list[System]) -> list[dict[str, Any]]:
    """Accuracy per skill and overall, on the unseen-entity split, and tool use, for each system."""
    rows = []
    for index, system in enumerate(systems):
        path = out / "eval" / f"{index}-{system.mode}" / "trajectories.jsonl"
        trajectories = [Trajectory.from_dict(d) for d in read_jsonl(path)]
        row: dict[str, Any] = {"system": system.name, "detail": system.detail}
        row["overall"] = _accuracy(trajectories)
        for skill in SKILLS:
            row[skill] = _accuracy([t for t in trajectories if t.question.extra.get("skill") == skill])
        row["unseen_entity"] = _accuracy([t for t in trajectories if t.question.split == "unseen_entity"])
        row["tool_calls"] = round(sum(t.num_tool_calls for t in trajectories) / max(1, len(trajectories)), 2)
        free = [t for t in trajectories if not t.question.requires_search]
        row["tool_calls_search_free"] = round(sum(t.num_tool_calls for t in free) / max(1, len(free)), 2)
        rows.append(row)
    return rows


def _accuracy(trajectories: list[Trajectory]) -> float | None:
    if not trajectories:
        return None
    return round(100 * sum(bool(t.correct) for t in trajectories) / len(trajectories), 1)


# Short titles, so that the table fits a terminal; the report spells them out below it.
COLUMNS = (
    ("overall", "All"),
    ("search_free", "Free"),
    ("image_search", "Image"),
    ("crop_search", "Crop"),
    ("multi_hop", "Hop"),
    ("refine", "Refine"),
    ("unseen_entity", "Unseen"),
    ("tool_calls", "Calls/q"),
    ("tool_calls_search_free", "Calls/q free"),
)
COLUMN_LEGEND = (
    "All: the whole test split; Free, Image, Crop, Hop, Refine: questions answerable from the picture, needing a "
    "whole-image search, a crop-then-search, a multi-hop text search, a refined query; Unseen: questions about "
    "entities never seen in training; Calls/q: tool calls per question (free: on search-free questions)."
)


def table_markdown(table: list[dict[str, Any]]) -> str:
    """The results as a Markdown table in the style of the paper's Table 1."""
    header = "| System | " + " | ".join(title for _, title in COLUMNS) + " |"
    lines = [header, "|---" * (len(COLUMNS) + 1) + "|"]
    for row in table:
        cells = ["—" if row[key] is None else f"{row[key]:g}" for key, _ in COLUMNS]
        lines.append(f"| {row['system']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_for_terminal(table: list[dict[str, Any]], title: str) -> Any:
    """The results as a rich table that fits an 80-column terminal: no vertical rules, one space between
    columns, long headers wrapped at their space, system names never cut."""
    from rich import box
    from rich.table import Table

    terminal = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    terminal.add_column("System", no_wrap=True)
    for _, header in COLUMNS:
        terminal.add_column(header, justify="right")
    for row in table:
        terminal.add_row(row["system"], *("—" if row[key] is None else f"{row[key]:g}" for key, _ in COLUMNS))
    return terminal


def write_demo_report(out: Path, table: list[dict[str, Any]], timings: dict[str, float]) -> Path:
    """``report.md`` (table, stage times, a plot, sample trajectories) and ``results.json``."""
    (out / "results.json").write_text(json.dumps({"table": table, "timings": timings}, indent=2))
    plot = _plot(out, table)
    lines = [
        "# dmms demo",
        "",
        "Accuracy (%) on the offline world's test split, judged by the rule judge.",
        "",
        table_markdown(table),
        "",
        "## Stage times (s)",
        "",
        "| stage | seconds |",
        "|---|---|",
    ]
    lines += [f"| {name} | {seconds:g} |" for name, seconds in timings.items()]
    lines += ["", f"![accuracy per system]({plot.name})", ""]
    lines += grpo_curve_markdown(out / "grpo")
    lines += ["## Sample trajectories (agent after SFT + RL)", ""]
    rl = sorted((out / "eval").glob("4-*/trajectories.jsonl"))
    samples = [Trajectory.from_dict(d) for d in read_jsonl(rl[0])] if rl else []
    for skill in SKILLS:
        example = next((t for t in samples if t.question.extra.get("skill") == skill), None)
        if example is not None:
            lines += _render_trajectory(example)
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def grpo_curve_markdown(run: Path, window: int = 10) -> list[str]:
    """GRPO's training curve from its metrics log, as the means of each ``window`` steps."""
    from deepmmsearch.train.common import read_metrics

    steps = [r for r in read_metrics(run) if "reward" in r]
    if not steps:
        return []
    lines = [
        "## GRPO, mean per window of steps",
        "",
        "| steps | reward | accuracy | format errors | KL |",
        "|---|---|---|---|---|",
    ]
    for start in range(0, len(steps), window):
        part = steps[start : start + window]
        keys = ("reward", "rollout/accuracy", "rollout/format_error_rate", "kl")
        mean = {key: sum(r.get(key, 0.0) for r in part) / len(part) for key in keys}
        lines.append(
            f"| {part[0]['step']}-{part[-1]['step']} | {mean['reward']:.3f} | {mean['rollout/accuracy']:.3f} "
            f"| {mean['rollout/format_error_rate']:.3f} | {mean['kl']:.4f} |"
        )
    return [*lines, ""]


def _render_trajectory(t: Trajectory) -> list[str]:
    verdict = "correct" if t.correct else "wrong"
    lines = [
        f"### {t.question.extra.get('skill')}: {t.question.question}",
        "",
        f"Gold: {', '.join(t.question.answers)} · answer: {t.answer} ({verdict}) · stop: {t.stop_reason}",
        "",
        "```",
    ]
    for message in t.messages[2:]:
        text = message.text if message.role == "assistant" else message.text.split("\n\n")[0]
        lines.append(f"{message.role}: {text.strip()[:500]}")
    return [*lines, "```", ""]


def _plot(out: Path, table: list[dict[str, Any]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.6))
    names = [row["system"] for row in table]
    ax.barh(names[::-1], [row["overall"] or 0 for row in table][::-1], color="#3a6ea5")
    ax.set_xlim(0, 100)
    ax.set_xlabel("accuracy on the test split (%)")
    fig.tight_layout()
    path = out / "accuracy.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

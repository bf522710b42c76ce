"""``dmms eval`` and ``dmms score``: run a model over a question set and report; judge given predictions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from deepmmsearch.cli.app import JsonOpt, ModelOpt, app, progress_callbacks, user_errors
from deepmmsearch.cli.flags import config_flags
from deepmmsearch.eval.harness import EvalConfig
from deepmmsearch.runner import RunConfig


@app.command("eval")
@user_errors
@config_flags(RunConfig, "run", yaml=True)
@config_flags(EvalConfig, "eval_config")
def eval_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (trajectories, report, plots).")],
    eval_config: EvalConfig,
    run: RunConfig,
    questions: Annotated[Path | None, typer.Option("--questions", "-q", help="Question records (JSONL).")] = None,
    benchmark: Annotated[str | None, typer.Option("--benchmark", help="A benchmark read from --data-dir.")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Folder with the benchmark's files.")] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="The benchmark's split or language (dmms benchmarks lists them).")
    ] = None,
    version: Annotated[str | None, typer.Option("--version", help="The benchmark's version (default: newest).")] = None,
    image_root: Annotated[
        list[Path] | None,
        typer.Option("--image-root", help="Folder holding the benchmark's images (repeatable); searched first."),
    ] = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a model on questions; resumable (finished ids in OUT/trajectories.jsonl are skipped)."""
    from deepmmsearch.eval.harness import evaluate
    from deepmmsearch.eval.loaders import load_benchmark_set
    from deepmmsearch.records import read_questions

    if not model:
        raise typer.BadParameter("give a model SPEC, e.g. --model openai:gpt-4o", param_hint="--model")
    if (questions is None) == (benchmark is None):
        raise typer.BadParameter("give either --questions FILE or --benchmark NAME --data-dir DIR")
    if benchmark is not None and data_dir is None:
        raise typer.BadParameter("--benchmark needs --data-dir DIR", param_hint="--data-dir")
    if benchmark is None and (split or version or image_root):
        raise typer.BadParameter("--split, --version and --image-root choose within a --benchmark")
    source = None
    if questions is not None:
        records = read_questions(questions)
    else:
        source = load_benchmark_set(
            benchmark or "", data_dir or "", split=split, version=version, image_roots=image_root or ()
        )
        records = source.questions
        left_out = ", ".join(f"{n} {reason}" for reason, n in source.left_out.items())
        chosen = " ".join(f"{k} {v}" for k, v in (("split", source.split), ("version", source.version)) if v)
        typer.echo(
            f"{source.name} {chosen}: {len(records)} questions" + (f" (left out: {left_out})" if left_out else ""),
            err=True,
        )
    with progress_callbacks(f"eval {eval_config.mode}") as (on_start, on_done):
        report = asyncio.run(
            evaluate(records, model, out, eval_config, run, on_done=on_done, on_start=on_start, source=source)
        )
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    acc, tools = report["accuracy"], report["tool_use"]
    typer.echo(
        f"{report['mode']} · {report['model']} · {acc['metric']}: {acc['score']:.2f} "
        f"(95% {acc['ci95'][0]:.2f}-{acc['ci95'][1]:.2f}, n={acc['n']}) · tools on {tools['share_with_tools']:.1f}% "
        f"· {tools['mean_calls']:.2f} calls/question · report: {out / 'report.md'}"
    )


@app.command("benchmarks")
@user_errors
def benchmarks_command(as_json: JsonOpt = False) -> None:
    """List the benchmarks --benchmark reads: where to download each, the layout expected and the metric used."""
    from dataclasses import asdict

    from deepmmsearch.eval.loaders import BENCHMARKS

    rows = [{k: v for k, v in asdict(b).items() if k != "load"} for b in BENCHMARKS.values()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for row in rows:
        typer.echo(row["name"])
        typer.echo(f"  download: {row['source']}")
        typer.echo(f"  files:    {row['files']}")
        if row["images"]:
            typer.echo(f"  images:   {row['images']}")
        typer.echo(f"  metric:   {row['metric']} (closest: --metric {row['judge']})")
        for key in ("splits", "versions"):
            if row[key]:
                typer.echo(f"  {key + ':':9} {', '.join(row[key])} (default {row[key][0]})")


@app.command("score")
@user_errors
@config_flags(EvalConfig, "scoring", only=("metric", "judge_model"))
def score_command(
    predictions: Annotated[Path, typer.Argument(help="Question records with a `prediction` field (JSONL).")],
    scoring: EvalConfig,
    as_json: JsonOpt = False,
) -> None:
    """Judge predictions: prints the score (0-100) and its breakdown; --json prints every item too."""
    from deepmmsearch.eval.harness import score_records
    from deepmmsearch.records import read_jsonl

    metric = scoring.metric
    result = asyncio.run(score_records(list(read_jsonl(predictions)), metric, scoring.judge_model))
    if as_json:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    typer.echo(
        f"{metric}: {result['score']:.2f} (95% {result['ci95'][0]:.2f}-{result['ci95'][1]:.2f}, "
        f"{result['correct']}/{result['n']} correct)"
    )
    for key in ("by_question_type", "by_category", "by_split"):
        for name, group in result[key].items():
            typer.echo(f"  {key.removeprefix('by_')} {name}: {group['score']:.2f} (n={group['n']})")
    if "unseen_question_score" in result:
        uq, ue = result["unseen_question_score"], result["unseen_entity_score"]
        typer.echo(f"  unseen_question {uq:.2f}, unseen_entity {ue:.2f} (score is their harmonic mean)")
    for reason, count in result.get("left_out", {}).items():
        typer.echo(f"  left out: {count} question(s) marked {reason}, as the official evaluation does")

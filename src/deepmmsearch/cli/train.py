"""``dmms train align|sft|grpo``: vision alignment of a student around a released LM, the SFT cold start and
online GRPO, from a YAML config that flags override.

Run under ``accelerate launch`` (configs/accelerate/) for several devices or nodes; a plain ``dmms train`` is
one process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from deepmmsearch.cli.app import JsonOpt, KbOpt, app, user_errors

train_app = typer.Typer(
    help="Train a policy: vision alignment of a new tower, SFT cold start, then online GRPO.",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")

TrainConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML training config (flags override).")]
ModelDirOpt = Annotated[str | None, typer.Option("--model", help="Model folder to start from.")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (checkpoints, logs, final/).")]
MaxStepsOpt = Annotated[int | None, typer.Option("--max-steps", help="Stop after this many optimizer steps.")]
EpochsOpt = Annotated[float | None, typer.Option("--epochs", help="Passes over the data.")]
LrOpt = Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")]
LoraOpt = Annotated[bool | None, typer.Option("--lora/--full", help="LoRA adapters, or full fine-tuning of the LM.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="Use the first N examples only.")]
SaveStepsOpt = Annotated[int | None, typer.Option("--save-steps", help="Checkpoint every N optimizer steps.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue from the run folder's last checkpoint.")]


def _emit(summary: dict[str, Any], as_json: bool, what: str) -> None:
    import os

    if int(os.environ.get("RANK", "0")) != 0:  # one report per run, not per process
        return
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    resumed = f" (resumed from {summary['resumed_from']})" if summary.get("resumed_from") else ""
    typer.echo(f"{what}: {summary['steps']} steps in {summary['wall_s']} s{resumed} · model: {summary['final']}")


def _common_overrides(model: str | None, out: Path | None, **rest: Any) -> dict[str, Any]:
    overrides = {"model": model, "out": str(out) if out else None, **rest}
    return {k: v for k, v in overrides.items() if v is not None}


CaptionsOpt = Annotated[
    Path | None,
    typer.Option("--captions", help="JSON Lines of image, caption (`dmms world build` writes W/captions.jsonl)."),
]


@train_app.command("align")
@user_errors
def align(
    config: TrainConfigOpt = None,
    model: ModelDirOpt = None,
    captions: CaptionsOpt = None,
    out: OutOpt = None,
    rows: Annotated[
        int | None, typer.Option("--rows", help="Reading stage: the first N captioned pictures only.")
    ] = None,
    tower_steps: Annotated[
        int | None, typer.Option("--tower-steps", help="Steps of the tower's own stage (0: skip it).")
    ] = None,
    epochs: EpochsOpt = None,
    max_steps: MaxStepsOpt = None,
    lr: LrOpt = None,
    save_steps: SaveStepsOpt = None,
    resume: ResumeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Vision alignment of a `dmms model init --lm` student on captioned pictures: its new vision tower learns to
    name them in the language model's own embeddings, then the language model learns to read it (LoRA, merged)."""
    from deepmmsearch.config import load_config
    from deepmmsearch.train.align import train_align
    from deepmmsearch.train.config import TrainAlignConfig

    overrides = _common_overrides(
        model,
        out,
        captions=str(captions) if captions else None,
        rows=rows,
        tower_steps=tower_steps,
        epochs=epochs,
        max_steps=max_steps,
        learning_rate=lr,
        save_steps=save_steps,
    )
    summary = train_align(load_config(TrainAlignConfig, config, overrides), resume=resume)
    _emit(summary, as_json, "align")


@train_app.command("sft")
@user_errors
def sft(
    config: TrainConfigOpt = None,
    model: ModelDirOpt = None,
    data: Annotated[Path | None, typer.Option("--data", help="Output folder of `dmms data build`.")] = None,
    out: OutOpt = None,
    epochs: EpochsOpt = None,
    max_steps: MaxStepsOpt = None,
    lr: LrOpt = None,
    lora: LoraOpt = None,
    limit: LimitOpt = None,
    save_steps: SaveStepsOpt = None,
    resume: ResumeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Supervised cold start on `dmms data build` conversations; loss on the assistant's tokens only."""
    from deepmmsearch.config import load_config
    from deepmmsearch.train.config import TrainSFTConfig
    from deepmmsearch.train.sft import train_sft

    overrides = _common_overrides(
        model,
        out,
        data=str(data) if data else None,
        epochs=epochs,
        max_steps=max_steps,
        learning_rate=lr,
        limit=limit,
        save_steps=save_steps,
    )
    if lora is not None:
        overrides["lora.enabled"] = lora
    summary = train_sft(load_config(TrainSFTConfig, config, overrides), resume=resume)
    _emit(summary, as_json, "sft")


@train_app.command("grpo")
@user_errors
def grpo(
    config: TrainConfigOpt = None,
    model: ModelDirOpt = None,
    questions: Annotated[Path | None, typer.Option("--questions", "-q", help="Question records (JSONL).")] = None,
    out: OutOpt = None,
    kb: KbOpt = None,
    epochs: EpochsOpt = None,
    max_steps: MaxStepsOpt = None,
    lr: LrOpt = None,
    lora: LoraOpt = None,
    limit: LimitOpt = None,
    save_steps: SaveStepsOpt = None,
    num_generations: Annotated[int | None, typer.Option("--num-generations", help="Rollouts per question.")] = None,
    resume: ResumeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Online GRPO: rollouts run the agent loop with real tools; tool-result tokens carry no loss."""
    from deepmmsearch.config import load_config
    from deepmmsearch.train.config import TrainGRPOConfig
    from deepmmsearch.train.grpo import train_grpo

    overrides = _common_overrides(
        model,
        out,
        questions=str(questions) if questions else None,
        epochs=epochs,
        max_steps=max_steps,
        learning_rate=lr,
        limit=limit,
        save_steps=save_steps,
        num_generations=num_generations,
    )
    if kb is not None:
        overrides["tools.kb"] = str(kb)
    if lora is not None:
        overrides["lora.enabled"] = lora
    summary = train_grpo(load_config(TrainGRPOConfig, config, overrides), resume=resume)
    _emit(summary, as_json, "grpo")

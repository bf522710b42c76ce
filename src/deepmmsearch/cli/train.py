"""``dmms train align|sft|grpo``: vision alignment of a student around a released LM, the SFT cold start and
online GRPO, from a YAML config that flags override.

Run under ``accelerate launch`` (configs/accelerate/) for several devices or nodes; a plain ``dmms train`` is
one process.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from deepmmsearch.cli.app import JsonOpt, app, user_errors
from deepmmsearch.cli.flags import config_flags
from deepmmsearch.train.config import TrainAlignConfig, TrainGRPOConfig, TrainSFTConfig

train_app = typer.Typer(
    help="Train a policy: vision alignment of a new tower, SFT cold start, then online GRPO.",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")

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


@train_app.command("align")
@user_errors
@config_flags(TrainAlignConfig, "config", yaml=True)
def align(config: TrainAlignConfig, resume: ResumeOpt = False, as_json: JsonOpt = False) -> None:
    """Vision alignment of a `dmms model init --lm` student on captioned pictures: its new vision tower learns to
    name them in the language model's own embeddings, then the language model learns to read it (LoRA, merged)."""
    from deepmmsearch.train.align import train_align

    _emit(train_align(config, resume=resume), as_json, "align")


@train_app.command("sft")
@user_errors
@config_flags(TrainSFTConfig, "config", yaml=True)
def sft(config: TrainSFTConfig, resume: ResumeOpt = False, as_json: JsonOpt = False) -> None:
    """Supervised cold start on `dmms data build` conversations; loss on the assistant's tokens only."""
    from deepmmsearch.train.sft import train_sft

    _emit(train_sft(config, resume=resume), as_json, "sft")


@train_app.command("grpo")
@user_errors
@config_flags(TrainGRPOConfig, "config", yaml=True)
def grpo(config: TrainGRPOConfig, resume: ResumeOpt = False, as_json: JsonOpt = False) -> None:
    """Online GRPO: rollouts run the agent loop with real tools; tool-result tokens carry no loss."""
    from deepmmsearch.train.grpo import train_grpo

    _emit(train_grpo(config, resume=resume), as_json, "grpo")

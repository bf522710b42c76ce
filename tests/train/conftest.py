"""Training fixtures: SFT data from the oracle teacher on the small world, and a tiny small-vocabulary model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sft_data(small_world: Path, tmp_path_factory) -> Path:
    """`dmms data build` output for a slice of the small world's training questions (search-free and multi-turn)."""
    from deepmmsearch.data.build import DataBuildConfig, build_data
    from deepmmsearch.records import read_questions
    from deepmmsearch.runner import RunConfig
    from deepmmsearch.tools import ToolsConfig

    questions = read_questions(small_world / "questions" / "train.jsonl")[:24]
    out = tmp_path_factory.mktemp("sft-data")
    run_config = RunConfig(tools=ToolsConfig(kb=str(small_world / "kb"), no_cache=True))
    asyncio.run(build_data(questions, "oracle", out, DataBuildConfig(), run_config))
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from deepmmsearch.models.build import init_model

    return init_model(tmp_path_factory.mktemp("model") / "tiny", vocab="small", size="tiny")


@pytest.fixture(scope="session")
def grpo_config(tmp_path_factory) -> Path:
    # Tiny rollouts: short replies and episodes, 2 questions x 2 rollouts per step.
    path = tmp_path_factory.mktemp("cfg") / "grpo.yaml"
    path.write_text(
        "agent: {rules: {max_turns: 3, max_tool_calls: 2}}\n"
        "num_generations: 2\nquestions_per_step: 2\nsampling: {temperature: 1.0, max_new_tokens: 12}\n"
        "schedule: {per_device_batch_size: 2, learning_rate: 1.0e-3, warmup: 0, device: cpu, save_steps: 1, "
        "logging_steps: 1, seed: 3}\n"
    )
    return path

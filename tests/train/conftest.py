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

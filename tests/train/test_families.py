"""One SFT step (Qwen3-VL) and one GRPO step (Qwen3.5, the hybrid one, whose template TRL must render with our
switches) on tiny models; Qwen2.5-VL is trained throughout tests/train, and every family's forward, encoding and
rollout policy in tests/models/test_families.py. One family a step type keeps the suite fast."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from deepmmsearch.config import load_config
from deepmmsearch.models.build import init_model, load_model
from deepmmsearch.models.families import chat_template_for, get_family
from deepmmsearch.train.common import read_metrics
from deepmmsearch.train.config import TrainGRPOConfig, TrainSFTConfig

REPO = Path(__file__).resolve().parents[2]


def _trained_back(out: Path, arch: str) -> None:
    model, processor = load_model(out / "final", device="cpu")
    assert type(model).__name__ == get_family(arch).model_class
    assert processor.chat_template == chat_template_for(get_family(arch), None)


def test_the_qwen3_vl_8b_configs_load() -> None:
    for kind, config_class in (("sft", TrainSFTConfig), ("grpo", TrainGRPOConfig)):
        config = load_config(config_class, REPO / "configs" / f"{kind}-qwen3-vl-8b.yaml")
        assert config.schedule.dtype == "bfloat16" and config.out.endswith("qwen3-vl-8b")


@pytest.mark.parametrize("arch", ["qwen3-vl"])
def test_one_sft_step(arch: str, sft_data: Path, tmp_path: Path) -> None:
    from deepmmsearch.train.sft import train_sft

    model = init_model(tmp_path / "model", vocab="small", size="tiny", arch=arch)
    overrides = {
        "model": str(model),
        "data": str(sft_data),
        "out": str(tmp_path / "sft"),
        "global_batch_size": 2,
        "schedule": {"max_steps": 1, "per_device_batch_size": 2, "device": "cpu", "logging_steps": 1},
    }
    summary = train_sft(load_config(TrainSFTConfig, None, overrides))
    assert summary["steps"] == 1
    losses = [r["loss"] for r in read_metrics(tmp_path / "sft") if "loss" in r]
    assert losses and all(math.isfinite(loss) and loss > 0 for loss in losses)
    _trained_back(tmp_path / "sft", arch)


@pytest.mark.parametrize("arch", ["qwen3.5"])
def test_one_grpo_step(arch: str, small_world: Path, grpo_config: Path, tmp_path: Path) -> None:
    from deepmmsearch.train.grpo import train_grpo

    model = init_model(tmp_path / "model", vocab="small", size="tiny", arch=arch)
    overrides = {
        "model": str(model),
        "questions": str(small_world / "questions" / "train.jsonl"),
        "tools": {"kb": str(small_world / "kb")},
        "out": str(tmp_path / "grpo"),
        "limit": 4,
        "schedule": {"max_steps": 1},
    }
    summary = train_grpo(load_config(TrainGRPOConfig, grpo_config, overrides))
    assert summary["steps"] == 1
    records = [r for r in read_metrics(tmp_path / "grpo") if "reward" in r]
    assert records and math.isfinite(records[0]["loss"]) and records[0]["completions/mean_length"] > 0
    _trained_back(tmp_path / "grpo", arch)

"""The pretrained student's recipe on a tiny grafted model: vision alignment (the LM frozen), then one SFT step and
one GRPO step with LoRA on the language model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepmmsearch.config import load_config
from deepmmsearch.errors import ConfigError
from deepmmsearch.models.build import load_model
from deepmmsearch.train.common import read_metrics
from deepmmsearch.train.config import LoraSettings, TrainAlignConfig, TrainGRPOConfig, TrainSFTConfig


def _weights(path: str | Path) -> tuple[dict, dict]:
    model, _ = load_model(path, "float32", "cpu")
    vision = {k: v.clone() for k, v in model.model.visual.state_dict().items()}
    language = {k: v.clone() for k, v in model.model.language_model.state_dict().items()}
    return vision, language


def _changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.fixture(scope="module")
def aligned(small_world: Path, tiny_student: Path, tmp_path_factory) -> Path:
    from deepmmsearch.train.align import train_align

    summary = train_align(
        TrainAlignConfig(
            model=str(tiny_student),
            captions=str(small_world / "captions.jsonl"),
            out=str(tmp_path_factory.mktemp("align")),
            rows=8,
            global_batch_size=4,
            per_device_batch_size=4,
            device="cpu",
            dtype="bfloat16",  # float32 weights under bfloat16 autocast on a CPU
            logging_steps=1,
        )
    )
    assert summary["steps"] == 2 and summary["examples"] == 8
    return Path(summary["final"])


def test_alignment_trains_the_vision_tower_only(aligned: Path, tiny_student: Path) -> None:
    vision_before, language_before = _weights(tiny_student)
    vision_after, language_after = _weights(aligned)
    assert _changed(vision_before, vision_after)  # the merger and the tower learned
    assert not _changed(language_before, language_after)  # the language model is exactly the released one
    model, _ = load_model(aligned, "float32", "cpu")
    assert model.dtype == torch.float32  # autocast trains float32 weights and saves them as such
    assert [r["step"] for r in read_metrics(aligned.parent) if "loss" in r] == [1, 2]


def test_lora_sft_then_grpo_on_the_student(aligned: Path, sft_data: Path, small_world: Path, grpo_config, tmp_path):
    from deepmmsearch.train.grpo import train_grpo
    from deepmmsearch.train.sft import train_sft

    lora = LoraSettings(rank=4, alpha=8, dropout=0.0)
    sft = train_sft(
        TrainSFTConfig(
            model=str(aligned),
            data=str(sft_data),
            out=str(tmp_path / "sft"),
            lora=lora,
            limit=4,
            max_steps=1,
            global_batch_size=2,
            learning_rate=1e-2,
            warmup_ratio=0.0,  # a first step of warm-up would have a rate of 0
            device="cpu",
            dtype="bfloat16",
        )
    )
    assert sft["steps"] == 1
    vision_before, language_before = _weights(aligned)
    vision_after, language_after = _weights(sft["final"])
    assert not _changed(vision_before, vision_after)  # vision frozen, as the paper's SFT
    changed = _changed(language_before, language_after)  # LoRA merged into every block's linears
    assert changed and all(k.startswith("layers.") and k.endswith("proj.weight") for k in changed)

    overrides = {
        "model": sft["final"],
        "questions": str(small_world / "questions" / "train.jsonl"),
        "tools.kb": str(small_world / "kb"),
        "out": str(tmp_path / "grpo"),
        "limit": 4,
        "max_steps": 1,
        "lora.enabled": True,
        "lora.rank": 4,
        "dtype": "bfloat16",
    }
    grpo = train_grpo(load_config(TrainGRPOConfig, grpo_config, overrides))
    assert grpo["steps"] == 1
    record = next(r for r in read_metrics(tmp_path / "grpo") if "reward" in r)
    assert "rollout/format_error_rate" in record and "kl" in record
    model, _ = load_model(grpo["final"], "float32", "cpu")
    assert not any("lora" in name for name, _ in model.named_parameters())  # merged, a plain hf:DIR model


def test_alignment_needs_captions(tiny_student: Path, tmp_path: Path) -> None:
    from deepmmsearch.train.align import train_align

    with pytest.raises(ConfigError, match="no captioned pictures"):
        train_align(TrainAlignConfig(model=str(tiny_student), out=str(tmp_path), device="cpu"))

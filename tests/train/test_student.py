"""The pretrained student's recipe on a tiny grafted model: vision alignment (the tower names the pictures, then
the LM learns to read them), then one SFT step and one GRPO step with LoRA on the language model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepmmsearch.config import load_config
from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.models.build import load_model
from deepmmsearch.train.common import read_metrics
from deepmmsearch.train.config import LoraSettings, Schedule, TrainAlignConfig, TrainGRPOConfig, TrainSFTConfig


def _weights(path: str | Path) -> tuple[dict, dict]:
    model, _ = load_model(path, "float32", "cpu")
    vision = {k: v.clone() for k, v in model.model.visual.state_dict().items()}
    language = {k: v.clone() for k, v in model.model.language_model.state_dict().items()}
    return vision, language


def _changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


_ON_CPU = Schedule(epochs=1.0, per_device_batch_size=16, device="cpu")


@pytest.fixture(scope="module")
def aligned(small_world: Path, tiny_student: Path, tmp_path_factory) -> Path:
    from deepmmsearch.train.align import train_align

    summary = train_align(
        TrainAlignConfig(
            model=str(tiny_student),
            captions=str(small_world / "captions.jsonl"),
            out=str(tmp_path_factory.mktemp("align")),
            rows=8,
            tower_steps=3,
            tower_batch_size=4,
            lora=LoraSettings(rank=4, alpha=8, dropout=0.0),
            global_batch_size=4,
            schedule=Schedule(
                epochs=1.0,
                learning_rate=1e-2,
                per_device_batch_size=4,
                device="cpu",
                dtype="bfloat16",  # float32 weights under bfloat16 autocast on a CPU
                logging_steps=1,
            ),
        )
    )
    assert summary["steps"] == 2 and summary["examples"] == 8
    return Path(summary["final"])


def test_alignment_teaches_the_tower_then_the_language_model_to_read_it(aligned: Path, tiny_student: Path) -> None:
    vision_before, language_before = _weights(tiny_student)
    vision_tower, language_tower = _weights(aligned.parent / "tower")
    vision_after, language_after = _weights(aligned)
    assert _changed(vision_before, vision_tower)  # stage 1: the merger and the tower learned...
    assert not _changed(language_before, language_tower)  # ...the language model untouched
    assert not _changed(vision_tower, vision_after)  # stage 2: the tower frozen...
    changed = _changed(language_before, language_after)  # ...LoRA merged into every block's linears
    assert changed and all(k.startswith("layers.") and k.endswith("proj.weight") for k in changed)
    model, _ = load_model(aligned, "float32", "cpu")
    assert model.dtype == torch.float32  # autocast trains float32 weights and saves them as such
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert [r["step"] for r in read_metrics(aligned.parent) if "loss" in r] == [1, 2]


def test_the_tower_learns_to_name_the_pictures(small_world: Path, tiny_student: Path, tmp_path: Path) -> None:
    from deepmmsearch.progress import Bars
    from deepmmsearch.train.align import train_tower

    config = TrainAlignConfig(
        model=str(tiny_student),
        captions=str(small_world / "captions.jsonl"),
        tower_steps=40,
        tower_batch_size=8,
        tower_learning_rate=1e-2,
    )
    losses = train_tower(config, str(tmp_path / "tower"), bf16=False, bars=Bars())
    assert losses["last_loss"] < 0.7 * losses["first_loss"]  # a tower that did not learn stays where it began
    assert (tmp_path / "tower" / "model.safetensors").is_file() and not list(tmp_path.glob(".tower.building-*"))


def test_a_resumed_alignment_keeps_its_tower(
    aligned: Path, small_world: Path, tiny_student: Path, tmp_path, monkeypatch
):
    import shutil

    import deepmmsearch.train.align as align

    shutil.copytree(aligned.parent / "tower", tmp_path / "tower")
    monkeypatch.setattr(align, "train_tower", lambda *a, **k: pytest.fail("the tower was trained again"))
    config = TrainAlignConfig(
        model=str(tiny_student),
        captions=str(small_world / "captions.jsonl"),
        out=str(tmp_path),
        rows=4,
        tower_steps=3,
        lora=LoraSettings(rank=4, alpha=8, dropout=0.0),
        global_batch_size=4,
        schedule=Schedule(epochs=1.0, per_device_batch_size=4, device="cpu"),
    )
    assert align.train_align(config, resume=True)["resumed_from"] is None  # no checkpoint yet: stage 2 afresh


def test_caption_words_leave_out_the_keys() -> None:
    from deepmmsearch.train.align import caption_words

    assert caption_words("objects: 2. colour: red. shape: star.") == ["2", "red", "star"]
    assert caption_words("A red star on a cream ground.") == ["A", "red", "star", "on", "a", "cream", "ground"]


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
            global_batch_size=2,
            schedule=Schedule(
                max_steps=1,
                learning_rate=1e-2,
                warmup=0.0,  # a first step of warm-up would have a rate of 0
                per_device_batch_size=1,
                device="cpu",
                dtype="bfloat16",
            ),
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
        "tools": {"kb": str(small_world / "kb")},
        "out": str(tmp_path / "grpo"),
        "limit": 4,
        "lora": {"enabled": True, "rank": 4},
        "schedule": {"max_steps": 1, "dtype": "bfloat16"},
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
        train_align(TrainAlignConfig(model=str(tiny_student), out=str(tmp_path), schedule=_ON_CPU))
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"image": "", "caption": "no picture"}\n')
    with pytest.raises(InputError, match="no rows with an image and a caption"):
        train_align(TrainAlignConfig(model=str(tiny_student), captions=str(empty), out=str(tmp_path), schedule=_ON_CPU))


def test_train_align_from_the_command_line(small_world: Path, tiny_student: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from deepmmsearch.cli import app

    args = ["train", "align", "--model", str(tiny_student), "--captions", str(small_world / "captions.jsonl")]
    args += ["--out", str(tmp_path), "--rows", "4", "--tower-steps", "2", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["steps"] == 1 and (tmp_path / "tower" / "config.json").is_file()


@pytest.mark.parametrize("train_vision", [True, False])
def test_lora_leaves_the_vision_switch_to_the_config(tiny_student: Path, train_vision: bool) -> None:
    from deepmmsearch.train.common import trainable_model

    model, _ = trainable_model(str(tiny_student), "float32", LoraSettings(rank=4), train_vision=train_vision)
    visual = model.get_base_model().model.visual
    assert all(p.requires_grad == train_vision for p in visual.parameters())
    assert any(p.requires_grad for n, p in model.named_parameters() if "lora_" in n)

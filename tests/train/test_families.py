"""One SFT step and one GRPO step on a tiny model of every family (Qwen3.5 is the hybrid one, whose template TRL
must render with our switches), each reloaded from its final/; every family's forward, encoding and rollout policy
are tested in tests/models/test_families.py."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from deepmmsearch.config import load_config
from deepmmsearch.models.build import init_model, load_model
from deepmmsearch.models.families import FAMILIES, chat_template_for, get_family
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


@pytest.mark.parametrize("arch", list(FAMILIES))
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


@pytest.mark.parametrize("arch", list(FAMILIES))
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


@pytest.mark.parametrize("arch", list(FAMILIES))
def test_lora_adapts_every_layer_of_the_language_model_and_nothing_of_the_vision_tower(
    arch: str, tmp_path: Path
) -> None:
    """Attention or linear attention (Qwen3.5), and the MLP or the fused experts (Qwen3-VL-MoE), in every layer."""
    from deepmmsearch.train.common import trainable_model
    from deepmmsearch.train.config import LoraSettings

    model, _ = trainable_model(str(init_model(tmp_path / "model", size="tiny", arch=arch)), "float32", LoraSettings())
    adapted = [name for name, p in model.named_parameters() if p.requires_grad]
    assert adapted and all("lora" in name and ".language_model.layers." in name for name in adapted)
    layers = model.get_base_model().model.language_model.layers
    for index in range(len(layers)):
        mine = [name.split(f".layers.{index}.", 1)[1] for name in adapted if f".layers.{index}." in name]
        assert any(n.startswith(("self_attn.", "linear_attn.")) for n in mine), (arch, index, mine)
        assert any(n.startswith("mlp.") for n in mine), (arch, index, mine)
    if get_family(arch).hybrid:
        assert any(".linear_attn.in_proj_qkv." in name for name in adapted)
    if get_family(arch).moe:
        assert any(".mlp.experts." in name for name in adapted)


@pytest.mark.parametrize("arch", ["qwen3-vl-moe", "qwen3.5-moe"])
def test_final_merges_the_linear_attention_and_expert_adapters(arch: str, tmp_path: Path) -> None:
    """The merged final/ computes what the adapted model did, its new adapters included."""
    import torch
    from accelerate import Accelerator
    from transformers import AutoModelForImageTextToText

    from deepmmsearch.train.common import trainable_model
    from deepmmsearch.train.config import LoraSettings
    from deepmmsearch.train.distributed import gather_state_dict, write_final

    source = init_model(tmp_path / "model", size="tiny", arch=arch)
    model, _ = trainable_model(str(source), "float32", LoraSettings())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name and any(f".{part}." in name for part in ("linear_attn", "experts", "shared_expert")):
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    model.eval()
    ids = torch.tensor([[5, 9, 13, 21, 8]])
    write_final(gather_state_dict(Accelerator(cpu=True), model), model, tmp_path / "final", "float32")
    merged, base = (AutoModelForImageTextToText.from_pretrained(p) for p in (tmp_path / "final", source))
    with torch.no_grad():
        adapted = model(input_ids=ids).logits
        assert torch.allclose(merged(input_ids=ids).logits, adapted, atol=1e-5)
        assert not torch.allclose(base(input_ids=ids).logits, adapted, atol=1e-3)  # the adapters changed it

"""SFT and GRPO runs on the tiny model: they train, log, checkpoint, survive SIGKILL and run as 2 DDP processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepmmsearch.config import load_config
from deepmmsearch.errors import ConfigError
from deepmmsearch.models.build import read_prompt_style
from deepmmsearch.protocol import PromptStyle
from deepmmsearch.train.common import read_metrics
from deepmmsearch.train.config import TrainAlignConfig, TrainGRPOConfig, TrainSFTConfig

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def _dmms(*args: str) -> list[str]:
    return [sys.executable, "-m", "deepmmsearch", *args]


def _parses(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _grpo_flags(small_world: Path, model: Path, out: Path) -> list[str]:
    return [
        "--model",
        str(model),
        "--questions",
        str(small_world / "questions" / "train.jsonl"),
        "--kb",
        str(small_world / "kb"),
        "--out",
        str(out),
        "--limit",
        "8",
    ]


def test_shipped_configs_load_with_the_papers_values():
    sft = load_config(TrainSFTConfig, REPO / "configs" / "sft-qwen2.5-vl-7b.yaml")
    assert (sft.lora.enabled, sft.lora.rank, sft.schedule.epochs, sft.schedule.learning_rate) == (True, 8, 3, 1e-4)
    assert (sft.schedule.lr_scheduler, sft.schedule.warmup, sft.global_batch_size) == ("cosine", 0.1, 8)
    assert sft.schedule.dtype == "bfloat16"
    grpo = load_config(TrainGRPOConfig, REPO / "configs" / "grpo-qwen2.5-vl-7b.yaml")
    assert (grpo.num_generations, grpo.beta, grpo.epsilon, grpo.scale_rewards) == (8, 0.001, 0.2, "none")
    assert (grpo.reward.judge_weight, grpo.reward.format_weight, grpo.agent.rules.max_tool_calls) == (0.9, 0.1, 10)
    kinds = {"align": TrainAlignConfig, "sft": TrainSFTConfig, "grpo": TrainGRPOConfig}
    student = {
        kind: load_config(config_class, REPO / "configs" / f"{kind}-smollm2-cpu.yaml")
        for kind, config_class in kinds.items()
    }
    assert student["sft"].lora.enabled and student["grpo"].lora.enabled and not student["sft"].train_vision
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(TrainSFTConfig, None, {"lora": {"rnk": 4}})
    with pytest.raises(ConfigError, match="multiple of per_device_batch_size"):
        load_config(TrainSFTConfig, None, {"global_batch_size": 6, "schedule": {"per_device_batch_size": 4}})


def trainable_names(model) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad]


def test_lora_adapts_only_the_language_model(tiny_model):
    from deepmmsearch.train.common import trainable_model
    from deepmmsearch.train.config import LoraSettings

    model, _ = trainable_model(str(tiny_model), "float32", LoraSettings())
    names = trainable_names(model)
    assert names and all("lora_" in n and ".language_model.layers." in n for n in names)
    kinds = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    full, _ = trainable_model(str(tiny_model), "float32", LoraSettings(enabled=False))
    names = trainable_names(full)
    assert not any(".visual." in n for n in names) and any("embed_tokens" in n for n in names)


def test_sft_survives_sigkill_and_resumes(sft_data, tiny_model, tmp_path):
    out = tmp_path / "sft"
    flags = [
        "train",
        "sft",
        "--model",
        str(tiny_model),
        "--data",
        str(sft_data),
        "--out",
        str(out),
        "--full",
        "--max-steps",
        "6",
        "--save-steps",
        "1",
        "--lr",
        "3e-3",
        "--json",
    ]
    config = tmp_path / "sft.yaml"
    config.write_text("global_batch_size: 2\nschedule: {per_device_batch_size: 2, device: cpu, warmup: 0}\n")
    first = subprocess.Popen(
        _dmms(*flags, "--config", str(config)), env=ENV, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not (out / "checkpoint-2").is_dir() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert first.returncode == -signal.SIGKILL, "the run should still have been training when killed"
    done = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert done and done[-1] < 6
    # The kill may land while checkpoint-2 is being written: the resume must take the newest whole one.
    whole = [n for n in done if _parses(out / f"checkpoint-{n}" / "trainer_state.json")]

    second = subprocess.run(
        _dmms(*flags, "--config", str(config), "--resume"),
        env=ENV,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert second.returncode == 0, second.stderr[-2000:]
    summary = json.loads(second.stdout)
    assert summary["steps"] == 6
    assert summary["resumed_from"] is not None and int(summary["resumed_from"].rsplit("-", 1)[1]) == whole[-1] >= 1
    steps = [r["step"] for r in read_metrics(out) if "loss" in r]
    assert steps == list(range(1, 7))  # each step logged once, across the kill
    losses = [r["loss"] for r in read_metrics(out) if "loss" in r]
    assert losses[-1] < losses[0]
    assert (out / "tensorboard").is_dir() and (out / "final" / "model.safetensors").is_file()
    assert read_prompt_style(out / "final") is PromptStyle.FULL  # the data's, kept beside the weights


def test_grpo_logs_rollout_metrics_and_resumes(small_world, tiny_model, grpo_config, tmp_path):
    from deepmmsearch.train.grpo import train_grpo

    out = tmp_path / "grpo"
    overrides = {
        "model": str(tiny_model),
        "questions": str(small_world / "questions" / "train.jsonl"),
        "tools": {"kb": str(small_world / "kb")},
        "out": str(out),
        "limit": 8,
        "schedule": {"max_steps": 2},
    }
    summary = train_grpo(load_config(TrainGRPOConfig, grpo_config, overrides))
    assert summary["steps"] == 2
    records = [r for r in read_metrics(out) if "reward" in r]
    assert [r["step"] for r in records] == [1, 2]
    for key in (
        "reward",
        "kl",
        "completions/mean_length",
        "rollout/accuracy",
        "rollout/format_error_rate",
        "rollout/tool_calls/text_search",
        "rollout/tool_calls/image_search",
        "rewards/judge_reward/mean",
    ):
        assert key in records[0], key
    # An untrained model writes no valid reply: every rollout is a format error and the reward is zero.
    assert records[0]["rollout/format_error_rate"] == 1.0 and records[0]["reward"] == 0.0
    assert 0 < records[0]["completions/mean_length"] <= 3 * 12  # only sampled tokens count: 3 turns x 12 at most
    assert read_prompt_style(out / "final") is PromptStyle.FULL  # the model had none saved: full

    overrides["schedule"] = {"max_steps": 3}
    resumed = train_grpo(load_config(TrainGRPOConfig, grpo_config, overrides), resume=True)
    assert resumed["steps"] == 3 and resumed["resumed_from"].endswith("checkpoint-2")
    assert [r["step"] for r in read_metrics(out) if "reward" in r] == [1, 2, 3]


def test_grpo_search_only_keeps_the_questions_that_need_a_search(small_world, tiny_model, tmp_path):
    from deepmmsearch.train.grpo import train_grpo

    lines = (small_world / "questions" / "train.jsonl").read_text().splitlines()
    free = [line for line in lines if '"requires_search": false' in line]
    assert free and len(free) < len(lines)
    questions = small_world / "questions" / "free-only.jsonl"  # beside train.jsonl: image paths stay valid
    questions.write_text("\n".join(free) + "\n")
    config = TrainGRPOConfig(model=str(tiny_model), questions=str(questions), out=str(tmp_path), search_only=True)
    with pytest.raises(ConfigError, match="no question has requires_search"):
        train_grpo(config)


@pytest.mark.parametrize("trainer", ["sft", "grpo"])
def test_two_cpu_processes_train_with_ddp(trainer, sft_data, small_world, tiny_model, grpo_config, tmp_path):
    out = tmp_path / trainer
    if trainer == "sft":
        flags = [
            "train",
            "sft",
            "--model",
            str(tiny_model),
            "--data",
            str(sft_data),
            "--out",
            str(out),
            "--full",
            "--max-steps",
            "2",
            "--limit",
            "8",
        ]
        config = tmp_path / "sft.yaml"
        config.write_text("global_batch_size: 4\nschedule: {per_device_batch_size: 2, device: cpu}\n")
    else:
        flags = ["train", "grpo", *_grpo_flags(small_world, tiny_model, out), "--max-steps", "1"]
        config = grpo_config
    # Accelerate starts several CPU processes only through MPI; torchrun starts them with gloo directly, and the
    # Trainer's Accelerate state picks the distributed environment up from it.
    torchrun = ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port())]
    launch = [sys.executable, *torchrun, "-m", "deepmmsearch", *flags, "--config", str(config), "--json"]
    result = subprocess.run(launch, env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout[result.stdout.index("{") :])  # printed once, by rank 0
    assert summary["steps"] == (2 if trainer == "sft" else 1) and summary["processes"] == 2
    state = json.loads((out / f"checkpoint-{summary['steps']}" / "trainer_state.json").read_text())
    assert state["global_step"] == summary["steps"]
    assert (out / "final" / "model.safetensors").is_file()


def test_resume_skips_a_checkpoint_torn_by_a_kill(tmp_path):
    from deepmmsearch.train.common import resume_checkpoint

    for step, state in ((2, "{}"), (4, '{"global_step": 4}'), (6, '{"global_st'), (8, None)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    # checkpoint-8 has no trainer state (killed before transformers wrote it), checkpoint-6 a torn one.
    assert resume_checkpoint(tmp_path, resume=True) == str(tmp_path / "checkpoint-4")
    assert resume_checkpoint(tmp_path, resume=False) is None

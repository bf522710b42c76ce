"""SFT and GRPO runs on the tiny model: they train, log, checkpoint, survive SIGKILL and run as 2 DDP processes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepmmsearch.config import load_config
from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.models.build import read_prompt_style
from deepmmsearch.protocol import PromptStyle
from deepmmsearch.train.common import read_metrics
from deepmmsearch.train.config import TrainAlignConfig, TrainGRPOConfig, TrainPretrainConfig, TrainSFTConfig

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
    assert (sft.lora.enabled, sft.lora.rank, sft.epochs, sft.learning_rate) == (True, 8, 3, 1e-4)
    assert (sft.lr_scheduler, sft.warmup_ratio, sft.global_batch_size, sft.dtype) == ("cosine", 0.1, 8, "bfloat16")
    grpo = load_config(TrainGRPOConfig, REPO / "configs" / "grpo-qwen2.5-vl-7b.yaml")
    assert (grpo.num_generations, grpo.beta, grpo.epsilon, grpo.scale_rewards) == (8, 0.001, 0.2, "none")
    assert (grpo.reward.judge_weight, grpo.reward.format_weight, grpo.agent.rules.max_tool_calls) == (0.9, 0.1, 10)
    kinds = {"pretrain": TrainPretrainConfig, "sft": TrainSFTConfig, "grpo": TrainGRPOConfig}
    for kind, config_class in kinds.items():
        load_config(config_class, REPO / "configs" / f"{kind}-tiny-cpu.yaml")
    kinds = {"align": TrainAlignConfig, "sft": TrainSFTConfig, "grpo": TrainGRPOConfig}
    student = {
        kind: load_config(config_class, REPO / "configs" / f"{kind}-smollm2-cpu.yaml")
        for kind, config_class in kinds.items()
    }
    assert student["sft"].lora.enabled and student["grpo"].lora.enabled and not student["sft"].train_vision
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(TrainSFTConfig, None, {"lora.rnk": 4})
    with pytest.raises(ConfigError, match="multiple of per_device_batch_size"):
        load_config(TrainSFTConfig, None, {"global_batch_size": 6, "per_device_batch_size": 4})


def test_lora_adapts_only_the_language_model(tiny_model):
    from deepmmsearch.train.common import trainable_model, trainable_names
    from deepmmsearch.train.config import LoraSettings

    model, _ = trainable_model(str(tiny_model), "float32", LoraSettings())
    names = trainable_names(model)
    assert names and all("lora_" in n and ".language_model.layers." in n for n in names)
    kinds = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    full, _ = trainable_model(str(tiny_model), "float32", LoraSettings(enabled=False))
    names = trainable_names(full)
    assert not any(".visual." in n for n in names) and any("embed_tokens" in n for n in names)


def test_pretraining_rows_copy_what_they_show(small_world):
    from deepmmsearch.protocol import BEST_MATCH, MOST_RELEVANT
    from deepmmsearch.train.pretrain import copy_rows, pretraining_texts, read_kb_images, read_kb_pages, reading_drills

    kb = str(small_world / "kb")
    pages = read_kb_pages(kb)
    texts = pretraining_texts(pages, sequences=3, pages_per_sequence=4, seed=1)
    assert len(texts) == 3 and all(len(t.split("\n")) == 4 for t in texts)
    first = texts[0].split("\n")[0]
    page = next(p for p in pages if first.startswith(f"{p['title']} ("))
    assert first == f"{page['title']} ({page['url']}): {page['text']}"

    drills = reading_drills(pages, read_kb_images(kb), 30, seed=1)
    kinds = {BEST_MATCH: 0, MOST_RELEVANT: 0, "continued": 0}
    for drill in drills:
        lines, completion = drill["prompt"].split("\n"), drill["completion"]
        assert lines[0] == "<information>" and lines[-2] == "</information>"
        cue = lines[-1]
        if cue in (BEST_MATCH, MOST_RELEVANT):  # the lead line says it, and the first result shows it
            assert lines[1] == cue + completion and completion.strip() in lines[2]
            kinds[cue] += 1
        else:  # a sentence of the first result, continued
            assert cue + completion in lines[1]
            kinds["continued"] += 1
    assert kinds == {BEST_MATCH: 10, MOST_RELEVANT: 10, "continued": 10}

    for row in copy_rows(pages, 20, seed=1):
        words, repeat = row["prompt"].split(), row["completion"].split()
        assert any(" ".join(words[-cut:] + repeat) in " ".join(words[:-cut]) for cut in (1, 2))


def test_copy_warmup_teaches_a_model_built_from_scratch_to_copy_then_copy_text_keeps_it_in_page_text(
    small_world, tiny_model
):
    from dataclasses import replace

    from deepmmsearch.errors import InputError
    from deepmmsearch.models.build import load_model
    from deepmmsearch.train.config import TrainPretrainConfig
    from deepmmsearch.train.pretrain import copy_text, copy_warmup, pretraining_texts, read_kb_pages

    model, processor = load_model(str(tiny_model), "float32", "cpu")
    said: list[str] = []
    # Chance is one token in the vocabulary (hundreds); on 48-token sequences the copy forms within ~500 steps.
    early = TrainPretrainConfig(copy_steps=20, copy_until_formed=50, copy_long_steps=0, seed=0)
    assert copy_warmup(model, processor.tokenizer, early, said.append)[0] < 0.9
    assert said == [said[0]] and "sequences: 70 steps" in said[0] and "the copy has not formed" in said[0]
    # Too few steps of its own: the short phase goes on, 100 at a time, until 90% of repeats come out right.
    config = TrainPretrainConfig(copy_steps=100, copy_until_formed=1500, copy_long_steps=80, copy_text_steps=20, seed=0)
    assert copy_warmup(model, processor.tokenizer, config, said.append)[0] >= 0.9
    steps = int(re.search(r"48-token sequences: (\d+) steps", said[1]).group(1))
    assert 100 < steps < 1600 and steps % 100 == 0 and "not formed" not in said[1], said[1]
    # Quotes of page text up to 400 tokens back in 1,024 tokens: learned in tens of steps (measured: 24% right in
    # the first 20, 67% 40 steps later; without the warm-up's 300-token phase, 5% in the first 20).
    texts = pretraining_texts(read_kb_pages(str(small_world / "kb")), 20, 3)
    first = copy_text(model, processor.tokenizer, texts, config)
    later = copy_text(model, processor.tokenizer, texts, replace(config, copy_text_steps=40))
    assert later > first + 0.2, (first, later)
    with pytest.raises(InputError, match="no page text"):
        copy_text(model, processor.tokenizer, [], config)


def test_caption_steps_alone_teach_the_captions(small_world, tiny_model):
    import torch

    from deepmmsearch.models.build import load_model
    from deepmmsearch.train.pretrain import CaptionBatches, copy_warmup
    from deepmmsearch.train.sft import caption_conversations

    model, processor = load_model(str(tiny_model), "float32", "cpu")
    config = TrainPretrainConfig(
        copy_steps=0, copy_long_steps=0, caption_steps=40, captions=str(small_world / "captions.jsonl"), seed=0
    )
    pictures = CaptionBatches(processor, caption_conversations(config.captions), config)
    for parameter in model.parameters():
        parameter.requires_grad = True
    batch = pictures()
    with torch.no_grad():
        before = float(model(**batch).loss)
    vision = {k: v.clone() for k, v in model.model.visual.state_dict().items()}
    said: list[str] = []
    assert copy_warmup(model, processor.tokenizer, config, said.append, pictures) == []  # no copy phase ran
    with torch.no_grad():
        after = float(model(**batch).loss)
    assert after < before - 1.0, (before, after)
    assert not all(torch.equal(vision[k], v) for k, v in model.model.visual.state_dict().items())
    assert said and said[-1].startswith("captions alone: 40 steps")
    with pytest.raises(ValueError, match="caption_steps must not be negative"):
        TrainPretrainConfig(caption_steps=-1)


def test_pretraining_trains_the_language_model_only(small_world, tiny_model, tmp_path):
    import torch

    from deepmmsearch.models.build import load_model

    out = tmp_path / "pre"
    flags = ["train", "pretrain", "--model", str(tiny_model), "--kb", str(small_world / "kb"), "--out", str(out)]
    flags += ["--sequences", "64", "--max-steps", "12", "--lr", "1e-2", "--json"]
    config = tmp_path / "pre.yaml"
    config.write_text(
        "device: cpu\nlogging_steps: 1\nsave_steps: 100\ncopy_steps: 20\ncopy_long_steps: 5\ncopy_text_steps: 3\n"
        "drills: 30\n"
        "copy_rows: 30\nglobal_batch_size: 8\nper_device_batch_size: 8\n"
    )
    run = subprocess.run(_dmms(*flags, "--config", str(config)), env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout)
    assert summary["steps"] == 12 and summary["rows"] == 64 + 30 + 30 and len(summary["copy_warmup_accuracy"]) == 3
    losses = [r["loss"] for r in read_metrics(out) if "loss" in r]
    assert len(losses) == 12 and losses[-1] < losses[0] - 0.5
    before, _ = load_model(str(tiny_model), "float32", "cpu")
    after, _ = load_model(str(out / "final"), "float32", "cpu")
    vision_before, vision_after = before.model.visual.state_dict(), after.model.visual.state_dict()
    assert all(torch.equal(vision_before[k], vision_after[k]) for k in vision_before)  # text only: no image seen
    lm_before, lm_after = before.model.language_model.state_dict(), after.model.language_model.state_dict()
    assert not all(torch.equal(lm_before[k], lm_after[k]) for k in lm_before)

    missing = subprocess.run(_dmms(*flags[:4], "--kb", str(tmp_path)), env=ENV, capture_output=True, text=True)
    assert missing.returncode != 0 and "no pages.jsonl" in missing.stderr + missing.stdout


def test_captions_train_the_vision_tower_then_mix_into_sft(small_world, sft_data, tiny_model, tmp_path):
    import torch

    from deepmmsearch.models.build import load_model
    from deepmmsearch.train.pretrain import train_pretrain
    from deepmmsearch.train.sft import train_sft

    captions = str(small_world / "captions.jsonl")
    pre = train_pretrain(
        TrainPretrainConfig(
            model=str(tiny_model),
            kb=str(small_world / "kb"),
            out=str(tmp_path / "pre"),
            captions=captions,
            copy_steps=6,
            copy_long_steps=2,
            copy_text_steps=1,
            caption_batch_size=4,
            sequences=16,
            drills=8,
            copy_rows=8,
            max_steps=2,
            device="cpu",
            save_steps=100,
        )
    )
    before, _ = load_model(str(tiny_model), "float32", "cpu")
    after, _ = load_model(pre["final"], "float32", "cpu")
    vision_before, vision_after = before.model.visual.state_dict(), after.model.visual.state_dict()
    assert not all(torch.equal(vision_before[k], vision_after[k]) for k in vision_before)

    sft = train_sft(
        TrainSFTConfig(
            model=pre["final"],
            data=str(sft_data),
            out=str(tmp_path / "sft"),
            captions=captions,
            caption_rows=5,
            limit=3,
            max_steps=1,
            device="cpu",
            save_steps=100,
        )
    )
    assert sft["examples"] == 3 + 5
    assert read_prompt_style(sft["final"]) is PromptStyle.FULL  # the data's, kept beside the weights

    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"image": "", "caption": "no picture"}\n')
    with pytest.raises(InputError, match="no rows with an image and a caption"):
        train_sft(TrainSFTConfig(model=pre["final"], data=str(sft_data), out=str(tmp_path / "x"), captions=str(empty)))


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
    config.write_text("global_batch_size: 2\nper_device_batch_size: 2\ndevice: cpu\nwarmup_ratio: 0.0\n")
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


def test_grpo_logs_rollout_metrics_and_resumes(small_world, tiny_model, grpo_config, tmp_path):
    from deepmmsearch.train.grpo import train_grpo

    out = tmp_path / "grpo"
    overrides = {
        "model": str(tiny_model),
        "questions": str(small_world / "questions" / "train.jsonl"),
        "tools.kb": str(small_world / "kb"),
        "out": str(out),
        "limit": 8,
        "max_steps": 2,
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

    overrides["max_steps"] = 3
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
        config.write_text("global_batch_size: 4\nper_device_batch_size: 2\ndevice: cpu\n")
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

"""The GPU recipe's settings, checked where a CPU can: episode budget, importance sampling, reference-model
placement, float32 master weights, the image-size bound, concurrent judging and the saved generation settings."""

from __future__ import annotations

import asyncio
import time

import pytest

from deepmmsearch.errors import ConfigError
from deepmmsearch.eval.judges import JudgeResult
from deepmmsearch.records import Question, Trajectory
from deepmmsearch.train.common import LoraSettings, master_dtype
from deepmmsearch.train.config import TrainGRPOConfig, grpo_args, reference_model_kwargs


def test_grpo_args_carry_the_episode_budget_token_level_importance_sampling_and_the_reference_placement():
    args = grpo_args(TrainGRPOConfig(lora=LoraSettings(enabled=False)), use_cpu=True, bf16=False, world_size=1)
    assert args.max_completion_length == 8192  # the episode budget, not one reply's
    assert args.vllm_importance_sampling_mode == "token_truncate"
    assert (args.temperature, args.vllm_gpu_memory_utilization) == (1.0, 0.3)  # the sampling and vllm sections'
    # TRL loads the reference model with these; without device_map it would take "auto" (every GPU) under FSDP.
    assert args.model_init_kwargs == {"device_map": None, "dtype": "float32"}
    # On a GPU: the compute dtype, even where the policy trains float32 master weights.
    full = TrainGRPOConfig(lora=LoraSettings(enabled=False))
    assert reference_model_kwargs(full, use_cpu=False, bf16=True) == {"device_map": None, "dtype": "bfloat16"}
    lora = grpo_args(TrainGRPOConfig(lora=LoraSettings(enabled=True)), use_cpu=True, bf16=False, world_size=1)
    assert lora.model_init_kwargs is None  # the adapter-free model is the reference: TRL builds none
    with pytest.raises(ConfigError, match="vllm_importance_sampling_mode"):
        TrainGRPOConfig(vllm_importance_sampling_mode="product")
    with pytest.raises(ConfigError, match="max_pixels"):
        TrainGRPOConfig(max_pixels=100)


def test_full_fine_tuning_keeps_float32_master_weights_unless_deepspeed_or_fsdp_does(tiny_model, monkeypatch):
    from deepmmsearch.train.common import trainable_model

    for name in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP"):
        monkeypatch.delenv(name, raising=False)
    assert master_dtype("bfloat16", full_weights=True) == "float32"
    assert master_dtype("bfloat16", full_weights=False) == "bfloat16"  # LoRA: PEFT keeps the adapters in float32
    model, processor = trainable_model(str(tiny_model), "bfloat16", LoraSettings(enabled=False), max_pixels=5000)
    assert {p.dtype for p in model.parameters()} == {__import__("torch").float32}
    assert processor.image_processor.size["longest_edge"] == 5000
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # FSDP keeps float32 master weights itself
    assert master_dtype("bfloat16", full_weights=True) == "bfloat16"


def test_the_judge_scores_a_steps_trajectories_concurrently():
    from deepmmsearch.train.reward import judge_trajectories

    class SlowJudge:
        def __init__(self) -> None:
            self.running = self.most = 0

        async def judge(self, prediction, question):
            self.running += 1
            self.most = max(self.most, self.running)
            await asyncio.sleep(0.1)
            self.running -= 1
            return JudgeResult(correct=prediction == "38 m", score=float(prediction == "38 m"))

    question = Question(id="q", image="x.png", question="How tall?", answers=["38 m"])
    trajectories = [Trajectory(question, "m", answer=a) for a in ["38 m", "40 m"] * 8]
    judge = SlowJudge()
    start = time.perf_counter()
    asyncio.run(judge_trajectories(judge, trajectories, concurrency=8))
    assert time.perf_counter() - start < 0.6 and judge.most == 8
    assert [t.score for t in trajectories] == [1.0, 0.0] * 8


def test_final_keeps_our_generation_settings(tiny_model):
    from deepmmsearch.models.build import load_model
    from deepmmsearch.train.common import generation_config

    _, processor = load_model(tiny_model, "float32", "cpu")
    config = generation_config(processor.tokenizer)
    tokenizer = processor.tokenizer
    assert config.eos_token_id[0] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert config.do_sample is False and config.repetition_penalty == 1.0

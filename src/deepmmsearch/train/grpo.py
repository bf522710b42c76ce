"""``dmms train grpo``: online GRPO whose rollouts are our agent loop with real tool calls.

Reads top to bottom: config, questions as a prompt dataset, model, tools and judge, the rollout function, the
reward functions, then TRL's ``GRPOTrainer`` through its documented hooks (``rollout_func``, ``reward_funcs``
with ``reward_weights``, callbacks). Images reach the loss through the dataset's ``image`` column: TRL turns each
prompt and image into ``pixel_values`` and ``image_grid_thw`` with the model's processor, and the rollout's
prompt ids are checked to be that same prompt.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from deepmmsearch.errors import ConfigError
from deepmmsearch.train.config import TrainGRPOConfig


def prompt_dataset(questions: list[Any], config: TrainGRPOConfig) -> Any:
    """One row per question: the opening turns as ``prompt``, the input ``image`` and the gold ``answers``."""
    from datasets import Dataset, Image

    from deepmmsearch.train.rollout import prompt_messages

    rows = [
        {"prompt": prompt_messages(q, config.agent), "image": q.image, "answers": list(q.answers)} for q in questions
    ]
    return Dataset.from_list(rows).cast_column("image", Image())


def train_grpo(config: TrainGRPOConfig, resume: bool = False) -> dict[str, Any]:
    """Run GRPO as configured; return a summary (steps, mean reward first and last, final model, wall time)."""
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is marked experimental; we pin TRL
    from trl import GRPOTrainer

    from deepmmsearch.eval.harness import Scorer
    from deepmmsearch.models.build import read_prompt_style, write_prompt_style
    from deepmmsearch.records import read_questions
    from deepmmsearch.tools import build_toolbox
    from deepmmsearch.train.common import (
        device_and_precision,
        image_size_limit,
        limit_image_size,
        make_metrics_logger,
        read_metrics,
        resume_checkpoint,
        train_and_save,
        trainable_model,
        world_size,
    )
    from deepmmsearch.train.config import grpo_args
    from deepmmsearch.train.distributed import check_rollout_sharding, start_processes
    from deepmmsearch.train.reward import REWARD_FUNCS
    from deepmmsearch.train.rollout import AgentRollout

    start = time.perf_counter()
    # --- set-up: devices, run folder, where to resume
    use_cpu, bf16, dtype = device_and_precision(config.schedule.device, config.schedule.dtype)
    checkpoint = resume_checkpoint(config.out, resume)
    # Rollouts are prompted in the style the model was trained in; the trained model keeps it.
    style = config.agent.prompt_style(read_prompt_style(config.model))
    # The episode budget (agent.max_episode_tokens) is TRL's max_completion_length too; the agent loop enforces it.
    config = replace(config, agent=replace(config.agent, prompts=style.value))

    # --- data: questions with their images and gold answers; the rollout looks each one up by id
    if not config.questions:
        raise ConfigError("no questions to roll out on: set questions: in the config or pass --questions FILE")
    questions = read_questions(config.questions)
    if config.search_only:
        # Answers read off the picture need vision features GRPO does not train: it could only learn them by heart.
        questions = [q for q in questions if q.requires_search]
        if not questions:
            raise ConfigError(f"{config.questions}: search_only is set but no question has requires_search: true")
    if config.limit is not None:
        questions = questions[: config.limit]
    if len({q.id for q in questions}) != len(questions):
        raise ConfigError(f"{config.questions}: question ids must be unique")
    dataset = prompt_dataset(questions, config)
    if config.use_vllm:
        import importlib.util

        from deepmmsearch.policies.vllm import INSTALL_HINT

        if importlib.util.find_spec("vllm") is None:
            raise ConfigError(f"use_vllm: true, but {INSTALL_HINT}")

    # --- model: the policy being trained, vision tower frozen; under ZeRO-3 loaded partitioned
    args = grpo_args(config, use_cpu, bf16, world_size())
    start_processes(args)
    model, processor = trainable_model(config.model, dtype, config.lora, config.train_vision)
    if config.max_pixels is not None and config.max_pixels != image_size_limit(processor):
        if config.use_vllm:  # the engine builds its own processor from the model folder
            raise ConfigError(
                f"max_pixels {config.max_pixels} differs from the model folder's ({image_size_limit(processor)}), "
                "which vLLM reads: leave max_pixels unset under use_vllm, or set it at SFT"
            )
        limit_image_size(processor, config.max_pixels)

    # --- rollouts: the agent loop with real tools (their cache makes repeated searches free) and the judge
    toolbox = build_toolbox(config.tools)
    scorer = Scorer(config.reward.metric, config.reward.judge_model)
    rollout = AgentRollout(
        {q.id: q for q in questions},
        processor,
        toolbox,
        config.agent,
        config.sampling,
        scorer,
        seed=config.schedule.seed,
        hf=config.hf,
        vllm=config.vllm,
    )

    # --- trainer: reward = judge_weight x judge + format_weight x format, through TRL's reward_weights
    # TRL renders each prompt itself for its image inputs: with the family's template switches, as our encoder does.
    args.chat_template_kwargs = {**(args.chat_template_kwargs or {}), **getattr(processor, "template_kwargs", {})}
    with _quiet_model_init_kwargs_warning():
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=list(REWARD_FUNCS),
            args=args,
            train_dataset=dataset,
            processing_class=processor,
            rollout_func=rollout,
            callbacks=[make_metrics_logger(config.out)],
        )
    check_rollout_sharding(trainer.accelerator, config.use_vllm)

    # --- train, continuing from the last checkpoint when resuming
    with warnings.catch_warnings():
        # TRL 1.16 reads the deprecated ``is_gradient_checkpointing`` on every rollout: not ours to fix.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        _, summary = train_and_save(trainer, processor, config.out, checkpoint, start, "GRPO", dtype=dtype)
    if trainer.is_world_process_zero():
        write_prompt_style(summary["final"], style)
    rewards = [r["reward"] for r in read_metrics(config.out) if "reward" in r]
    return {
        **summary,
        "reward_first": rewards[0] if rewards else None,
        "reward_last": rewards[-1] if rewards else None,
        "reward_mean": sum(rewards) / len(rewards) if rewards else None,
    }


@contextmanager
def _quiet_model_init_kwargs_warning() -> Iterator[None]:
    """TRL warns that ``model_init_kwargs`` are ignored when the policy is passed loaded, but it builds the reference
    model from them (``grpo_args``): the warning would mislead."""
    import logging

    def keep(record: logging.LogRecord) -> bool:
        return "model_init_kwargs" not in record.getMessage()

    logger = logging.getLogger("trl.trainer.grpo_trainer")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)

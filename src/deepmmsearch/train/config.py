"""The configs of ``dmms train align|sft|grpo``, and their one mapping onto TRL's arguments.

Our dataclasses say what a run is in the paper's terms (global batch, group size, LoRA on the language model);
:func:`sft_args` and :func:`grpo_args` derive TRL's per-device knobs from them in one place. No heavy imports at
module level: the CLI reads these configs before it decides to import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deepmmsearch.agent import AgentConfig
from deepmmsearch.config import check_at_least
from deepmmsearch.errors import ConfigError
from deepmmsearch.policies import SamplingConfig
from deepmmsearch.policies.hf import HFConfig
from deepmmsearch.policies.vllm import VLLMConfig
from deepmmsearch.tools import ToolsConfig

# Every linear layer of the language model's blocks (Qwen3.5's linear attention and shared expert too), and none
# of the vision tower's (whose MLP shares the names gate_proj/up_proj/down_proj) nor the projector's: PEFT matches a
# string target as a full-name regex.
LANGUAGE_MODEL_LINEARS = (
    r".*language_model\.layers\.\d+\."
    r"(self_attn\.(q|k|v|o)_proj|linear_attn\.(in_proj_(qkv|z|a|b)|out_proj)|mlp\.(shared_expert\.)?(gate|up|down)_proj)"
)
# A mixture-of-experts model's experts are fused weights (one tensor for all of a layer's experts), not linear layers:
# PEFT adapts them as parameters, by these name endings.
FUSED_EXPERTS = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")


MAX_PIXELS_HELP = (
    "largest image, in pixels, after resizing (the image processor's max_pixels; saved with final/); None: the "
    "model's own (a released Qwen2.5-VL's allows 12.8M pixels, 16,384 tokens an image)"
)


@dataclass
class LoraSettings:
    """LoRA adapters (PEFT) on the language model; the vision tower and projector train only where ``train_vision``
    says."""

    enabled: bool = field(
        default=True,
        metadata={"help": "train LoRA adapters; false: full fine-tuning of the LM", "aliases": ("--lora/--full",)},
    )
    rank: int = field(default=8, metadata={"help": "adapter rank (the paper: 8)"})
    alpha: int = field(default=16, metadata={"help": "adapter scale numerator (scale = alpha / rank)"})
    dropout: float = field(default=0.05, metadata={"help": "dropout on the adapter input"})
    target_modules: str = field(
        default=LANGUAGE_MODEL_LINEARS, metadata={"help": "regex over module names that get adapters"}
    )
    experts: bool = field(
        default=True,
        metadata={"help": "adapters on the fused experts of a mixture-of-experts model too (without dropout)"},
    )

    def __post_init__(self) -> None:
        check_at_least(self, 1, "rank", section="lora")


@dataclass
class Schedule:
    """How long and how fast a run trains, on what, and how often it logs and saves: the settings every trainer
    shares. Each config sets its own defaults (SFT's are the class's)."""

    epochs: float = field(default=3.0, metadata={"help": "passes over the data", "aliases": ("--epochs",)})
    max_steps: int = field(
        default=-1,
        metadata={"help": "stop after this many optimizer steps (-1: epochs decide)", "aliases": ("--max-steps",)},
    )
    learning_rate: float = field(default=1e-4, metadata={"help": "peak learning rate", "aliases": ("--lr",)})
    lr_scheduler: str = field(default="cosine", metadata={"help": "transformers scheduler name"})
    warmup: float = field(
        default=0.1, metadata={"help": "warm-up: optimizer steps, or below 1 a share of all the steps"}
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    per_device_batch_size: int = field(
        default=1, metadata={"help": "examples (pictures, conversations or rollouts) per forward pass per device"}
    )
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory"})
    dtype: str = field(default="auto", metadata={"help": "auto (bf16 on GPU, fp32 on CPU), bfloat16 or float32"})
    device: str = field(default="auto", metadata={"help": "auto or cpu"})
    seed: int = field(default=0, metadata={"help": "data order, initialization and sampling seed"})
    logging_steps: int = field(default=1, metadata={"help": "log every N optimizer steps"})
    save_steps: int = field(
        default=50, metadata={"help": "checkpoint every N optimizer steps", "aliases": ("--save-steps",)}
    )
    save_total_limit: int = field(default=2, metadata={"help": "checkpoints kept (older ones are deleted)"})

    def __post_init__(self) -> None:
        check_at_least(
            self, 1, "per_device_batch_size", "logging_steps", "save_steps", "save_total_limit", section="schedule"
        )
        if self.warmup < 0 or self.learning_rate <= 0:
            raise ConfigError("schedule.warmup must be 0 or more and schedule.learning_rate positive")


@dataclass
class TrainAlignConfig:
    """Vision alignment of a student whose vision tower is new (`dmms model init --lm`), in two stages. First the
    tower alone: its image tokens learn to be the input embeddings of each caption's words, the language model
    frozen and never run. Then the language model learns to read them: LoRA on its blocks, the caption as the
    reply to "Describe the picture.", loss on the caption only, the adapter merged into ``final/``."""

    model: str = field(default="", metadata={"help": "model folder to start from (`dmms model init --lm`)"})
    captions: str = field(default="", metadata={"help": "JSON Lines of image, caption (images relative to the file)"})
    out: str = field(default="runs/align", metadata={"help": "run folder: checkpoints, logs and final/ (the model)"})
    rows: int | None = field(default=None, metadata={"help": "reading stage: the first N captioned pictures only"})
    tower_steps: int = field(
        default=2000, metadata={"help": "steps of the tower's own stage, on every captioned picture (0: skip it)"}
    )
    tower_batch_size: int = field(default=64, metadata={"help": "pictures per step of the tower's stage"})
    tower_learning_rate: float = field(default=2e-3, metadata={"help": "peak learning rate of the tower's stage"})
    lora: LoraSettings = field(
        default_factory=lambda: LoraSettings(rank=16, alpha=32, dropout=0.0),
        metadata={"help": "LoRA on the language model while it learns to read the tower (enabled false: frozen)"},
    )
    train_vision: bool = field(
        default=False, metadata={"help": "the tower and merger keep learning while the language model reads"}
    )
    global_batch_size: int = field(default=16, metadata={"help": "pictures per optimizer step, all devices"})
    schedule: Schedule = field(
        default_factory=lambda: Schedule(
            epochs=1.0, learning_rate=1e-3, warmup=0.03, per_device_batch_size=16, logging_steps=10, save_steps=200
        ),
        metadata={"help": "the reading stage's schedule; the tower's own stage has its tower_* settings"},
    )

    def __post_init__(self) -> None:
        _check_batch(self.global_batch_size, self.schedule.per_device_batch_size)
        check_at_least(self, 1, "rows", "tower_batch_size")
        check_at_least(self, 0, "tower_steps")
        if not (self.lora.enabled or self.train_vision):
            raise ConfigError("alignment would train nothing: enable lora or set train_vision")


@dataclass
class TrainSFTConfig:
    """Supervised cold start on the conversations of ``dmms data build`` (loss on the assistant's tokens only)."""

    model: str = field(default="", metadata={"help": "model folder or hub id to start from (a Qwen-VL family)"})
    data: str = field(default="", metadata={"help": "output folder of `dmms data build` (or its sft/ dataset)"})
    out: str = field(default="runs/sft", metadata={"help": "run folder: checkpoints, logs and final/ (the model)"})
    lora: LoraSettings = field(default_factory=LoraSettings)
    train_vision: bool = field(
        default=False,
        metadata={"help": "also train the vision tower and projector (the paper freezes them)"},
    )
    global_batch_size: int = field(default=8, metadata={"help": "conversations per optimizer step, all devices"})
    max_length: int = field(default=8192, metadata={"help": "longer conversations are left out (never cut)"})
    max_pixels: int | None = field(default=None, metadata={"help": MAX_PIXELS_HELP})
    limit: int | None = field(default=None, metadata={"help": "train on the first N conversations only"})
    schedule: Schedule = field(default_factory=Schedule)

    def __post_init__(self) -> None:
        _check_batch(self.global_batch_size, self.schedule.per_device_batch_size)
        check_at_least(self, 1, "max_length")
        _check_max_pixels(self.max_pixels)


@dataclass
class RewardSettings:
    """Reward = judge_weight x judge + format_weight x format (the paper: 0.9 and 0.1)."""

    judge_weight: float = field(default=0.9, metadata={"help": "weight of the judge's verdict"})
    format_weight: float = field(default=0.1, metadata={"help": "weight of the format term"})
    metric: str = field(default="rule", metadata={"help": "judge: rule (offline) or llm (needs judge_model)"})
    judge_model: str | None = field(default=None, metadata={"help": "MODEL[@BASE_URL] of the llm judge"})

    def __post_init__(self) -> None:
        if self.metric == "llm" and not self.judge_model:
            raise ConfigError("reward.metric llm needs reward.judge_model MODEL[@BASE_URL]")


IMPORTANCE_SAMPLING_MODES = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


@dataclass
class TrainGRPOConfig:
    """Online GRPO: rollouts run our agent loop with real tools; tool-result tokens carry no loss."""

    model: str = field(default="", metadata={"help": "model folder to start from (usually an SFT run's final/)"})
    questions: str = field(default="", metadata={"help": "question records (JSONL) to roll out on", "aliases": ("-q",)})
    out: str = field(default="runs/grpo", metadata={"help": "run folder: checkpoints, logs and final/ (the model)"})
    lora: LoraSettings = field(default_factory=lambda: LoraSettings(enabled=False))
    train_vision: bool = field(
        default=False,
        metadata={"help": "also train the vision tower and projector (the paper freezes them)"},
    )
    tools: ToolsConfig = field(default_factory=ToolsConfig)
    agent: AgentConfig = field(
        default_factory=lambda: AgentConfig(max_episode_tokens=8192),
        metadata={
            "help": "the rollouts' agent loop; its max_episode_tokens (the paper's 8,192-token response limit) is "
            "TRL's max_completion_length"
        },
    )
    sampling: SamplingConfig = field(
        default_factory=lambda: SamplingConfig(temperature=1.0, max_new_tokens=8192),
        metadata={"help": "how rollouts sample each reply"},
    )
    hf: HFConfig = field(
        default_factory=HFConfig,
        metadata={
            "help": "rollouts on the trainer's own model (use_vllm false): guided, prefix_cache and "
            "max_cached_episodes apply; model, batch and seed are the trainer's"
        },
    )
    vllm: VLLMConfig = field(
        default_factory=lambda: VLLMConfig(gpu_memory_utilization=0.3, guided=False),
        metadata={
            "help": "the vLLM engine TRL colocates with each process (use_vllm true): gpu_memory_utilization, "
            "max_model_len and tensor_parallel_size apply; batch and seed are the trainer's"
        },
    )
    reward: RewardSettings = field(default_factory=RewardSettings)
    num_generations: int = field(default=8, metadata={"help": "rollouts per question (the group)"})
    questions_per_step: int = field(default=1, metadata={"help": "questions per optimizer step, all devices"})
    beta: float = field(default=0.001, metadata={"help": "KL coefficient against the reference model"})
    epsilon: float = field(default=0.2, metadata={"help": "PPO-style ratio clip"})
    scale_rewards: str = field(
        default="none", metadata={"help": "none (advantage = reward - group mean, as the paper), group or batch"}
    )
    loss_type: str = field(default="grpo", metadata={"help": "TRL loss aggregation: grpo, dr_grpo, dapo, bnpo"})
    max_pixels: int | None = field(default=None, metadata={"help": MAX_PIXELS_HELP})
    use_vllm: bool = field(
        default=False, metadata={"help": "rollouts generate with a vLLM engine colocated with each trainer process"}
    )
    vllm_importance_sampling_mode: str = field(
        default="token_truncate",
        metadata={
            "help": "TRL's correction for vLLM's sampling log-probs: token_truncate (each token's ratio capped), "
            "token_mask, sequence_truncate or sequence_mask (TRL's default: one ratio, the product over every reply "
            "token of an episode, so small drift over thousands of tokens masks whole episodes)"
        },
    )
    vllm_importance_sampling_clip_max: float = field(
        default=3.0, metadata={"help": "the cap (truncate) or the limit past which a ratio is zeroed (mask)"}
    )
    search_only: bool = field(
        default=False,
        metadata={"help": "roll out only on questions that need a search (the vision tower is frozen in GRPO)"},
    )
    limit: int | None = field(default=None, metadata={"help": "use the first N questions only (after search_only)"})
    schedule: Schedule = field(
        default_factory=lambda: Schedule(
            epochs=1.0, learning_rate=2e-6, lr_scheduler="constant_with_warmup", warmup=45, per_device_batch_size=8
        )
    )

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ConfigError(f"num_generations must be at least 2 (a group), got {self.num_generations}")
        if self.scale_rewards not in ("none", "group", "batch"):
            raise ConfigError(f"scale_rewards must be none, group or batch, got {self.scale_rewards!r}")
        _check_batch(self.questions_per_step * self.num_generations, self.schedule.per_device_batch_size)
        _check_max_pixels(self.max_pixels)
        if self.agent.max_episode_tokens is None:
            raise ConfigError("agent.max_episode_tokens must be set: it is TRL's max_completion_length")
        if self.vllm_importance_sampling_mode not in IMPORTANCE_SAMPLING_MODES:
            raise ConfigError(
                f"vllm_importance_sampling_mode must be one of {', '.join(IMPORTANCE_SAMPLING_MODES)}, "
                f"got {self.vllm_importance_sampling_mode!r}"
            )
        if self.use_vllm and self.vllm.guided:
            # vLLM does not report which tokens its grammar forced, and a forced token must carry no weight in the
            # loss (docs/training.md, "Guided rollouts"): guided rollouts stay on the transformers path.
            raise ConfigError("use_vllm: true needs vllm.guided: false (vLLM does not say which tokens it forced)")


def _check_max_pixels(max_pixels: int | None) -> None:
    if max_pixels is not None and max_pixels < 56 * 56:  # the smallest image Qwen2.5-VL's processor makes
        raise ConfigError(f"max_pixels must be at least {56 * 56} (56 x 56), got {max_pixels}")


def _check_batch(global_batch: int, per_device: int) -> None:
    if per_device < 1 or global_batch < 1:
        raise ConfigError("batch sizes must be at least 1")
    if global_batch % per_device:
        raise ConfigError(
            f"the global batch ({global_batch}) must be a multiple of per_device_batch_size ({per_device})"
        )


def accumulation_steps(global_batch: int, per_device: int, world_size: int) -> int:
    """Gradient-accumulation steps that make ``per_device x world_size x steps`` equal the global batch."""
    per_step = per_device * world_size
    if global_batch % per_step:
        raise ConfigError(
            f"a global batch of {global_batch} cannot be split over {world_size} device(s) x {per_device} per device; "
            "change global_batch_size (or questions_per_step) or per_device_batch_size"
        )
    return global_batch // per_step


def _common(schedule: Schedule, out: str, use_cpu: bool, bf16: bool, accumulation: int) -> dict[str, Any]:
    return {
        "output_dir": out,
        "per_device_train_batch_size": schedule.per_device_batch_size,
        "gradient_accumulation_steps": accumulation,
        "learning_rate": schedule.learning_rate,
        "lr_scheduler_type": schedule.lr_scheduler,
        "warmup_steps": schedule.warmup,  # transformers reads a float below 1 as a share of the steps
        "weight_decay": schedule.weight_decay,
        "num_train_epochs": schedule.epochs,
        "max_steps": schedule.max_steps,
        "bf16": bf16,
        "use_cpu": use_cpu,
        "activation_checkpointing": schedule.gradient_checkpointing,
        "seed": schedule.seed,
        "logging_steps": schedule.logging_steps,
        "save_strategy": "steps",
        "save_steps": schedule.save_steps,
        "save_total_limit": schedule.save_total_limit,
        "report_to": [],  # our MetricsLogger writes TensorBoard and JSONL itself, with the rollout metrics
        "remove_unused_columns": False,  # our collator and rollout read columns the model's signature does not name
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }


def sft_args(config: TrainSFTConfig | TrainAlignConfig, use_cpu: bool, bf16: bool, world_size: int) -> Any:
    """TRL's ``SFTConfig`` for our config: batches derived, preparation skipped (our collator tokenizes)."""
    from trl import SFTConfig

    schedule = config.schedule
    accumulation = accumulation_steps(config.global_batch_size, schedule.per_device_batch_size, world_size)
    return SFTConfig(
        **_common(schedule, config.out, use_cpu, bf16, accumulation),
        max_length=None,  # conversations are filtered by length, never truncated (a cut could split the image)
        dataset_kwargs={"skip_prepare_dataset": True},
    )


def grpo_args(config: TrainGRPOConfig, use_cpu: bool, bf16: bool, world_size: int) -> Any:
    """TRL's ``GRPOConfig`` for our config: one generation batch = questions_per_step x num_generations rollouts."""
    from trl import GRPOConfig

    rollouts = config.questions_per_step * config.num_generations
    accumulation = accumulation_steps(rollouts, config.schedule.per_device_batch_size, world_size)
    return GRPOConfig(
        **_common(config.schedule, config.out, use_cpu, bf16, accumulation),
        num_generations=config.num_generations,
        generation_batch_size=rollouts,
        beta=config.beta,
        epsilon=config.epsilon,
        scale_rewards=config.scale_rewards,
        loss_type=config.loss_type,
        temperature=config.sampling.temperature,
        top_p=config.sampling.top_p,
        max_completion_length=config.agent.max_episode_tokens,
        # Colocated: each process samples its own episodes turn by turn, so no process waits on another's turns.
        use_vllm=config.use_vllm,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=config.vllm.gpu_memory_utilization,
        vllm_max_model_length=config.vllm.max_model_len,
        vllm_tensor_parallel_size=config.vllm.tensor_parallel_size,
        vllm_importance_sampling_mode=config.vllm_importance_sampling_mode,
        vllm_importance_sampling_clip_max=config.vllm_importance_sampling_clip_max,
        # TRL builds the reference model from these; without device_map it would spread one copy over every
        # visible GPU under FSDP ("auto"). On the CPU it is placed by the trainer, in the run's compute dtype.
        model_init_kwargs=reference_model_kwargs(config, use_cpu, bf16),
        reward_weights=[config.reward.judge_weight, config.reward.format_weight],
        shuffle_dataset=True,
    )


def reference_model_kwargs(config: TrainGRPOConfig, use_cpu: bool, bf16: bool) -> dict[str, Any] | None:
    """How TRL loads the reference model, when there is one (KL on, no LoRA: with LoRA the adapter-free model is the
    reference): on the CPU, for the trainer to place it (shard it under ZeRO-3 or FSDP, move it to this process's
    device otherwise), in the compute dtype even when the policy trains float32 master weights."""
    if config.beta == 0 or config.lora.enabled:
        return None
    return {"device_map": None, "dtype": "bfloat16" if bf16 and not use_cpu else "float32"}

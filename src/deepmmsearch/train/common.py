"""What SFT and GRPO share: the trainable model, resuming, the final save and the metrics log.

Imports torch, transformers and peft inside functions only.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepmmsearch.errors import ConfigError
from deepmmsearch.records import append_jsonl, read_jsonl, trim_torn_tail, write_jsonl
from deepmmsearch.train.config import FUSED_EXPERTS, LoraSettings

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
FINAL_DIR = "final"


def device_and_precision(device: str, dtype: str) -> tuple[bool, bool, str]:
    """``(use_cpu, bf16, model dtype)`` for a config's device and dtype names. On a CPU, bfloat16 trains float32
    weights under bfloat16 autocast: the compute is bfloat16's, and small updates are not rounded away."""
    import torch

    use_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    if device not in ("auto", "cpu"):
        raise ConfigError(f"unknown training device {device!r}; use auto or cpu (Accelerate places the processes)")
    if dtype == "auto":
        dtype = "float32" if use_cpu else "bfloat16"
    if dtype not in ("float32", "bfloat16"):
        raise ConfigError(f"unknown training dtype {dtype!r}; use auto, float32 or bfloat16")
    return use_cpu, dtype == "bfloat16", "float32" if use_cpu else dtype


def sharded_by_launcher() -> bool:
    """Whether ``accelerate launch`` runs this under DeepSpeed or FSDP (read before the Accelerator exists)."""
    return any(
        os.environ.get(name, "").lower() == "true" for name in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP")
    )


def master_dtype(dtype: str, full_weights: bool) -> str:
    """The dtype trainable weights are loaded in. bfloat16 weights that the optimizer updates directly (full
    fine-tuning, not LoRA) would round most small updates away (at lr 2e-6 an update is below bfloat16's
    resolution of most weights), and AdamW would keep bfloat16 moments: those load in float32 and train under
    bfloat16 autocast. DeepSpeed and FSDP keep float32 master weights themselves; LoRA adapters are float32 (PEFT)."""
    if dtype == "bfloat16" and full_weights and not sharded_by_launcher():
        return "float32"
    return dtype


def world_size() -> int:
    """Processes in this run (set by ``accelerate launch`` or ``torchrun``; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def trainable_model(
    path: str,
    dtype: str,
    lora: LoraSettings,
    train_vision: bool = False,
    train_language_model: bool = True,
    max_pixels: int | None = None,
) -> tuple[Any, Any]:
    """``(model, processor)`` ready to train: vision tower and projector frozen (unless ``train_vision``, for a new
    vision tower); LoRA on the LM, the whole LM, or (``train_language_model`` false, vision alignment) none of it.
    Weights the optimizer updates directly load in float32 where ``master_dtype`` says so. ``max_pixels`` bounds
    the images the processor makes (see :func:`limit_image_size`)."""
    from deepmmsearch.models.build import load_model

    if not path:
        raise ConfigError("no model to train: set model: in the config or pass --model DIR")
    full_weights = train_vision or (train_language_model and not lora.enabled)
    # The Trainer places it; under ZeRO-3 each process loads its shard.
    model, processor = load_model(path, master_dtype(dtype, full_weights), partitioned=True)
    if max_pixels is not None:
        limit_image_size(processor, max_pixels)
    # The projector (visual.merger) lives inside the vision tower in Qwen2.5-VL: one switch freezes both.
    for parameter in model.model.visual.parameters():
        parameter.requires_grad = train_vision
    if not train_language_model:
        for parameter in model.model.language_model.parameters():
            parameter.requires_grad = False
        model.lm_head.weight.requires_grad = False
    elif lora.enabled:
        from peft import LoraConfig, get_peft_model

        names = [name for name, _ in model.named_parameters()]
        experts = [end for end in FUSED_EXPERTS if lora.experts and any(n.endswith(end) for n in names)]
        dropout = lora.dropout
        if experts and dropout:
            warnings.warn(
                f"LoRA on the fused experts takes no dropout (PEFT): lora.dropout {dropout} is 0 for this model; "
                "set lora.experts: false to keep it and leave the experts frozen",
                UserWarning,
                stacklevel=2,
            )
            dropout = 0.0
        peft_config = LoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha,
            lora_dropout=dropout,
            target_modules=lora.target_modules,
            target_parameters=experts or None,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, peft_config)
        if not any(p.requires_grad for p in model.parameters()):
            raise ConfigError(f"lora.target_modules {lora.target_modules!r} matches no layer of {path}")
        for parameter in model.get_base_model().model.visual.parameters():
            parameter.requires_grad = train_vision  # PEFT froze everything but the adapters
    model.train()
    return model, processor


def image_size_limit(processor: Any) -> int:
    """The largest image, in pixels, that the processor makes (its ``max_pixels``)."""
    return int(processor.image_processor.size["longest_edge"])


def limit_image_size(processor: Any, max_pixels: int) -> None:
    """Resize images to at most ``max_pixels`` (the processor then says so in the ``final/`` it is saved to)."""
    size = processor.image_processor.size
    processor.image_processor.size = {"shortest_edge": int(size["shortest_edge"]), "longest_edge": int(max_pixels)}


def resume_checkpoint(out: str | Path, resume: bool) -> str | None:
    """The checkpoint to continue from when resuming (None: start afresh), and the metrics log trimmed to it."""
    out = Path(out)
    checkpoint = _last_whole_checkpoint(out) if resume and out.is_dir() else None
    metrics = out / METRICS_FILE
    if metrics.is_file():
        trim_torn_tail(metrics)
        if checkpoint is None:
            metrics.unlink()  # a fresh run starts a fresh log
        else:
            # Steps logged after the checkpoint will be trained and logged again: keep each step once.
            step = int(Path(checkpoint).name.rsplit("-", 1)[-1])
            kept = [r for r in read_jsonl(metrics) if r.get("step", 0) <= step]
            write_jsonl(metrics, kept)
    return checkpoint


def _last_whole_checkpoint(out: Path) -> str | None:
    """The newest ``checkpoint-N`` that was written to the end. transformers writes ``trainer_state.json`` last
    and not atomically, so a kill during a save leaves a folder without it (or with it torn): skip those."""
    steps = {p: p.name.removeprefix("checkpoint-") for p in out.glob("checkpoint-*")}
    for folder in sorted((p for p, n in steps.items() if n.isdigit()), key=lambda p: int(steps[p]), reverse=True):
        try:
            json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return str(folder)
    return None


def save_final(trainer: Any, processor: Any, out: str | Path, dtype: str | None = None) -> Path:
    """Save the trained model, LoRA merged in, with its processor and our generation settings to ``out/final``:
    loadable as ``hf:OUT/final``. Every process takes part (under ZeRO-3 and FSDP the weights are gathered from all
    of them); the main process merges and writes, weights cast to ``dtype`` (None: as trained)."""
    from deepmmsearch.models.build import whole_models
    from deepmmsearch.train.distributed import gather_state_dict, sharding, write_final

    final = Path(out) / FINAL_DIR
    accelerator = trainer.accelerator
    accelerator.wait_for_everyone()
    # DeepSpeed gathers through its engine; FSDP through the module it sharded in place.
    prepared = trainer.model_wrapped if sharding(accelerator) == "zero3" else trainer.model
    state_dict = gather_state_dict(accelerator, prepared)
    if accelerator.is_main_process:
        with whole_models():
            write_final(state_dict, accelerator.unwrap_model(trainer.model), final, dtype)
        processor.save_pretrained(final)
        generation_config(processor.tokenizer).save_pretrained(final)
    accelerator.wait_for_everyone()
    return final


def generation_config(tokenizer: Any) -> Any:
    """Our decoding defaults as a ``GenerationConfig``: greedy, a turn ends at ``<|im_end|>`` (or the padding token),
    no repetition penalty. Saved in ``final/`` in place of the base model's own sampling settings, which ``vllm
    serve`` and ``model.generate`` would otherwise apply by default."""
    from transformers import GenerationConfig

    from deepmmsearch.models.chat import EOS_TOKEN, PAD_TOKEN, stop_ids
    from deepmmsearch.policies.base import SamplingConfig

    eos = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    return GenerationConfig(
        do_sample=False,
        eos_token_id=[eos, *sorted(stop_ids(tokenizer) - {eos})],
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN),
        max_new_tokens=SamplingConfig().max_new_tokens,
        repetition_penalty=1.0,
    )


def train_and_save(
    trainer: Any,
    processor: Any,
    out: str | Path,
    checkpoint: str | None,
    start: float,
    description: str = "training",
    then: Callable[[Any], None] | None = None,
    dtype: str | None = None,
) -> tuple[Any, dict]:
    """Train (continuing from ``checkpoint``) under a progress bar, run ``then`` (given the bars) on the trained
    model, save ``out/final``; return TRL's result and the summary every run reports: final model folder, steps,
    checkpoint resumed from, processes, wall time. ``dtype``: the weights' type in ``final/`` (None: as trained)."""
    import time

    from transformers import PrinterCallback

    from deepmmsearch.progress import progress_bars

    trainer.remove_callback(PrinterCallback)  # logs go to the metrics file; stdout stays for the summary (--json)
    with progress_bars(show=trainer.is_world_process_zero()) as bars:
        trainer.add_callback(_progress_callback(bars, description))
        result = trainer.train(resume_from_checkpoint=checkpoint)
        if then is not None:
            then(bars)
    final = save_final(trainer, processor, out, dtype)
    return result, {
        "final": str(final),
        "steps": trainer.state.global_step,
        "resumed_from": checkpoint,
        "processes": trainer.accelerator.num_processes,
        "wall_s": round(time.perf_counter() - start, 1),
    }


def _progress_callback(bars: Any, description: str) -> Any:
    """Optimizer steps on a bar, with the last logged loss (and reward) beside it. Ours, not transformers' tqdm
    bar, which prints every log to stdout, nor TRL's rich one, which draws a panel on stdout."""
    from transformers import TrainerCallback

    class StepProgress(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            bars.update(description, completed=state.global_step, total=state.max_steps)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            bars.update(description, completed=state.global_step)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            shown = [f"{key} {logs[key]:.3g}" for key in ("loss", "reward") if isinstance((logs or {}).get(key), float)]
            if shown:
                bars.update(description, note=" · ".join(shown))

    return StepProgress()


def make_metrics_logger(out: str | Path, extra: Callable[[], dict[str, float]] | None = None) -> Any:
    """A TrainerCallback that writes every log (plus ``extra()``, e.g. rollout metrics) to JSONL and TensorBoard."""
    from transformers import TrainerCallback

    out = Path(out)

    class MetricsLogger(TrainerCallback):
        def __init__(self) -> None:
            self.writer: Any = None

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            if not state.is_world_process_zero or not logs:
                return
            record = {"step": state.global_step, **logs, **(extra() if extra else {})}
            record = {k: v for k, v in record.items() if not (isinstance(v, float) and math.isnan(v))}
            append_jsonl(out / METRICS_FILE, [record])
            if self.writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(out / TENSORBOARD_DIR))
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                    self.writer.add_scalar(key, value, state.global_step)
            self.writer.flush()

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.writer is not None:
                self.writer.close()
                self.writer = None

    return MetricsLogger()


def read_metrics(out: str | Path) -> list[dict]:
    """The records of a run's metrics log, in order."""
    path = Path(out) / METRICS_FILE
    return list(read_jsonl(path)) if path.is_file() else []

"""What sharded training (DeepSpeed ZeRO-3, FSDP) needs beyond TRL: the whole model for the final save, and whole
weights on every process while rollouts generate.

Under ZeRO-3 and FSDP each process holds only shards of the parameters. ``accelerator.unwrap_model`` gives the
module, not its weights: a save or a LoRA merge from it writes empty shards, and a forward through it gathers
parameters collectively, so every process must run the same number of forwards (TRL's own generation keeps them in
step; our episodes take different numbers of turns and tokens). Imports torch, peft and accelerate inside functions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deepmmsearch.errors import ConfigError


def start_processes(args: Any) -> None:
    """Join this run's processes before any model loads, so that under ZeRO-3 (``zero3_init_flag``) transformers
    loads each model partitioned across them (``deepspeed.zero.Init``) instead of whole in every process's memory.
    ``args`` are the run's ``TrainingArguments``: making them registered the DeepSpeed config; reading their device
    starts the process group. Accelerate joins DeepSpeed's communication to it only on GPUs: here it is joined
    everywhere (a no-op where it is already)."""
    import torch.distributed

    _ = args.device
    if getattr(args, "deepspeed_plugin", None) is not None and torch.distributed.is_initialized():
        import deepspeed

        deepspeed.init_distributed(dist_backend=torch.distributed.get_backend(), auto_mpi_discovery=False)


def sharding(accelerator: Any) -> str:
    """``zero3``, ``fsdp2``, ``fsdp1`` or ``none``: how the trained weights are split across processes."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        stage = accelerator.state.deepspeed_plugin.deepspeed_config.get("zero_optimization", {}).get("stage")
        return "zero3" if stage == 3 else "none"
    if accelerator.distributed_type == DistributedType.FSDP:
        return "fsdp2" if accelerator.is_fsdp2 else "fsdp1"
    return "none"


def gather_state_dict(accelerator: Any, model: Any) -> dict[str, Any]:
    """The whole state dict of a prepared model, on the CPU of the main process (other processes may get an empty
    one). Every process must call it: under ZeRO-3 and FSDP it gathers collectively (Accelerate's
    ``get_state_dict``, which needs ``zero3_save_16bit_model: true`` under ZeRO-3)."""
    if sharding(accelerator) == "none":
        # Unsharded: a CPU copy, so that merging LoRA into it leaves the trained model as it is.
        return {k: v.detach().to("cpu", copy=True) for k, v in accelerator.unwrap_model(model).state_dict().items()}
    return accelerator.get_state_dict(model)


def plain_class(model: Any) -> type:
    """The model's own class: FSDP2 swaps a sharded module's class for a subclass of it made on the fly."""
    return next(c for c in type(model).__mro__ if not c.__module__.startswith("torch."))


def write_final(state_dict: dict[str, Any], model: Any, final: str | Path, dtype: str | None = None) -> Any:
    """Save a gathered ``state_dict`` of ``model`` (a transformers model or a PEFT model around one) to ``final``
    with LoRA merged in, weights cast to ``dtype`` (None: as gathered). Runs in one process. The model is rebuilt on
    the meta device and takes the gathered tensors, so nothing of the (sharded) trained model is read but its
    class, config and LoRA settings. Returns the merged model."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    peft_config = model.peft_config.get("default") if hasattr(model, "peft_config") else None
    # TRL's GRPO keeps the reference policy as a second, frozen adapter ("ref"): only the trained one is merged.
    others = [name for name in getattr(model, "peft_config", {}) if name != "default"]
    state_dict = {k: v for k, v in state_dict.items() if not any(f".{name}." in k for name in others)}
    with torch.device("meta"):
        skeleton = plain_class(base)(base.config)
        if peft_config is not None:
            from peft import get_peft_model

            skeleton = get_peft_model(skeleton, peft_config)
    missing, unexpected = skeleton.load_state_dict(state_dict, strict=False, assign=True)
    tied = set(getattr(base, "all_tied_weights_keys", {}) or {})
    missing = [k for k in missing if not any(k.endswith(t) for t in tied)]
    if missing or unexpected:
        raise RuntimeError(
            f"the gathered weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    # Tied weights were gathered as two tensors: tie them again before the merge, which checks the tie.
    (skeleton.get_base_model() if peft_config is not None else skeleton).tie_weights()
    merged = skeleton.merge_and_unload() if peft_config is not None else skeleton
    left = [name for name, p in merged.named_parameters() if p.is_meta]
    if left:
        raise RuntimeError(f"no gathered weights for {left[:3]}")
    if dtype is not None:
        merged.to(getattr(torch, dtype))
    merged.save_pretrained(final)
    return merged


@contextmanager
def whole_weights(trainer: Any) -> Iterator[Any]:
    """The trained model with whole parameters on every process while it generates, so that each process may run
    its own number of forwards: ZeRO-3 gathers them (TRL's ``unwrap_model_for_generation``), FSDP v2 unshards every
    module and keeps it so until the rollouts end. Yields the unwrapped model."""
    accelerator = trainer.accelerator
    kind = sharding(accelerator)
    if kind == "zero3":
        from trl.models import unwrap_model_for_generation

        with unwrap_model_for_generation(trainer.model_wrapped, accelerator, gather_deepspeed3_params=True) as model:
            yield model
    elif kind == "fsdp2":
        plugin = accelerator.state.fsdp_plugin
        with fsdp2_unsharded(trainer.model, bool(plugin.reshard_after_forward)):
            yield accelerator.unwrap_model(trainer.model)
    elif kind == "fsdp1":
        raise ConfigError(FSDP1_REFUSAL)
    else:
        yield accelerator.unwrap_model(trainer.model)


FSDP1_REFUSAL = (
    "in-process rollouts under FSDP v1 would run different numbers of forwards on each process (a hang): "
    "set fsdp_version: 2 (configs/accelerate/fsdp-8gpu.yaml), use DeepSpeed ZeRO-3, or use_vllm: true"
)


@contextmanager
def fsdp2_unsharded(model: Any, reshard_after_forward: bool) -> Iterator[None]:
    """Every FSDP v2 module of ``model`` unsharded, and not resharded after a forward, inside the block: forwards
    then gather nothing, so processes need not run the same number of them. Afterwards the modules are resharded
    and reshard after forward as ``reshard_after_forward`` says (Accelerate gives every module its plugin's value)."""
    from torch.distributed.fsdp import FSDPModule

    modules = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for module in modules:
        module.set_reshard_after_forward(False, recurse=False)
    for module in modules:
        module.unshard()
    try:
        yield
    finally:
        for module in modules:
            module.reshard()
            module.set_reshard_after_forward(reshard_after_forward, recurse=False)


def check_rollout_sharding(accelerator: Any, use_vllm: bool) -> None:
    """Refuse, before training, a set-up whose in-process rollouts cannot run (they would hang)."""
    if not use_vllm and sharding(accelerator) == "fsdp1":
        raise ConfigError(FSDP1_REFUSAL)

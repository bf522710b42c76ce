"""One process of the 2-process FSDP v2 test (tests/train/test_distributed.py), started by torchrun on gloo.

Accelerate turns FSDP on only for accelerators (on CPUs its state stays MULTI_CPU), so this worker shards the
model itself with torch's ``fully_shard``, as Accelerate's FSDP v2 preparation does on GPUs (each decoder layer and
vision block, then the root), and marks the Accelerator's state as FSDP v2 so that our code takes its FSDP paths.
Argv: MODEL_DIR OUT_DIR. For LoRA and for full fine-tuning (``lora``, ``full``), writes OUT_DIR/KIND/final (rank 0)
and OUT_DIR/KIND/logits-RANK.pt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist


def perturbed_model(path: str, lora: bool) -> tuple[object, object]:
    """The tiny model with every weight moved by seeded noise (LoRA B included): the same on every process."""
    from deepmmsearch.train.common import trainable_model
    from deepmmsearch.train.config import LoraSettings

    torch.manual_seed(0)
    model, processor = trainable_model(path, "float32", LoraSettings(enabled=lora))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.02)
    return model, processor


def main() -> None:
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    for kind in ("lora", "full"):
        out = Path(sys.argv[2]) / kind
        out.mkdir(parents=True, exist_ok=True)
        run(accelerator, sys.argv[1], out, kind == "lora")
    dist.destroy_process_group()


def run(accelerator: object, path: str, out: Path, lora: bool) -> None:
    """Shard the model, run rollout forwards, gather and save it."""
    from accelerate import FullyShardedDataParallelPlugin
    from accelerate.utils import DistributedType
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from deepmmsearch.train.distributed import fsdp2_unsharded, gather_state_dict, sharding, write_final

    rank = accelerator.process_index
    model, processor = perturbed_model(path, lora)
    model.eval()
    ids = torch.tensor([[5, 9, 13, 21, 8, 30]])

    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    base = model.get_base_model() if lora else model
    for layer in [*base.model.language_model.layers, *base.model.visual.blocks]:
        fully_shard(layer, mesh=mesh, reshard_after_forward=True)
    fully_shard(model, mesh=mesh, reshard_after_forward=True)
    accelerator.state.distributed_type = DistributedType.FSDP
    accelerator.state.fsdp_plugin = FullyShardedDataParallelPlugin(fsdp_version=2, reshard_after_forward=True)
    assert sharding(accelerator) == "fsdp2"

    # Rollouts: each process runs its own number of forwards; a gathering forward would hang the other process.
    with fsdp2_unsharded(model, reshard_after_forward=True), torch.inference_mode():
        for _ in range(1 + 2 * rank):
            logits = model(input_ids=ids).logits
    torch.save(logits, out / f"logits-{rank}.pt")

    state_dict = gather_state_dict(accelerator, model)
    if accelerator.is_main_process:
        write_final(state_dict, accelerator.unwrap_model(model), out / "final", "float32")
        processor.save_pretrained(out / "final")
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main()

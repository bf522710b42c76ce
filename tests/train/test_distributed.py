"""Sharded training: the final save gathers the whole model (LoRA merged in one process), and rollouts generate
under FSDP v2 with each process running its own number of forwards. Two processes on gloo, as on GPUs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from deepmmsearch.models.build import load_model

WORKER = Path(__file__).with_name("fsdp_worker.py")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_process_final(tiny_model: Path, out: Path, lora: bool) -> tuple[Path, torch.Tensor]:
    """The same model saved by one process (nothing sharded), and its logits."""
    from accelerate import Accelerator

    sys.path.insert(0, str(WORKER.parent))
    try:
        from fsdp_worker import perturbed_model
    finally:
        sys.path.remove(str(WORKER.parent))
    from deepmmsearch.train.distributed import gather_state_dict, sharding, write_final

    model, processor = perturbed_model(str(tiny_model), lora)
    model.eval()
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([[5, 9, 13, 21, 8, 30]])).logits
    accelerator = Accelerator(cpu=True)
    assert sharding(accelerator) == "none"
    write_final(gather_state_dict(accelerator, model), model, out, "float32")
    processor.save_pretrained(out)
    return out, logits


def test_fsdp2_final_save_and_rollout_forwards_match_one_process(tiny_model, tmp_path):
    out = tmp_path / "fsdp"
    launch = [
        sys.executable,
        *("-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port())),
        str(WORKER),
        str(tiny_model),
        str(out),
    ]
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), ENV.get("PYTHONPATH", "")])}
    result = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]

    for kind in ("lora", "full"):
        single, logits = _one_process_final(tiny_model, tmp_path / "single" / kind, kind == "lora")
        # Rollout forwards of either process, unsharded, give the whole model's logits (process 1 ran three).
        for rank in (0, 1):
            assert torch.allclose(torch.load(out / kind / f"logits-{rank}.pt"), logits, atol=1e-5), (kind, rank)
        sharded, _ = load_model(out / kind / "final", "float32", "cpu")
        whole, _ = load_model(single, "float32", "cpu")
        reference = whole.state_dict()
        assert set(sharded.state_dict()) == set(reference)
        for name, tensor in sharded.state_dict().items():
            assert torch.equal(tensor, reference[name]), (kind, name)
        assert not any("lora" in name for name in reference)


def test_the_fsdp_config_wraps_the_layers_of_every_family(tmp_path: Path) -> None:
    """configs/accelerate/fsdp-8gpu.yaml wraps each family's decoder layers and vision blocks (one process here)."""
    from deepmmsearch.models.build import init_model
    from deepmmsearch.models.families import FAMILIES

    models = [str(init_model(tmp_path / name, size="tiny", arch=name)) for name in FAMILIES]
    config = Path(__file__).parents[2] / "configs" / "accelerate" / "fsdp-8gpu.yaml"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--num_processes", "1"]
    result = subprocess.run(
        [*launch, str(WORKER.with_name("fsdp_wrap_worker.py")), *models],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line[5:]) for line in result.stdout.splitlines() if line.startswith("WRAP ")]
    assert len(lines) == len(FAMILIES)
    for line in lines:
        layers = [name for name in line["wrapped"] if name.endswith("DecoderLayer")]
        blocks = [name for name in line["wrapped"] if name.endswith("VisionBlock")]
        assert len(layers) == len(blocks) == 1, line

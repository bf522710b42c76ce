"""The README's ZeRO-3 recipe on two CPU processes (DeepSpeed on gloo): the shipped accelerate config with two
processes instead of eight. The model loads partitioned (``zero.Init``), SFT gathers the whole model for final/
(equal to a one-process run), and the doctor's SFT, reload and GRPO (in-process rollouts) pass."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from deepmmsearch.models.build import load_model

pytest.importorskip("deepspeed")

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("zero3_probe.py")
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
}
SFT = ["train", "sft", "--full", "--global-batch-size", "4", "--schedule.per-device-batch-size", "2"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def launch_config(tmp_path_factory) -> Path:
    """configs/accelerate/zero3-8gpu.yaml on 2 processes, in float32 (as the CPU configs train)."""
    config = yaml.safe_load((REPO / "configs" / "accelerate" / "zero3-8gpu.yaml").read_text())
    config.update(num_processes=2, mixed_precision="no")
    path = tmp_path_factory.mktemp("accelerate") / "zero3-2cpu.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _launch(launch_config: Path, *args: str) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--main_process_port", str(_free_port())]
    command = [*launcher, "--config_file", str(launch_config), *args]
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _dmms(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deepmmsearch", *args], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_model_loads_partitioned(launch_config: Path, tiny_model: Path, tmp_path: Path) -> None:
    result = _launch(launch_config, str(PROBE), str(tiny_model), str(tmp_path))
    lines = result.stdout.splitlines()
    shapes = [json.loads(line.removeprefix("PROBE ")) for line in lines if line.startswith("PROBE ")]
    assert len(shapes) == 2 and all(shape == {"partitioned": True, "local": [0]} for shape in shapes), shapes


def test_sft_under_zero3_saves_what_one_process_trains(
    launch_config: Path, tiny_model: Path, sft_data: Path, tmp_path: Path
) -> None:
    """Full fine-tuning, 2 steps: the gathered final/ equals one process's (same batches, same optimizer steps)."""
    data = ["--model", str(tiny_model), "--data", str(sft_data), "--schedule.max-steps", "2"]
    _launch(launch_config, "-m", "deepmmsearch", *SFT, *data, "--out", str(tmp_path / "zero3"))
    _dmms(*SFT, *data, "--out", str(tmp_path / "single"))
    sharded, _ = load_model(tmp_path / "zero3" / "final", "float32", "cpu")
    single, _ = load_model(tmp_path / "single" / "final", "float32", "cpu")
    base, _ = load_model(tiny_model, "float32", "cpu")
    reference, before = single.state_dict(), base.state_dict()
    assert set(sharded.state_dict()) == set(reference)
    for name, tensor in sharded.state_dict().items():
        assert torch.allclose(tensor, reference[name], atol=1e-6), name
    assert max((reference[n] - before[n]).abs().max().item() for n in reference) > 1e-5  # it did train


def test_the_doctor_passes_under_zero3(launch_config: Path, tmp_path: Path) -> None:
    """LoRA SFT, final/ reloaded as hf: in the same processes (whole, though the run's ZeRO-3 config is still
    registered), and GRPO with in-process rollouts, each process on its own episodes."""
    result = _launch(launch_config, "-m", "deepmmsearch", "doctor", "--json", "--out", str(tmp_path / "doctor"))
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["environment"]["processes"] == 2
    checks = {c["name"]: c["status"] for c in report["checks"]}
    for name in ("SFT step", "final/ reload", "GRPO step"):
        assert checks[name] == "ok", report["checks"]

"""``dmms doctor``: a pre-flight of the training stack before a long run.

It prints the versions and devices, then runs each path of the recipe once on the smallest model that shows it (the
tiny small-vocabulary model, on a world of 8 entities with the in-memory search tools): one SFT step with LoRA and
its merged save, ``final/`` loaded back and asked one question, one GRPO step with in-process rollouts and, with
``gpu`` and vLLM installed, one with vLLM rollouts. Under ``accelerate launch`` the steps run on every process, so
the configs in ``configs/accelerate/`` are checked as well (the gathered save, whole weights for rollouts). Each
check reports ok, failed (with the error) or skipped (with why), and what it could not check is said.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "vllm", "deepspeed")


@dataclass
class Check:
    """One step of the pre-flight: ``ok``, ``failed`` or ``skipped``, with what it saw or why."""

    name: str
    status: str
    detail: str = ""
    seconds: float = 0.0


@dataclass
class DoctorReport:
    """The environment (versions, devices, memory) and every check, in the order they ran."""

    environment: dict[str, Any]
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "failed" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"environment": self.environment, "checks": [asdict(c) for c in self.checks], "ok": self.ok}


def environment() -> dict[str, Any]:
    """Python and package versions, CPU cores and memory, the CUDA devices with their memory, and the processes."""
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    devices = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            devices.append(
                {
                    "index": index,
                    "name": torch.cuda.get_device_name(index),
                    "memory_gib": round(total / 2**30, 1),
                    "free_gib": round(free / 2**30, 1),
                    "bf16": torch.cuda.is_bf16_supported(),
                }
            )
    return {
        "python": platform.python_version(),
        "packages": versions,
        "cuda": torch.version.cuda,
        "cpu_cores": os.cpu_count(),
        "memory_gib": round(pages * page_size / 2**30, 1),
        "gpus": devices,
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
        "launcher": _launcher(),
    }


def _launcher() -> str:
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        return "accelerate (DeepSpeed)"
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "accelerate (FSDP)"
    return "torchrun / accelerate" if "WORLD_SIZE" in os.environ else "one process"


def run_doctor(out: str | Path, gpu: bool = False, say: Callable[[str], None] = print) -> DoctorReport:
    """Run the pre-flight in ``out`` (its world, data and runs); ``gpu``: train on the GPUs (else on the CPU) and
    try vLLM rollouts. ``say`` hears each line as it comes. Never raises for a failed step: the report says."""
    out = Path(out)
    report = DoctorReport(environment())
    env = report.environment
    say(f"python {env['python']} · " + " · ".join(f"{k} {v or '-'}" for k, v in env["packages"].items()))
    cores, memory = env["cpu_cores"], env["memory_gib"]
    say(f"{cores} CPU cores, {memory} GiB memory; {env['processes']} process(es), {env['launcher']}")
    for device in env["gpus"]:
        say(f"GPU {device['index']}: {device['name']}, {device['free_gib']} of {device['memory_gib']} GiB free")
    if not env["gpus"]:
        say("no CUDA device")

    def check(name: str, step: Callable[[], str], needs: tuple[str, ...] = ()) -> None:
        failed = [c.name for c in report.checks if c.name in needs and c.status != "ok"]
        if failed:
            result = Check(name, "skipped", f"needs {', '.join(failed)}")
        else:
            start = time.perf_counter()
            try:
                result = Check(name, "ok", step())
            except Exception as e:  # a pre-flight reports every failure and goes on
                where = traceback.extract_tb(e.__traceback__)[-1]
                message = " ".join(str(e).split())[:300]
                detail = f"{type(e).__name__}: {message} ({Path(where.filename).name}:{where.lineno})"
                result = Check(name, "failed", detail)
            result.seconds = round(time.perf_counter() - start, 1)
        report.checks.append(result)
        say(f"[{result.status}] {name}: {result.detail}" + (f" ({result.seconds} s)" if result.seconds else ""))

    device = "auto" if gpu else "cpu"
    vllm = env["packages"]["vllm"] is not None
    if gpu and not env["gpus"]:
        report.checks.append(Check("GPU", "failed", "--gpu, but torch sees no CUDA device"))
        say("[failed] GPU: --gpu, but torch sees no CUDA device")
        return report
    check("set-up", lambda: _prepare(out))
    check("SFT step", lambda: _sft(out, device), needs=("set-up",))
    check("final/ reload", lambda: _reload(out, device), needs=("SFT step",))
    check("GRPO step", lambda: _grpo(out, device, use_vllm=False), needs=("SFT step",))
    if gpu and vllm:
        check("GRPO step with vLLM", lambda: _grpo(out, device, use_vllm=True), needs=("SFT step",))

    unchecked = []
    if not gpu:
        unchecked.append("GPU training (run `dmms doctor --gpu` on a GPU machine)")
    if not vllm:
        unchecked.append('vLLM rollouts (not installed: pip install -e ".[gpu]")')
    elif not gpu:
        unchecked.append("vLLM rollouts (need --gpu)")
    if env["processes"] == 1:
        unchecked.append(
            "several processes: the gathered save and whole weights for rollouts under ZeRO-3 or FSDP (run it under "
            "accelerate launch --config_file configs/accelerate/...)"
        )
    for what in unchecked:
        report.checks.append(Check(what.split(" (")[0], "skipped", "not checked: " + what))
        say(f"[skipped] not checked: {what}")
    return report


def _prepare(out: Path) -> str:
    """The world, the tiny model and the SFT data, made by the first process; the others wait for them."""
    import asyncio

    from deepmmsearch.data.build import DataBuildConfig, build_data
    from deepmmsearch.models.build import init_model
    from deepmmsearch.records import read_questions
    from deepmmsearch.runner import RunConfig
    from deepmmsearch.world.build import WorldConfig, build_world

    ready = out / "prepared"
    # This launch's name: a marker left by an earlier run must not let the other processes start early.
    launch = os.environ.get("TORCHELASTIC_RUN_ID", "") + os.environ.get("MASTER_PORT", "")
    if int(os.environ.get("RANK", "0")) != 0:
        for _ in range(600):
            if ready.is_file() and ready.read_text() == launch:
                return "made by process 0"
            time.sleep(0.5)
        raise TimeoutError(f"process 0 did not prepare {out} within 5 minutes")
    ready.unlink(missing_ok=True)
    build_world(out / "world", WorldConfig(seed=0, entities=8, captions=0))
    init_model(out / "model", vocab="small", size="tiny")
    questions = read_questions(out / "world" / "questions" / "train.jsonl")[:8]
    run_config = RunConfig(tools=_tools(out))
    summary = asyncio.run(build_data(questions, "oracle", out / "data", DataBuildConfig(), run_config))
    ready.write_text(launch)
    return f"world of 8 entities, tiny model, {summary.get('kept', '?')} SFT conversations"


def _tools(out: Path) -> Any:
    from deepmmsearch.tools import ToolsConfig

    return ToolsConfig(
        text_search="memory",
        image_search="memory",
        grounder="none",
        summarizer="list",
        kb=str(out / "world" / "sources"),
        no_cache=True,
    )


def _sft(out: Path, device: str) -> str:
    from deepmmsearch.train.common import world_size
    from deepmmsearch.train.config import LoraSettings, Schedule, TrainSFTConfig
    from deepmmsearch.train.sft import train_sft

    config = TrainSFTConfig(
        model=str(out / "model"),
        data=str(out / "data"),
        out=str(out / "sft"),
        lora=LoraSettings(enabled=True, rank=4, alpha=8),
        global_batch_size=world_size(),
        max_length=4096,
        schedule=Schedule(max_steps=1, learning_rate=1e-3, per_device_batch_size=1, device=device, save_steps=1000),
    )
    summary = train_sft(config)
    return f"1 step, loss {summary['train_loss']:.3g}, LoRA merged into {summary['final']}"


def _reload(out: Path, device: str) -> str:
    """``final/`` loads back as ``hf:`` with its processor and our generation settings, and answers a question."""
    import asyncio
    import json

    from deepmmsearch.agent import Agent, AgentConfig
    from deepmmsearch.policies import SamplingConfig
    from deepmmsearch.policies.hf import HFConfig, HFPolicy
    from deepmmsearch.protocol import Rules
    from deepmmsearch.records import read_questions
    from deepmmsearch.tools import build_toolbox

    final = out / "sft" / "final"
    generation = json.loads((final / "generation_config.json").read_text())
    if generation.get("repetition_penalty", 1.0) != 1.0 or generation.get("do_sample"):
        raise RuntimeError(f"{final}/generation_config.json is not ours: {generation}")
    hf_device = "cpu" if device == "cpu" else "auto"
    policy = HFPolicy(str(final), SamplingConfig(max_new_tokens=16), HFConfig(device=hf_device, max_batch_size=2))
    question = read_questions(out / "world" / "questions" / "train.jsonl")[0]
    agent = Agent(policy, build_toolbox(_tools(out)), AgentConfig(rules=Rules(max_turns=2)))
    trajectory = asyncio.run(agent.run(question))
    return f"hf:{final} ran an episode on {policy.device} ({trajectory.turns} turn(s), {trajectory.stop_reason})"


def _grpo(out: Path, device: str, use_vllm: bool) -> str:
    from deepmmsearch.agent import AgentConfig
    from deepmmsearch.policies import SamplingConfig
    from deepmmsearch.policies.vllm import VLLMConfig
    from deepmmsearch.protocol import Rules
    from deepmmsearch.train.common import world_size
    from deepmmsearch.train.config import LoraSettings, Schedule, TrainGRPOConfig
    from deepmmsearch.train.grpo import train_grpo

    config = TrainGRPOConfig(
        model=str(out / "sft" / "final"),
        questions=str(out / "world" / "questions" / "train.jsonl"),
        out=str(out / ("grpo-vllm" if use_vllm else "grpo")),
        lora=LoraSettings(enabled=False),  # full fine-tuning: the reference model is built and placed
        tools=_tools(out),
        agent=AgentConfig(rules=Rules(max_turns=2), max_episode_tokens=256),
        sampling=SamplingConfig(temperature=1.0, max_new_tokens=16),
        vllm=VLLMConfig(gpu_memory_utilization=0.2, max_model_len=2048, guided=False),
        num_generations=2,
        questions_per_step=world_size(),
        limit=4 * world_size(),
        use_vllm=use_vllm,
        schedule=Schedule(
            max_steps=1, learning_rate=1e-4, warmup=0, per_device_batch_size=2, device=device, save_steps=1000
        ),
    )
    summary = train_grpo(config)
    rollouts = "vLLM" if use_vllm else "in-process"
    return f"1 step, {rollouts} rollouts, reward {summary['reward_first']}, saved {summary['final']}"

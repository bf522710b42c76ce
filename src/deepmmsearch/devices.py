"""Worker threads on the caller's CUDA device.

CUDA's current device is per thread, and a new thread starts on GPU 0: a model moved to ``"cuda"`` or a vLLM engine
called from a worker thread would work on GPU 0 whatever the process's rank. :func:`to_thread` runs a blocking call
in a worker thread on the device of the thread that asked for it. Imports nothing heavy: torch is used only when
something has imported it already.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")


def current_cuda_device() -> int | None:
    """The calling thread's current CUDA device, or None without CUDA (or when torch was never imported)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return int(torch.cuda.current_device())


def cuda_device_name() -> str:
    """``cuda:N`` for the calling thread's current device, else ``cpu``: a device named with its index."""
    device = current_cuda_device()
    return "cpu" if device is None else f"cuda:{device}"


async def to_thread(function: Callable[..., T], *args: Any, executor: Executor | None = None) -> T:
    """``asyncio.to_thread(function, *args)`` with the worker thread set to the caller's current CUDA device; on
    ``executor``'s threads when given, else on the event loop's default ones."""
    device = current_cuda_device()

    def run() -> T:
        if device is not None:
            sys.modules["torch"].cuda.set_device(device)
        return function(*args)

    if executor is not None:
        return await asyncio.get_running_loop().run_in_executor(executor, run)
    return await asyncio.to_thread(run)

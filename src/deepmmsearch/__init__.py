"""deepmmsearch: multimodal LLMs that search the web the way DeepMMSearch-R1 does.

The public API is this short list; everything else is internal and may change. Importing the package
loads no model or heavy library: names are resolved on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Action": "deepmmsearch.protocol",
    "ActionKind": "deepmmsearch.protocol",
    "Agent": "deepmmsearch.agent",
    "AgentConfig": "deepmmsearch.agent",
    "Message": "deepmmsearch.records",
    "Policy": "deepmmsearch.policies",
    "Question": "deepmmsearch.records",
    "Rules": "deepmmsearch.protocol",
    "RunConfig": "deepmmsearch.runner",
    "StopReason": "deepmmsearch.protocol",
    "ToolsConfig": "deepmmsearch.tools",
    "Trajectory": "deepmmsearch.records",
    "ask": "deepmmsearch.runner",
    "build_agent": "deepmmsearch.runner",
    "load_policy": "deepmmsearch.policies",
    "parse": "deepmmsearch.protocol",
    "render_action": "deepmmsearch.protocol",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'deepmmsearch' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__

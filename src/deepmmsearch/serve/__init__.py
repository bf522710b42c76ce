"""Serving: the agent behind an OpenAI-compatible chat-completions API, with a web page at ``/``.

Only ``dmms serve`` and its tests load the app, and with it FastAPI; ``ServeConfig`` alone loads neither.
"""

from typing import Any

from deepmmsearch.serve.config import ServeConfig

__all__ = ["ServeConfig", "ServeError", "create_app", "serve_in_thread"]


def __getattr__(name: str) -> Any:
    if name in ("ServeError", "create_app", "serve_in_thread"):
        from deepmmsearch.serve import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

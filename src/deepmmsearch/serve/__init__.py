"""Serving: the agent behind an OpenAI-compatible chat-completions API, with a web page at ``/``.

The server is :mod:`deepmmsearch.serve.app`, which loads FastAPI; ``ServeConfig`` alone loads nothing heavy.
"""

from deepmmsearch.serve.config import ServeConfig

__all__ = ["ServeConfig"]

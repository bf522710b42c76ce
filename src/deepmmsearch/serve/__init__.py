"""Serving: the agent behind an OpenAI-compatible chat-completions API, with a web page at ``/``.

Only ``dmms serve`` and its tests import this package: it loads FastAPI.
"""

from deepmmsearch.serve.app import ServeConfig, ServeError, create_app, serve_in_thread

__all__ = ["ServeConfig", "ServeError", "create_app", "serve_in_thread"]

"""The ``dmms`` command: one module per command group, each registering itself on the shared app.

Thin by design: commands parse flags, wire components together and print; the work happens elsewhere.
"""

from deepmmsearch.cli import ask, search  # noqa: F401 - each registers its commands
from deepmmsearch.cli.app import app, main

__all__ = ["app", "main"]

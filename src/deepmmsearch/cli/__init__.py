"""The ``dmms`` command: one module per command group, each registering itself on the shared app.

Thin by design: commands parse flags, wire components together and print; the work happens elsewhere.
"""

# Each import registers its commands on the shared app.
from deepmmsearch.cli import (  # noqa: F401
    ask,
    data,
    demo,
    doctor,
    eval,
    fetch,
    kb,
    model,
    search,
    search_image,
    serve,
    train,
    world,
)
from deepmmsearch.cli.app import app, main

__all__ = ["app", "main"]

"""Evaluation: judges (``judges``, ``llm_judge``), aggregation (``metrics``), benchmark loaders (``loaders``), the
direct and RAG baselines (``modes``), the resumable harness (``harness``) and the report (``report``).

Nothing heavy is imported here; ``dmms eval`` and ``dmms score`` (cli/eval.py) are the command-line entry points.
"""

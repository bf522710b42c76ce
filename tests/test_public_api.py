"""The public API is a deliberate list: this test fails when it changes by accident."""

import subprocess
import sys

import deepmmsearch

PUBLIC = [
    "Action",
    "ActionKind",
    "Agent",
    "AgentConfig",
    "Message",
    "Policy",
    "Question",
    "Rules",
    "RunConfig",
    "StopReason",
    "ToolsConfig",
    "Trajectory",
    "ask",
    "build_agent",
    "load_policy",
    "parse",
    "render_action",
]


def test_public_names_are_exactly_these():
    assert sorted(deepmmsearch.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(deepmmsearch, name) is not None


def test_import_and_help_load_no_heavy_library():
    code = (
        "import sys, deepmmsearch, deepmmsearch.cli\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(deepmmsearch.cli.app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'transformers', 'faiss', 'bm25s', 'sentence_transformers', 'trl', 'openai',"
        " 'matplotlib', 'fastapi') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

"""Bad input to the commands gives one clear line and exit code 1, never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["world", "build", "--out", "{file}"], "Not a directory"),
        (["world", "build", "--out", "{dir}/w", "--entities", "5"], "entities must be at least 6"),
        (
            ["data", "build", "--questions", "{dir}/missing.jsonl", "--teacher", "oracle", "--out", "{dir}/d"],
            "no such file",
        ),
        (["eval", "--questions", "{file}", "--model", "oracle", "--out", "{dir}/e"], "question record lacks id"),
        (["demo", "--out", "{file}"], "File exists"),
        (["eval", "--questions", "{png}", "--model", "oracle", "--out", "{dir}/e"], "not UTF-8 text"),
        (["train", "grpo", "--model", "x", "--questions", "{png}", "--out", "{dir}/g"], "not UTF-8 text"),
        (["ask", "{png}", "How tall is it?", "--model", "hf:{dir}/missing"], "no model folder at"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, fragment):
    file = tmp_path / "a-file"
    file.write_text("{}\n")
    png = REPO / "examples" / "lighthouse.png"  # a binary file given where JSON Lines are expected
    args = [a.format(file=file, dir=tmp_path, png=png) for a in args]
    out = subprocess.run([sys.executable, "-m", "deepmmsearch", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], out.stderr


def test_deepspeed_logs_go_to_stderr_not_into_a_commands_output() -> None:
    """DeepSpeed's logger writes to stdout, where `--json` output goes (it warns on every CPU-only run)."""
    pytest.importorskip("deepspeed")
    code = (
        "from deepmmsearch.cli.app import _deepspeed_logs_to_stderr\n"
        "_deepspeed_logs_to_stderr()\n"
        "from deepspeed.utils import logger\n"
        "logger.warning('a DeepSpeed warning')\n"
        "print('{}')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "{}\n"
    assert "a DeepSpeed warning" in result.stderr

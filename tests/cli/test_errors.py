"""Bad input to the commands gives one clear line and exit code 1, never a traceback."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["world", "build", "--out", "{file}"], "Not a directory"),
        (["world", "build", "--out", "{dir}/w", "--entities", "5"], "at least 12"),
        (
            ["data", "build", "--questions", "{dir}/missing.jsonl", "--teacher", "oracle", "--out", "{dir}/d"],
            "no such file",
        ),
        (["eval", "--questions", "{file}", "--model", "oracle", "--out", "{dir}/e"], "question record lacks id"),
        (["demo", "--out", "{file}"], "File exists"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, fragment):
    file = tmp_path / "a-file"
    file.write_text("{}\n")
    args = [a.format(file=file, dir=tmp_path) for a in args]
    out = subprocess.run([sys.executable, "-m", "deepmmsearch", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], out.stderr

"""`dmms demo --quick` end to end, as a new user runs it, then again to show that finished stages are reused."""

import json
import subprocess
import sys


def test_quick_demo_runs_end_to_end_and_resumes(tmp_path):
    out = tmp_path / "demo"
    command = [sys.executable, "-m", "deepmmsearch", "demo", "--quick", "--out", str(out)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    for system in ("Direct", "RAG", "Prompt", "SFT", "RL"):
        assert system in first.stdout
    results = json.loads((out / "results.json").read_text())
    assert len(results["table"]) == 5
    stages = set(results["timings"])
    assert stages == {"world", "data", "model-init", "pretrain", "sft", "grpo", "eval"}
    for row in results["table"]:
        assert 0 <= row["overall"] <= 100
    rag = results["table"][1]
    assert rag["tool_calls"] == 2  # the workflow always makes one image search and one text search
    report = (out / "report.md").read_text()
    assert "| System |" in report and "Sample trajectories" in report and (out / "accuracy.png").is_file()
    assert "| 1-2 |" in report.split("## GRPO")[1]  # the quick run's two GRPO steps, as one window of the curve
    # Every evaluated system wrote its own judged trajectories.
    for folder in sorted((out / "eval").iterdir()):
        lines = (folder / "trajectories.jsonl").read_text().splitlines()
        assert len(lines) == 40 and all("correct" in json.loads(line) for line in lines)

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("already done") == 7

    # An evaluation left unfinished is the only one run again; the others are reused.
    (out / "eval" / "4-agent" / "report.json").unlink()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stderr.count("already done") == 6 and (out / "eval" / "4-agent" / "report.json").is_file()

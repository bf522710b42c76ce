"""`dmms doctor` on a CPU: it reports the environment, runs each training path once, says what it did not check."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from deepmmsearch.cli import app


def test_doctor_runs_each_path_on_the_cpu_and_says_what_it_could_not_check(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(app, ["doctor", "--out", str(tmp_path / "doctor"), "--json"])
    assert result.exit_code == 0, result.output[-2000:]
    report = json.loads(result.output[result.output.index('{\n  "environment"') :])
    assert report["ok"] and report["environment"]["packages"]["trl"].startswith("1.16")
    status = {c["name"]: c["status"] for c in report["checks"]}
    for name in ("set-up", "SFT step", "final/ reload", "GRPO step"):
        assert status[name] == "ok", report["checks"]
    skipped = " ".join(c["detail"] for c in report["checks"] if c["status"] == "skipped")
    assert "GPU training" in skipped and "several processes" in skipped
    final = tmp_path / "doctor" / "sft" / "final"
    assert (final / "model.safetensors").is_file() and (final / "generation_config.json").is_file()

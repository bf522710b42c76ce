"""`dmms demo --quick` end to end, as a new user runs it, then again to show that finished stages are reused."""

import io
import json
import subprocess
import sys

from deepmmsearch.protocol import PromptStyle, system_prompt


def test_quick_demo_runs_end_to_end_and_resumes(tmp_path, tiny_lm_factory):
    # The student around a tiny random Llama: the pipeline SmolLM2's student runs, at a size a test can afford.
    out = tmp_path / "demo"
    lm = str(tiny_lm_factory("llama"))
    command = [sys.executable, "-m", "deepmmsearch", "demo", "--quick", "--out", str(out), "--lm", lm]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    for system in ("Direct", "RAG", "Prompt", "SFT", "RL"):
        assert system in first.stdout
    results = json.loads((out / "results.json").read_text())
    assert set(results["timings"]) == {"world", "data", "model-init", "align", "sft", "grpo", "eval"}
    assert [row["system"] for row in results["table"]][:3] == ["Direct answer", "RAG workflow", "Prompt agent"]
    assert all("aligned student" in row["detail"] for row in results["table"][:3])  # the baselines run it, no SFT
    for row in results["table"]:
        assert 0 <= row["overall"] <= 100
    assert results["table"][1]["tool_calls"] == 2  # the workflow always makes one image search and one text search
    report = (out / "report.md").read_text()
    assert "| System |" in report and "Sample trajectories" in report and (out / "accuracy.png").is_file()
    assert "| 1-2 |" in report.split("## GRPO")[1]  # the quick run's two GRPO steps, as one window of the curve
    # Every evaluated system wrote its own judged trajectories.
    for folder in sorted((out / "eval").iterdir()):
        lines = (folder / "trajectories.jsonl").read_text().splitlines()
        assert len(lines) == 20 and all("correct" in json.loads(line) for line in lines)

    # `dmms ask` with the trained agent and the run config it was evaluated under: its prompt style, 3 hits a search.
    image = sorted((out / "world" / "images" / "questions").glob("*.png"))[0]
    model = f"hf:{out / 'grpo' / 'final'}"
    ask = [sys.executable, "-m", "deepmmsearch", "ask", str(image), "What is this?", "--model", model]
    asked = subprocess.run([*ask, "--config", str(out / "run.yaml"), "--json"], capture_output=True, text=True)
    assert asked.returncode == 0, asked.stderr[-3000:]
    trajectory = json.loads(asked.stdout)
    assert trajectory["messages"][0]["text"] == system_prompt(PromptStyle.SHORT) and trajectory["turns"] >= 1
    assert all(len(m["tool"]["sources"]) <= 3 for m in trajectory["messages"] if m.get("tool"))

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("already done") == 7

    # An evaluation left unfinished is the only one run again; the others are reused.
    (out / "eval" / "4-agent" / "report.json").unlink()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stderr.count("already done") == 6 and (out / "eval" / "4-agent" / "report.json").is_file()


def test_a_missing_language_model_is_refused_before_any_stage(tmp_path):
    out = tmp_path / "demo"
    command = [sys.executable, "-m", "deepmmsearch", "demo", "--quick", "--out", str(out), "--lm", "nowhere.gguf"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "nowhere.gguf: no such GGUF file" in done.stderr
    assert not (out / "world").exists()


def test_the_results_table_fits_an_80_column_terminal():
    from rich.console import Console

    from deepmmsearch.demo import COLUMNS, table_for_terminal

    names = ["Direct answer", "RAG workflow", "Prompt agent", "Agent, SFT", "Agent, SFT + RL"]
    rows = [{"system": name, **{key: 100.0 for key, _ in COLUMNS}, "tool_calls": 12.35} for name in names]
    rows[0]["unseen_entity"] = None
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(table_for_terminal(rows, "Accuracy (%) on the offline world's test split (full run)"))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    for word in ["System", *names, "All", "Refine", "Unseen", "Calls/q", "free", "12.35", "—"]:
        assert word in text


def _flat(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        out |= _flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return out


def test_the_demo_trains_with_the_shipped_recipes_changing_only_folders_and_sizes(tmp_path):
    from dataclasses import asdict

    from deepmmsearch.demo import DemoConfig, recipe, stage_configs

    run = {"model", "out", "schedule.seed", "schedule.save_steps"}
    allowed = {
        "align": run | {"captions", "rows", "tower_steps"},
        "sft": run | {"data"},
        "grpo": run
        | {"questions", "tools.kb", "tools.cache_path", "limit", "schedule.max_steps", "num_generations"}
        | {"questions_per_step", "schedule.per_device_batch_size"},
    }
    for config in (DemoConfig(seed=3), DemoConfig.quick(seed=3)):
        for stage, built in stage_configs(tmp_path, config).items():
            shipped, used = _flat(asdict(recipe(stage))), _flat(asdict(built))
            changed = {key for key in shipped if used[key] != shipped[key]}
            assert changed <= allowed[stage], (stage, changed - allowed[stage])
            assert used["schedule.seed"] == 3 and used["out"] == str(tmp_path / stage)

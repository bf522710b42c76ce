"""The README opens with the two set-up commands, and CI runs the same test command."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _setup_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_two_commands_and_ci_runs_the_second():
    main_job, tests = _setup_commands()
    assert "dmms " in main_job
    assert "pytest" in tests
    ci = (REPO / ".ci" / "run").read_text()
    # CI quiets pip, otherwise the line is the README's own.
    assert tests.replace("pip install -U", "pip install -q -U").replace("pip install -e", "pip install -q -e") in ci

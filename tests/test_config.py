import pytest

from deepmmsearch.config import load_config
from deepmmsearch.errors import ConfigError
from deepmmsearch.runner import RunConfig


def test_yaml_then_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("agent:\n  rules:\n    max_tool_calls: 4\ntools:\n  k: 3\n")
    config = load_config(RunConfig, path, {"tools.k": 7, "agent.rules.max_turns": None})
    assert config.agent.rules.max_tool_calls == 4 and config.tools.k == 7
    assert config.agent.rules.max_turns == 12  # None means "flag not given"


def test_unknown_keys_and_bad_values_are_clear(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("tools:\n  kay: 3\n")
    with pytest.raises(ConfigError, match=r"tools: unknown key\(s\) kay; known: text_search"):
        load_config(RunConfig, path)
    path.write_text("agent:\n  rules:\n    max_tool_calls: 0\n")
    with pytest.raises(ConfigError, match="max_tool_calls must be at least 1"):
        load_config(RunConfig, path)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(RunConfig, tmp_path / "missing.yaml")

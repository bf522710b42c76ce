import pytest

from deepmmsearch.config import load_config
from deepmmsearch.errors import ConfigError
from deepmmsearch.runner import RunConfig


def test_yaml_then_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("agent:\n  rules:\n    max_tool_calls: 4\ntools:\n  k: 3\n")
    config = load_config(RunConfig, path, {"tools": {"k": 7}, "agent": {"rules": {"max_turns": None}}})
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


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("hf:\n  guided: maybe\n", "hf.guided: expected bool, got 'maybe'"),
        ("agent:\n  rules:\n    max_turns: 2.5\n", "max_turns: expected int, got 2.5"),
        ("sampling:\n  temperature: warm\n", "temperature: expected float, got 'warm'"),
        ("hf:\n  device: 0\n", "hf.device: expected str, got 0"),
    ],
)
def test_values_of_the_wrong_type_are_one_clear_error(tmp_path, yaml, message):
    path = tmp_path / "run.yaml"
    path.write_text(yaml)
    with pytest.raises(ConfigError, match=message):
        load_config(RunConfig, path)


def test_a_float_written_without_a_dot_is_read_as_a_number(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("sampling:\n  top_p: 9e-1\n  temperature: 1\n")  # YAML reads 9e-1 as a string
    sampling = load_config(RunConfig, path).sampling
    assert sampling.top_p == 0.9 and sampling.temperature == 1 and isinstance(sampling.temperature, float)


def test_a_section_given_in_part_keeps_the_rest_of_its_owners_default(tmp_path):
    from deepmmsearch.train.config import TrainAlignConfig

    path = tmp_path / "align.yaml"
    path.write_text("lora:\n  rank: 4\n")
    lora = load_config(TrainAlignConfig, path).lora
    assert (lora.rank, lora.alpha, lora.dropout) == (4, 32, 0.0)  # alignment's own alpha and dropout, not LoRA's


def test_every_yaml_under_configs_loads():
    from pathlib import Path

    from deepmmsearch.eval.report import PriceTable
    from deepmmsearch.train.config import TrainAlignConfig, TrainGRPOConfig, TrainSFTConfig

    kinds = {"align": TrainAlignConfig, "sft": TrainSFTConfig, "grpo": TrainGRPOConfig}
    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert len(configs) >= 7
    for path in configs:
        if path.name == "prices.yaml":
            PriceTable.load(path)
        else:
            load_config(kinds[path.name.split("-", 1)[0]], path)


def test_the_vllm_section_reaches_the_vllm_policy(tmp_path, monkeypatch):
    import deepmmsearch.policies.vllm as vllm_policy

    built = []
    monkeypatch.setattr(vllm_policy, "VLLMPolicy", lambda path, sampling, config: built.append(config))
    path = tmp_path / "run.yaml"
    path.write_text("vllm:\n  gpu_memory_utilization: 0.5\nhf:\n  seed: 3\n  guided: false\n")
    load_config(RunConfig, path).load_policy("vllm:some/model")
    assert built[0].gpu_memory_utilization == 0.5
    assert built[0].seed is None and built[0].guided  # its own settings, not the hf section's

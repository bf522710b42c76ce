"""Flags made from the config dataclasses: one per field, typed, layered over the YAML file, each with its help."""

from __future__ import annotations

import typer
from typer.main import get_command
from typer.testing import CliRunner

from deepmmsearch.cli import app
from deepmmsearch.cli.app import user_errors
from deepmmsearch.cli.flags import config_flags, flag_name
from deepmmsearch.config import leaves
from deepmmsearch.runner import RunConfig


def _commands(command, path=()):
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield " ".join(path), command


def _probe() -> tuple[typer.Typer, list[RunConfig]]:
    """A one-command app whose command keeps the RunConfig it was given."""
    seen: list[RunConfig] = []
    probe = typer.Typer(rich_markup_mode=None)

    @probe.command()
    @user_errors
    @config_flags(RunConfig, "run", yaml=True)
    def show(run: RunConfig) -> None:
        seen.append(run)

    @probe.command()
    def other() -> None:  # a second command keeps `show` a subcommand, as in dmms
        pass

    return probe, seen


def test_flags_are_typed_and_layered_over_the_yaml_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("tools:\n  k: 3\n  kb: from-file\nhf:\n  guided: true\n")
    probe, seen = _probe()
    args = ["show", "-c", str(path), "--kb", "from-flag", "--tools.web.page-chars", "900", "--no-hf.guided"]
    result = CliRunner().invoke(probe, [*args, "--sampling.temperature", "0.5"])
    assert result.exit_code == 0, result.output
    run = seen[-1]
    assert (run.tools.k, run.tools.kb, run.tools.web.page_chars) == (3, "from-flag", 900)  # file, alias, flag
    assert run.hf.guided is False and run.sampling.temperature == 0.5
    assert run.agent == RunConfig().agent  # what no one set keeps its default


def test_a_bad_value_is_one_line_that_names_the_flag():
    probe, _ = _probe()
    result = CliRunner().invoke(probe, ["show", "--tools.web.page-chars", "many"])
    assert result.exit_code == 1
    assert result.output.strip() == "error: --tools.web.page-chars: expected int, got 'many'"
    result = CliRunner().invoke(probe, ["show", "--agent.rules.max-turns", "0"])  # an int, but the config refuses it
    assert result.exit_code == 1 and "rules.max_turns must be at least 1" in result.output


def test_every_flag_of_every_command_is_unique_and_every_config_field_has_help():
    for name, command in _commands(get_command(app)):
        spellings = [opt for param in command.params for opt in (*param.opts, *param.secondary_opts)]
        assert len(spellings) == len(set(spellings)), name
    from deepmmsearch.data.build import DataBuildConfig
    from deepmmsearch.eval.harness import EvalConfig
    from deepmmsearch.serve.config import ServeConfig
    from deepmmsearch.train.config import TrainAlignConfig, TrainGRPOConfig, TrainSFTConfig
    from deepmmsearch.world.build import WorldConfig

    configs = (RunConfig, TrainAlignConfig, TrainSFTConfig, TrainGRPOConfig, EvalConfig, DataBuildConfig)
    for config in (*configs, ServeConfig, WorldConfig):
        for leaf in leaves(config):
            assert leaf.help, f"{config.__name__}: {flag_name(leaf.path)} has no help"


def test_a_config_command_lists_its_sections_flags_in_help():
    help_text = CliRunner().invoke(app, ["train", "grpo", "--help"], terminal_width=80).output
    for flag in ("--config", "--tools.kb", "--kb", "--lora.rank", "--agent.rules.max-turns", "--vllm.max-model-len"):
        assert flag in help_text, flag
    assert "…" not in help_text  # plain help wraps long flags instead of cutting them

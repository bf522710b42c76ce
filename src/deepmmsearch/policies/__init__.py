"""Policies: the models that write the assistant's turns, chosen by a SPEC string ``KIND[:ARGUMENT]``.

- ``openai:MODEL[@BASE_URL]``: an OpenAI-compatible chat-completions server;
- ``script:FILE``: replays the replies in a JSON file;
- ``hf:PATH_OR_ID``: a local transformers VLM of a Qwen-VL family (Qwen2-VL to Qwen3.5);
- ``vllm:PATH_OR_ID``: the same model run by an in-process vLLM engine (a GPU and ``pip install vllm``);
- ``oracle``: the offline world's teacher, which plays each world question by its plan through the tools.

As with tools, a kind maps to a factory ``(argument, PolicySettings) -> Policy`` that imports its backend only when
chosen (``POLICIES``); an unknown kind is an error that lists the known ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deepmmsearch.errors import ConfigError
from deepmmsearch.policies.base import Conversation, Generation, Policy, SamplingConfig
from deepmmsearch.policies.openai_api import OpenAIConfig
from deepmmsearch.records import Question

if TYPE_CHECKING:
    from deepmmsearch.policies.hf import HFConfig
    from deepmmsearch.policies.vllm import VLLMConfig


@dataclass
class PolicySettings:
    """What a policy is built from besides its spec's argument: the run's settings of each kind of policy, and the
    questions the run will play (only the oracle reads them: the world's plans are there)."""

    sampling: SamplingConfig | None = None
    openai: OpenAIConfig | None = None
    hf: HFConfig | None = None
    vllm: VLLMConfig | None = None
    questions: Sequence[Question] = ()


def _openai(argument: str, settings: PolicySettings) -> Policy:
    from deepmmsearch.policies.openai_api import OpenAIPolicy

    model, _, base_url = argument.partition("@")
    return OpenAIPolicy(model, base_url or None, settings.sampling, settings.openai)


def _script(argument: str, settings: PolicySettings) -> Policy:
    from deepmmsearch.policies.scripted import ScriptedPolicy

    return ScriptedPolicy.from_file(argument)


def _hf(argument: str, settings: PolicySettings) -> Policy:
    from deepmmsearch.policies.hf import HFPolicy

    return HFPolicy(argument, settings.sampling, settings.hf)


def _vllm(argument: str, settings: PolicySettings) -> Policy:
    from deepmmsearch.policies.vllm import VLLMPolicy

    return VLLMPolicy(argument, settings.sampling, settings.vllm)


def _oracle(argument: str, settings: PolicySettings) -> Policy:
    from deepmmsearch.policies.oracle import OraclePolicy, plans_of

    return OraclePolicy(plans_of(settings.questions))  # its own channel: no other policy is told the plans


@dataclass(frozen=True)
class PolicyKind:
    """A registered kind of policy: its factory and how a spec names it."""

    factory: Callable[[str, PolicySettings], Policy]
    usage: str  # e.g. "hf:PATH_OR_ID"; a usage without ":" takes no argument
    local_model: bool = False  # the argument is a model folder (or hub id), which may record how it was trained


POLICIES: dict[str, PolicyKind] = {
    "openai": PolicyKind(_openai, "openai:MODEL[@BASE_URL]"),
    "script": PolicyKind(_script, "script:FILE"),
    "hf": PolicyKind(_hf, "hf:PATH_OR_ID", local_model=True),
    "vllm": PolicyKind(_vllm, "vllm:PATH_OR_ID", local_model=True),
    "oracle": PolicyKind(_oracle, "oracle"),
}
SPEC_KINDS = tuple(kind.usage for kind in POLICIES.values())


def _kind(spec: str) -> tuple[PolicyKind, str]:
    name, colon, argument = spec.partition(":")
    kind = POLICIES.get(name)
    if kind is None or bool(argument) != (":" in kind.usage) or (colon and not argument):
        raise ConfigError(f"unknown model spec {spec!r}; use one of: {', '.join(SPEC_KINDS)}")
    return kind, argument


def load_policy(
    spec: str,
    sampling: SamplingConfig | None = None,
    openai_config: OpenAIConfig | None = None,
    hf_config: HFConfig | None = None,
    vllm_config: VLLMConfig | None = None,
    questions: Sequence[Question] = (),
) -> Policy:
    """Build the policy a SPEC names; an unknown kind is an error that lists the known ones. ``questions``: those
    the run will play, for a teacher that knows their plans (``oracle``); no other policy reads them."""
    kind, argument = _kind(spec)
    settings = PolicySettings(sampling, openai_config, hf_config, vllm_config, questions)
    return kind.factory(argument, settings)


def model_folder(spec: str) -> str | None:
    """The model folder (or hub id) a SPEC of a local model names, or None for any other kind."""
    kind, argument = _kind(spec)
    return argument if kind.local_model else None


__all__ = [
    "POLICIES",
    "Conversation",
    "Generation",
    "OpenAIConfig",
    "Policy",
    "PolicyKind",
    "PolicySettings",
    "SamplingConfig",
    "load_policy",
    "model_folder",
]

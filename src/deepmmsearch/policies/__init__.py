"""Policies: the models that write the assistant's turns, chosen by a SPEC string.

- ``openai:MODEL[@BASE_URL]``: an OpenAI-compatible chat-completions server;
- ``script:FILE``: replays the replies in a JSON file;
- ``hf:PATH_OR_ID``: a local transformers VLM of a Qwen-VL family (Qwen2-VL to Qwen3.5);
- ``vllm:PATH_OR_ID``: the same model run by an in-process vLLM engine (a GPU and ``pip install vllm``);
- ``oracle``: the offline world's teacher, which plays each world question by its plan through the tools.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepmmsearch.errors import ConfigError
from deepmmsearch.policies.base import Conversation, Generation, Policy, SamplingConfig
from deepmmsearch.policies.openai_api import OpenAIConfig

if TYPE_CHECKING:
    from deepmmsearch.policies.hf import HFConfig
    from deepmmsearch.policies.vllm import VLLMConfig

SPEC_KINDS = ("openai:MODEL[@BASE_URL]", "script:FILE", "hf:PATH_OR_ID", "vllm:PATH_OR_ID", "oracle")


def load_policy(
    spec: str,
    sampling: SamplingConfig | None = None,
    openai_config: OpenAIConfig | None = None,
    hf_config: HFConfig | None = None,
    vllm_config: VLLMConfig | None = None,
) -> Policy:
    """Build the policy a SPEC names; an unknown kind is an error that lists the known ones."""
    kind, _, rest = spec.partition(":")
    if kind == "openai" and rest:
        from deepmmsearch.policies.openai_api import OpenAIPolicy

        model, _, base_url = rest.partition("@")
        return OpenAIPolicy(model, base_url or None, sampling, openai_config)
    if kind == "script" and rest:
        from deepmmsearch.policies.scripted import ScriptedPolicy

        return ScriptedPolicy.from_file(rest)
    if kind == "hf" and rest:
        from deepmmsearch.policies.hf import HFPolicy

        return HFPolicy(rest, sampling, hf_config)
    if kind == "vllm" and rest:
        from deepmmsearch.policies.vllm import VLLMPolicy

        return VLLMPolicy(rest, sampling, vllm_config)
    if spec == "oracle":
        from deepmmsearch.policies.oracle import OraclePolicy

        return OraclePolicy()
    raise ConfigError(f"unknown model spec {spec!r}; use one of: {', '.join(SPEC_KINDS)}")


__all__ = ["Conversation", "Generation", "OpenAIConfig", "Policy", "SamplingConfig", "load_policy"]

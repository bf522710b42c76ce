"""Policies: the models that write the assistant's turns, chosen by a SPEC string.

- ``openai:MODEL[@BASE_URL]``: an OpenAI-compatible chat-completions server;
- ``script:FILE``: replays the replies in a JSON file;
- more kinds (``hf:``, ``oracle``) register here as they are built.
"""

from __future__ import annotations

from deepmmsearch.errors import ConfigError
from deepmmsearch.policies.base import Conversation, Generation, Policy
from deepmmsearch.policies.openai_api import OpenAIConfig, SamplingConfig

SPEC_KINDS = ("openai:MODEL[@BASE_URL]", "script:FILE")


def load_policy(spec: str, sampling: SamplingConfig | None = None, openai_config: OpenAIConfig | None = None) -> Policy:
    """Build the policy a SPEC names; an unknown kind is an error that lists the known ones."""
    kind, _, rest = spec.partition(":")
    if kind == "openai" and rest:
        from deepmmsearch.policies.openai_api import OpenAIPolicy

        model, _, base_url = rest.partition("@")
        return OpenAIPolicy(model, base_url or None, sampling, openai_config)
    if kind == "script" and rest:
        from deepmmsearch.policies.scripted import ScriptedPolicy

        return ScriptedPolicy.from_file(rest)
    raise ConfigError(f"unknown model spec {spec!r}; use one of: {', '.join(SPEC_KINDS)}")


__all__ = ["Conversation", "Generation", "OpenAIConfig", "Policy", "SamplingConfig", "load_policy"]

"""Wiring: a model spec and a run config become an agent; the small Python API sits here.

>>> import asyncio, deepmmsearch as dmms
>>> trajectory = asyncio.run(dmms.ask("photo.jpg", "Who built this?", model="openai:gpt-4o"))
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deepmmsearch.agent import Agent, AgentConfig
from deepmmsearch.images import load_image
from deepmmsearch.policies import OpenAIConfig, Policy, SamplingConfig, load_policy
from deepmmsearch.policies.hf import HFConfig
from deepmmsearch.policies.vllm import VLLMConfig
from deepmmsearch.records import Question, Trajectory
from deepmmsearch.tools import ToolsConfig, build_toolbox


@dataclass
class RunConfig:
    """Everything that decides how the agent runs, as one YAML file or flags."""

    agent: AgentConfig = field(default_factory=AgentConfig)
    tools: ToolsConfig = field(default_factory=ToolsConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    hf: HFConfig = field(default_factory=HFConfig)
    vllm: VLLMConfig = field(default_factory=VLLMConfig)

    def load_policy(self, model: str | Policy) -> Policy:
        """The policy a model spec names, built with this config's settings (a ready policy is kept)."""
        if isinstance(model, Policy):
            return model
        return load_policy(model, self.sampling, self.openai, self.hf, self.vllm)


def build_agent(model: str | Policy, config: RunConfig | None = None) -> Agent:
    """An agent for a model spec (or a ready policy) with the tools the config names."""
    config = config or RunConfig()
    policy = config.load_policy(model)
    return Agent(policy, build_toolbox(config.tools), config.agent)


async def ask(
    image: str, question: str, model: str | Policy, config: RunConfig | None = None, question_id: str = "ask"
) -> Trajectory:
    """Answer one question about one image; the trajectory holds every step."""
    loaded = load_image(image)  # bad images fail here, as one InputError, before any model is built
    agent = build_agent(model, config)
    try:
        return await agent.run(Question(id=question_id, image=image, question=question), loaded)
    finally:
        await agent.policy.aclose()

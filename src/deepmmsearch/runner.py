"""Wiring: a model spec and a run config become an agent; the small Python API sits here.

>>> import asyncio, deepmmsearch as dmms
>>> trajectory = asyncio.run(dmms.ask("photo.jpg", "Who built this?", model="openai:gpt-4o"))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from deepmmsearch.agent import AGENT_PLAN, Agent, AgentConfig, EpisodePlan
from deepmmsearch.images import load_image
from deepmmsearch.policies import OpenAIConfig, Policy, SamplingConfig, load_policy, model_folder
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

    def load_policy(self, model: str | Policy, questions: Sequence[Question] = ()) -> Policy:
        """The policy a model spec names, built with this config's settings (a ready policy is kept). ``questions``:
        those it will play, for a teacher that knows their plans (see :func:`load_policy`)."""
        if isinstance(model, Policy):
            return model
        return load_policy(model, self.sampling, self.openai, self.hf, self.vllm, questions)


def resolve_agent_config(model: str | Policy, config: AgentConfig) -> AgentConfig:
    """``config`` with its prompt style decided: the configured one, else the one a local model's folder records
    (SFT and GRPO save it there), else full. Read here, once, by the code that builds an agent."""
    if config.prompts:
        return config
    from deepmmsearch.models.build import read_prompt_style

    folder = model_folder(model) if isinstance(model, str) else None
    trained = read_prompt_style(folder) if folder else None
    return replace(config, prompts=config.prompt_style(trained).value)


def build_agent(
    model: str | Policy,
    config: RunConfig | None = None,
    plan: EpisodePlan = AGENT_PLAN,
    questions: Sequence[Question] = (),
) -> Agent:
    """An agent for a model spec (or a ready policy) with the tools the config names, prompted in the model's style,
    running episodes of ``plan`` (the agent protocol by default). ``questions``: those it will play (a teacher that
    knows their plans is given them)."""
    config = config or RunConfig()
    agent_config = resolve_agent_config(model, config.agent)
    policy = config.load_policy(model, questions)
    toolbox = build_toolbox(config.tools) if plan.uses_tools else None
    return Agent(policy, toolbox, agent_config, plan)


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

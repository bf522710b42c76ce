"""GRPO rollouts: our agent loop, run with the policy being trained, turned into TRL's token sequences.

TRL's ``GRPOTrainer`` calls :class:`AgentRollout` with the prompts of a step (each question already repeated once
per group member). Every prompt becomes one episode of :class:`~deepmmsearch.agent.Agent` (same protocol, rules,
tools and tool cache as evaluation) whose policy is :class:`~deepmmsearch.policies.hf.HFPolicy` wrapped around the
trainer's own model, or :class:`~deepmmsearch.policies.vllm.VLLMPolicy` on the vLLM engine TRL colocates with the
trainer (``use_vllm``). Each trajectory is then encoded with ``encode_conversation`` (sampled replies as the exact
sampled ids) and cut in two: ``prompt_ids`` (system prompt, image and question) and ``completion_ids`` (every
later turn, interleaved: replies and tool results). ``env_mask`` is the assistant mask of the completion, so
tool-result tokens and chat markup get zero weight in the loss, and so do reply tokens that guided decoding
chose for the model (they were not drawn from the policy).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

from deepmmsearch.agent import Agent, AgentConfig
from deepmmsearch.models.chat import EOS_TOKEN, IMAGE_TOKEN, PAD_TOKEN, VIDEO_TOKEN
from deepmmsearch.policies.hf import HFConfig
from deepmmsearch.policies.vllm import VLLMConfig
from deepmmsearch.protocol import EpisodeState, StopReason, first_turn_prompt, system_prompt
from deepmmsearch.records import Question, Trajectory


def prompt_messages(question: Question, config: AgentConfig) -> list[dict[str, str]]:
    """The dataset prompt of a question: the two turns an episode opens with, tagged with the question id."""
    style = config.prompt_style()
    first = first_turn_prompt(question.question, EpisodeState(), config.rules, style)
    return [
        {"role": "system", "content": system_prompt(style), "qid": question.id},
        {"role": "user", "content": first, "qid": question.id},
    ]


@dataclass
class EpisodeTokens:
    """One trajectory as TRL wants it; ``env_mask`` is 1 on the model's own reply tokens and 0 elsewhere."""

    prompt_ids: list[int]
    completion_ids: list[int]
    env_mask: list[int]
    logprobs: list[float]


def episode_tokens(processor: Any, trajectory: Trajectory, image: Any) -> EpisodeTokens:
    """Split an encoded trajectory at its first reply; tool results stay in the completion with weight zero."""
    from deepmmsearch.models.encoding import encode_conversation

    eos_id = processor.tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    enc = encode_conversation(processor, trajectory.messages, image)
    ids = enc["input_ids"][0].tolist()
    mask = enc["assistant_mask"][0].tolist()
    if 1 not in mask:  # the policy failed before its first reply: an empty completion that carries no weight
        opening = encode_conversation(processor, trajectory.messages[:2], image, add_generation_prompt=True)
        return EpisodeTokens(opening["input_ids"][0].tolist(), [eos_id], [0], [0.0])
    start = mask.index(1)
    end = len(mask) - mask[::-1].index(1)  # the chat markup after the last reply is not part of the completion
    completion, completion_mask = ids[start:end], mask[start:end]
    # Log-probs of the sampled tokens where the policy reported them all. TRL reads them only for vLLM's importance
    # sampling correction, where a NaN means "no correction" for that token; other positions are masked out.
    sampled: list[float] = []
    redrawn: list[bool] = []
    for message in trajectory.messages:
        if message.role == "assistant":
            reported = message.token_ids and message.logprobs and len(message.logprobs) == len(message.token_ids)
            sampled.extend(message.logprobs if reported else [float("nan")] * len(message.token_ids or ()))  # type: ignore[arg-type]
            chosen = set(message.redrawn or ())
            redrawn.extend(i in chosen for i in range(len(message.token_ids or ())))
    reply_positions = [i for i, m in enumerate(completion_mask) if m]
    logprobs = [0.0] * len(completion)
    if len(sampled) != len(reply_positions):  # replies re-tokenized from text: their log-probs cannot be placed
        sampled = [float("nan")] * len(reply_positions)
    for position, value in zip(reply_positions, sampled, strict=True):
        logprobs[position] = value
    # A token the guide drew again is not the policy's sample: weighted, the loss pushes down a token it keeps forcing.
    if len(redrawn) == len(reply_positions):
        for position, forced in zip(reply_positions, redrawn, strict=True):
            if forced:
                completion_mask[position] = 0
    # A sampled image placeholder would ask the model for image features that do not exist: neutralize it (weight 0).
    pad_id = processor.tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    placeholders = {processor.tokenizer.convert_tokens_to_ids(t) for t in (IMAGE_TOKEN, VIDEO_TOKEN)}
    for i in reply_positions:
        if completion[i] in placeholders:
            completion[i], completion_mask[i], logprobs[i] = pad_id, 0, 0.0
    if trajectory.stop_reason == StopReason.ANSWER.value and completion[-1] != eos_id:
        # The answer ended on a stop string: close the turn (weight 0) so TRL does not count it as truncated.
        completion, completion_mask, logprobs = [*completion, eos_id], [*completion_mask, 0], [*logprobs, 0.0]
    return EpisodeTokens(ids[:start], completion, completion_mask, logprobs)


class AgentRollout:
    """TRL's ``rollout_func``: ``(prompts, trainer) -> {prompt_ids, completion_ids, logprobs, env_mask, ...}``."""

    def __init__(
        self,
        questions: dict[str, Question],
        processor: Any,
        toolbox: Any,
        agent_config: AgentConfig,
        sampling: Any,
        scorer: Any,
        seed: int = 0,
        hf: HFConfig | None = None,
        vllm: VLLMConfig | None = None,
    ) -> None:
        self.questions = questions
        self.processor = processor
        self.toolbox = toolbox
        self.agent_config = agent_config
        self.sampling = sampling
        self.scorer = scorer
        self.seed = seed
        # The policies' own settings; each step's batch size and seed replace theirs.
        self.hf = hf or HFConfig()
        self.vllm = vllm or VLLMConfig(guided=False)
        self.guide: Any = None  # built by the first step's policy, then reused: it depends on the tokenizer only
        self.calls = 0

    def __call__(self, prompts: list[list[dict]], trainer: Any) -> dict[str, list]:
        from contextlib import nullcontext

        from deepmmsearch.train.distributed import whole_weights

        questions = [self.questions[prompt[0]["qid"]] for prompt in prompts]
        images = [_prompt_image(prompt) for prompt in prompts]
        # In-process rollouts need whole weights on every process (ZeRO-3 and FSDP shard them); vLLM has its own copy.
        on_vllm = getattr(trainer.args, "use_vllm", False)
        with nullcontext(None) if on_vllm else whole_weights(trainer) as unwrapped:
            model = unwrapped if unwrapped is not None else trainer.accelerator.unwrap_model(trainer.model)
            if hasattr(model, "get_base_model"):
                model = model.get_base_model()  # the LoRA layers stay in place: rollouts sample from the policy
            was_training = model.training
            model.eval()  # no dropout while sampling
            # A fresh policy per step: its KV caches belong to the weights before this step's update.
            seed = self.seed * 1_000_003 + self.calls * 1009 + trainer.accelerator.process_index
            self.calls += 1
            agent = Agent(self._policy(trainer, model, seed, len(prompts)), self.toolbox, self.agent_config)
            try:
                trajectories = asyncio.run(self._episodes(agent, questions, images))
            finally:
                model.train(was_training)

        out: dict[str, list] = {"prompt_ids": [], "completion_ids": [], "logprobs": [], "env_mask": []}
        for prompt, trajectory, image in zip(prompts, trajectories, images, strict=True):
            shown = [m.text for m in trajectory.messages[:2]]
            if shown != [_prompt_text(prompt[0]), _prompt_text(prompt[1])]:
                # TRL computes the image features from the dataset prompt: the episode must open with it exactly.
                raise RuntimeError(f"episode {trajectory.question.id} did not open with its dataset prompt")
            tokens = episode_tokens(self.processor, trajectory, image)
            out["prompt_ids"].append(tokens.prompt_ids)
            out["completion_ids"].append(tokens.completion_ids)
            out["logprobs"].append(tokens.logprobs)
            out["env_mask"].append(tokens.env_mask)
        out["trajectory"] = trajectories  # reaches the reward functions as a column
        return out

    def _policy(self, trainer: Any, model: Any, seed: int, batch: int) -> Any:
        """The policy of this step's rollouts: TRL's colocated vLLM engine (weights synced by TRL before the call)
        when the trainer runs one, else the trainer's own model through transformers."""
        name = f"train:{trainer.state.global_step}"
        if getattr(trainer.args, "use_vllm", False):
            from deepmmsearch.policies.vllm import VLLMPolicy

            engine = trainer.vllm_generation
            if engine.mode != "colocate":
                # In server mode TRL gathers every process's prompts into one call per step; episodes take
                # different numbers of turns, so processes would wait on each other's turns.
                raise RuntimeError("multi-turn rollouts need vllm_mode colocate")
            config = replace(self.vllm, max_batch_size=max(batch, 1), seed=seed)
            return VLLMPolicy(name, self.sampling, config, loaded=(engine.llm, self.processor))
        from deepmmsearch.policies.hf import HFPolicy

        hf_config = replace(self.hf, max_batch_size=max(batch, 1), seed=seed)
        policy = HFPolicy(name, self.sampling, hf_config, loaded=(model, self.processor), guide=self.guide)
        self.guide = policy.guide
        return policy

    async def _episodes(self, agent: Agent, questions: list[Question], images: list[Any]) -> list[Trajectory]:
        from deepmmsearch.train.reward import judge_trajectories

        trajectories = await agent.run_many(questions, images=images)
        for trajectory in trajectories:
            if trajectory.stop_reason == StopReason.INPUT_ERROR.value:
                raise RuntimeError(f"question {trajectory.question.id}: {trajectory.error}")
        await judge_trajectories(self.scorer, trajectories)
        return trajectories


def _prompt_image(prompt: list[dict]) -> Any:
    for message in prompt:
        content = message["content"]
        if isinstance(content, list):
            for block in content:
                if block.get("type") == "image" and block.get("image") is not None:
                    image = block["image"]
                    return image if image.mode == "RGB" else image.convert("RGB")
    raise RuntimeError("a GRPO prompt carries no image; the dataset needs an image column")


def _prompt_text(message: dict) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if block.get("type") == "text")

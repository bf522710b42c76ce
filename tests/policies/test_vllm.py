"""The vllm: policy and vLLM rollouts, on a CPU: what reaches the engine, and how its outputs come back.

vLLM itself needs a CUDA machine, so the engine here is a stand-in with ``vllm.LLM.generate``'s interface that
decodes greedily with the tiny transformers model, from exactly the token ids and image the policy sends. The
reply pattern it would guide with is checked against llguidance, one of vLLM's structured-outputs backends.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import llguidance
import llguidance.hf
import pytest
import torch
from PIL import Image

from deepmmsearch.errors import ConfigError, ContextLimitError
from deepmmsearch.models.chat import EOS_TOKEN, IMAGE_TOKEN
from deepmmsearch.models.encoding import image_inputs
from deepmmsearch.policies import Conversation, SamplingConfig
from deepmmsearch.policies.hf import HFConfig, HFPolicy
from deepmmsearch.policies.vllm import VLLMConfig, VLLMPolicy
from deepmmsearch.protocol import REPLY_PATTERN
from deepmmsearch.records import Message

REPO = Path(__file__).resolve().parents[2]
IMAGE_PATH = REPO / "examples" / "lighthouse.png"


def settings(regex: str | None = None, **kw: Any) -> dict[str, Any]:
    """Sampling parameters as a plain dict (vLLM's SamplingParams takes the same keywords)."""
    return {"regex": regex, **kw}


class TransformersEngine:
    """``vllm.LLM`` as far as the policy uses it: ``generate(prompts, sampling_params, use_tqdm)`` and the context
    length. Greedy; honours max_tokens, stop_token_ids, stop strings and logit_bias; records every request."""

    def __init__(self, loaded: tuple[Any, Any], max_model_len: int = 4096) -> None:
        self.model, self.processor = loaded
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(max_model_len=max_model_len))
        self.requests: list[tuple[dict, dict]] = []

    def generate(self, prompts: list[dict], sampling_params: list[dict], use_tqdm: bool = True) -> list[Any]:
        assert len(prompts) == len(sampling_params)
        return [self._one(p, s) for p, s in zip(prompts, sampling_params, strict=True)]

    def _one(self, prompt: dict, params: dict) -> Any:
        self.requests.append((prompt, params))
        ids = list(prompt["prompt_token_ids"])
        image_id = self.processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        extra: dict[str, Any] = {}
        if "multi_modal_data" in prompt:
            pixels = image_inputs(self.processor, prompt["multi_modal_data"]["image"])
            # vLLM checks the prompt's placeholders against the image's grid: the ids must carry them expanded.
            merge = self.model.config.vision_config.spatial_merge_size
            assert ids.count(image_id) == int(pixels["image_grid_thw"].prod()) // merge**2
            extra = pixels
        out: list[int] = []
        logprobs: list[dict] = []
        bias = torch.zeros(self.model.config.text_config.vocab_size)
        for token, value in (params["logit_bias"] or {}).items():
            bias[token] = value
        finish = "length"
        with torch.no_grad():
            while len(out) < params["max_tokens"]:
                all_ids = torch.tensor([ids + out])
                logits = self.model(input_ids=all_ids, mm_token_type_ids=(all_ids == image_id).long(), **extra).logits[
                    0, -1
                ]
                token = int((logits + bias).argmax())
                out.append(token)
                logprobs.append({token: SimpleNamespace(logprob=float(torch.log_softmax(logits, -1)[token]))})
                if token in params["stop_token_ids"]:
                    finish = "stop"
                    break
                if any(stop in self.processor.tokenizer.decode(out) for stop in params["stop"]):
                    finish = "stop"
                    break
        output = SimpleNamespace(token_ids=out, logprobs=logprobs, finish_reason=finish)
        return SimpleNamespace(outputs=[output])


def vllm_policy(loaded, max_new_tokens: int = 12, engine: Any = None, **config) -> VLLMPolicy:
    engine = engine or TransformersEngine(loaded)
    sampling = SamplingConfig(max_new_tokens=max_new_tokens)
    return VLLMPolicy("tiny", sampling, VLLMConfig(**config), loaded=(engine, loaded[1]), params=settings)


def conversation(index: int, image: Image.Image, question: str = "How tall is this lighthouse?") -> Conversation:
    messages = [Message("system", "You answer questions."), Message("user", question, image=str(IMAGE_PATH))]
    return Conversation(f"q{index}", messages, image)


def test_the_engine_reads_what_the_hf_policy_reads_and_replies_come_back_the_same(loaded, image) -> None:
    sampling = SamplingConfig(max_new_tokens=12)
    hf = HFPolicy("tiny", sampling, HFConfig(guided=False), loaded=loaded)
    vllm = vllm_policy(loaded, guided=False)
    conversations = [conversation(0, image), conversation(1, image, "What is it called?")]
    for turn in range(2):
        expected = hf.generate_sync(conversations)
        got = vllm.generate_sync(conversations)
        assert [g.token_ids for g in got] == [g.token_ids for g in expected], f"turn {turn}"
        assert [g.text for g in got] == [g.text for g in expected]
        assert [g.prompt_tokens for g in got] == [g.prompt_tokens for g in expected]
        for g, e in zip(got, expected, strict=True):
            assert torch.allclose(torch.tensor(g.logprobs), torch.tensor(e.logprobs), atol=1e-4)
        conversations = [
            Conversation(
                c.id,
                [*c.messages, Message("assistant", g.text, token_ids=g.token_ids), Message("user", f"result {turn}")],
                c.image,
            )
            for c, g in zip(conversations, got, strict=True)
        ]


def test_requests_carry_the_protocol_and_a_fresh_seed_each(loaded, image) -> None:
    tokenizer = loaded[1].tokenizer
    engine = TransformersEngine(loaded)
    policy = VLLMPolicy(
        "tiny",
        SamplingConfig(temperature=1.0, max_new_tokens=5),
        VLLMConfig(seed=7),
        loaded=(engine, loaded[1]),
        params=settings,
    )
    policy.generate_sync([conversation(i, image) for i in range(3)])
    params = [p for _, p in engine.requests]
    assert all(p["regex"] == REPLY_PATTERN and p["n"] == 1 and p["logprobs"] == 0 for p in params)
    assert all(p["stop"] == ["</img_search>", "</text_search>", "</answer>"] for p in params)
    assert tokenizer.convert_tokens_to_ids(EOS_TOKEN) in params[0]["stop_token_ids"]
    assert params[0]["logit_bias"][tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)] < -50
    seeds = [p["seed"] for p in params]
    assert len(set(seeds)) == 3, "a group's rollouts must not share one sampling seed"
    again = VLLMPolicy(
        "tiny",
        SamplingConfig(temperature=1.0, max_new_tokens=5),
        VLLMConfig(seed=7),
        loaded=(TransformersEngine(loaded), loaded[1]),
        params=settings,
    )
    again.generate_sync([conversation(i, image) for i in range(3)])
    assert [p["seed"] for _, p in again.engine.requests] == seeds, "the same config seed gives the same draws"
    unguided = vllm_policy(loaded, guided=False, engine=TransformersEngine(loaded))
    unguided.generate_sync([conversation(0, image)])
    assert unguided.engine.requests[0][1]["regex"] is None and unguided.engine.requests[0][1]["seed"] is None


def test_a_conversation_longer_than_the_context_is_refused(loaded, image) -> None:
    short = vllm_policy(loaded, engine=TransformersEngine(loaded, max_model_len=16))
    with pytest.raises(ContextLimitError):
        short.generate_sync([conversation(0, image)])


def test_the_reply_pattern_compiles_for_vllm_structured_outputs(loaded) -> None:
    from deepmmsearch.models.tokenizers import qwen_tokenizer

    tokenizer = qwen_tokenizer()
    grammar = llguidance.LLMatcher.grammar_from_regex(REPLY_PATTERN)
    lltokenizer = llguidance.hf.from_tokenizer(tokenizer)

    def accepts(text: str) -> bool:
        matcher = llguidance.LLMatcher(lltokenizer, grammar)
        assert not matcher.get_error()
        return all(matcher.consume_token(t) for t in tokenizer.encode(text)) and matcher.is_accepting()

    assert accepts("<reason>The picture shows it.</reason>\n<answer>1456</answer>")
    assert accepts("<reason>Search.</reason>\n<img_search><img></img_search>")
    assert accepts("<reason>Look it up.</reason>\n<text_search>year built of Migal Bridge</text_search>")
    assert not accepts("<reason>x</answer>")
    assert not accepts("<reason>x</reason>\n<answer>a</answer><answer>b</answer>")


def test_grpo_rollouts_generate_on_the_engine_trl_colocates(small_world, loaded) -> None:
    from deepmmsearch.agent import AgentConfig
    from deepmmsearch.eval.harness import Scorer
    from deepmmsearch.protocol import Rules
    from deepmmsearch.records import read_questions
    from deepmmsearch.tools import ToolsConfig, build_toolbox
    from deepmmsearch.train.rollout import AgentRollout, prompt_messages

    questions = read_questions(small_world / "questions" / "train.jsonl")[:2]
    agent_config = AgentConfig(rules=Rules(max_turns=2))
    rollout = AgentRollout(
        {q.id: q for q in questions},
        loaded[1],
        build_toolbox(ToolsConfig(kb=str(small_world / "kb"), no_cache=True)),
        agent_config,
        SamplingConfig(temperature=1.0, max_new_tokens=6),
        Scorer("rule"),
        vllm=VLLMConfig(guided=False),
    )
    prompts = []
    for q in questions:
        system, user = prompt_messages(q, agent_config)
        picture = Image.open(q.image).convert("RGB")
        prompts.append(
            [
                {**system, "content": [{"type": "text", "text": system["content"]}]},
                {**user, "content": [{"type": "image", "image": picture}, {"type": "text", "text": user["content"]}]},
            ]
        )
    engine = TransformersEngine(loaded)
    trainer = SimpleNamespace(
        accelerator=SimpleNamespace(unwrap_model=lambda m: m, process_index=0),
        model=loaded[0],
        state=SimpleNamespace(global_step=0),
        args=SimpleNamespace(use_vllm=True),
        vllm_generation=SimpleNamespace(mode="colocate", llm=engine),
    )
    rollout._policy = _with_plain_params(rollout._policy)
    out = rollout(prompts, trainer)
    replies = [m for t in out["trajectory"] for m in t.messages if m.role == "assistant"]
    assert len(engine.requests) == len(replies) >= len(prompts)
    assert all(params["regex"] is None and params["seed"] is not None for _, params in engine.requests)
    for trajectory, completion, mask, logprobs in zip(
        out["trajectory"], out["completion_ids"], out["env_mask"], out["logprobs"], strict=True
    ):
        own = [m for m in trajectory.messages if m.role == "assistant"]
        weighted = [i for i, m in enumerate(mask) if m]
        assert [completion[i] for i in weighted] == [t for m in own for t in m.token_ids]
        assert [logprobs[i] for i in weighted] == pytest.approx([v for m in own for v in m.logprobs])

    trainer.vllm_generation.mode = "server"
    with pytest.raises(RuntimeError, match="colocate"):
        rollout(prompts, trainer)


def _with_plain_params(make_policy):
    """The rollout's policy factory, with sampling parameters as plain dicts for the stand-in engine."""

    def make(*args: Any) -> Any:
        policy = make_policy(*args)
        policy.params = settings
        return policy

    return make


def test_vllm_rollouts_are_refused_with_guided_decoding_or_without_vllm(small_world, tmp_path) -> None:
    from deepmmsearch.train.config import TrainGRPOConfig
    from deepmmsearch.train.grpo import train_grpo

    with pytest.raises(ConfigError, match=r"vllm\.guided: false"):
        TrainGRPOConfig(use_vllm=True, vllm=VLLMConfig(guided=True))
    try:
        import vllm  # noqa: F401

        pytest.skip("vLLM is installed here")
    except ImportError:
        pass
    config = TrainGRPOConfig(
        model="unused",
        questions=str(small_world / "questions" / "train.jsonl"),
        out=str(tmp_path),
        use_vllm=True,
    )
    with pytest.raises(ConfigError, match=r"vLLM is not installed: pip install -e \"\.\[gpu\]\""):
        train_grpo(config)

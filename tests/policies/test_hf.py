"""The hf: policy on tiny models built from configs: batching, log-probs, prefix reuse, stops, full episodes."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from deepmmsearch.cli import app
from deepmmsearch.errors import ContextLimitError
from deepmmsearch.models.build import init_model
from deepmmsearch.models.encoding import encode_conversation
from deepmmsearch.policies import Conversation, SamplingConfig, load_policy
from deepmmsearch.policies.hf import HFConfig, HFPolicy
from deepmmsearch.protocol import StopReason, is_reply_prefix, parse
from deepmmsearch.records import Message

REPO = Path(__file__).resolve().parents[2]
IMAGE_PATH = REPO / "examples" / "lighthouse.png"
QUESTIONS = ["How tall is this lighthouse?", "What is it called?", "Where is it, and when was it built?"]


def policy(loaded, max_new_tokens: int = 12, **config) -> HFPolicy:
    return HFPolicy("tiny", SamplingConfig(max_new_tokens=max_new_tokens), HFConfig(**config), loaded=loaded)


def first_turn(index: int, image: Image.Image) -> Conversation:
    messages = [Message("system", "You answer questions."), Message("user", QUESTIONS[index], image=str(IMAGE_PATH))]
    return Conversation(f"q{index}", messages, image)


def next_turn(conversation: Conversation, reply, observation: str) -> Conversation:
    assistant = Message("assistant", reply.text, token_ids=reply.token_ids, logprobs=reply.logprobs)
    messages = [*conversation.messages, assistant, Message("user", observation)]
    return Conversation(conversation.id, messages, conversation.image)


def test_batched_greedy_equals_one_by_one_and_logprobs_match_a_fresh_forward(loaded, image) -> None:
    conversations = [first_turn(i, image) for i in range(3)]
    batched = policy(loaded).generate_sync(conversations)
    single = [policy(loaded).generate_sync([c])[0] for c in conversations]
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]
    assert len({tuple(g.token_ids) for g in batched}) > 1, "prompts should lead to different replies"
    model, processor = loaded
    for conversation, generation in zip(conversations, batched, strict=True):
        assert generation.completion_tokens == len(generation.token_ids) == len(generation.logprobs) > 0
        prompt = encode_conversation(processor, conversation.messages, image, add_generation_prompt=True)
        assert generation.prompt_tokens == prompt["input_ids"].shape[1]
        ids = torch.cat([prompt["input_ids"], torch.tensor([generation.token_ids])], dim=1)
        image_tokens = torch.cat([prompt["mm_token_type_ids"], torch.zeros(1, len(generation.token_ids))], dim=1)
        with torch.no_grad():
            logits = model(
                input_ids=ids,
                pixel_values=prompt["pixel_values"],
                image_grid_thw=prompt["image_grid_thw"],
                mm_token_type_ids=image_tokens.long(),
            ).logits
        start = prompt["input_ids"].shape[1]
        expected = torch.log_softmax(logits[0, start - 1 : -1].float(), dim=-1)
        expected = expected.gather(1, torch.tensor(generation.token_ids)[:, None])[:, 0]
        assert torch.allclose(torch.tensor(generation.logprobs), expected, atol=1e-4)


def test_prefix_reuse_gives_the_same_tokens_and_prefills_less(loaded, image) -> None:
    reuse, fresh = policy(loaded), policy(loaded, prefix_cache=False)
    conversations = [first_turn(i, image) for i in range(2)]
    for turn in range(3):
        with_cache = reuse.generate_sync(conversations)
        without = fresh.generate_sync(conversations)
        assert [g.token_ids for g in with_cache] == [g.token_ids for g in without], f"turn {turn}"
        conversations = [
            next_turn(c, g, f"<information>\nresult {turn}\n</information>\nGo on.")
            for c, g in zip(conversations, with_cache, strict=True)
        ]
    assert reuse.stats["prompt_tokens"] == fresh.stats["prompt_tokens"]
    assert fresh.stats["prefilled_tokens"] == fresh.stats["prompt_tokens"]
    # After the first turn only the new user turn (and the reply's last token) is prefilled.
    assert reuse.stats["prefilled_tokens"] < 0.6 * fresh.stats["prefilled_tokens"]
    before, fresh_before = reuse.stats["prefilled_tokens"], fresh.stats["prompt_tokens"]
    # The same episode id with another image of the same size must not reuse the old image's cache.
    other = Conversation("q1", conversations[1].messages, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert reuse.generate_sync([other])[0].token_ids == fresh.generate_sync([other])[0].token_ids
    assert reuse.stats["prefilled_tokens"] - before == fresh.stats["prompt_tokens"] - fresh_before
    reuse.end_episode("q0")
    assert "q0" not in reuse._cache and "q1" in reuse._cache and "q0" not in reuse._images


def test_encode_conversation_reproduces_the_sampled_tokens(loaded, image) -> None:
    hf = policy(loaded, max_new_tokens=16)
    conversation = first_turn(0, image)
    first = hf.generate_sync([conversation])[0]
    conversation = next_turn(conversation, first, "<information>\nx\n</information>")
    second = hf.generate_sync([conversation])[0]
    messages = [*conversation.messages, Message("assistant", second.text, token_ids=second.token_ids)]
    encoded = encode_conversation(loaded[1], messages, image)
    trained = encoded["input_ids"][0][encoded["assistant_mask"][0].bool()].tolist()
    assert trained == first.token_ids + second.token_ids
    prompt = encode_conversation(loaded[1], conversation.messages, image, add_generation_prompt=True)
    assert encoded["input_ids"][0, : prompt["input_ids"].shape[1]].equal(prompt["input_ids"][0])


def test_generation_stops_at_the_end_of_an_action_tag(loaded, image, monkeypatch) -> None:
    hf = policy(loaded, max_new_tokens=40)
    tokenizer = loaded[1].tokenizer
    script = tokenizer("<reason>r</reason>\n<answer>x</answer> trailing", add_special_tokens=False)["input_ids"]
    steps = iter(script)

    def scripted(logits):
        token = torch.tensor([next(steps)] * logits.shape[0])
        return token, torch.zeros(logits.shape[0])

    monkeypatch.setattr(hf, "_sample", scripted)
    generation = hf.generate_sync([first_turn(0, image)])[0]
    assert generation.text == "<reason>r</reason>\n<answer>x</answer>"
    assert generation.finish_reason == "stop"
    assert tokenizer.decode(generation.token_ids) == generation.text


def test_guided_decoding_keeps_random_weights_in_the_tag_layout(loaded, image) -> None:
    def replies(guided: bool) -> list:
        hf = HFPolicy(
            "tiny", SamplingConfig(temperature=1.0, max_new_tokens=40), HFConfig(seed=0, guided=guided), loaded=loaded
        )
        return hf.generate_sync([first_turn(i % 3, image) for i in range(6)])

    free = replies(guided=False)
    assert not any(is_reply_prefix(g.text) for g in free), "random weights should break the layout unguided"
    guided = replies(guided=True)
    assert all(is_reply_prefix(g.text) for g in guided), [g.text for g in guided]
    assert any("<reason>" in g.text for g in guided)
    # The log-probs stay the model's own (TRL's loss and the logs read them), not those of the masked draw.
    assert all(len(g.logprobs) == len(g.token_ids) and max(g.logprobs) <= 0 for g in guided)

    # A guide built before for this tokenizer (as GRPO's rollouts pass it from step to step) decodes the same.
    first = HFPolicy("tiny", SamplingConfig(temperature=1.0, max_new_tokens=40), HFConfig(seed=0), loaded=loaded)
    again = HFPolicy(
        "tiny", SamplingConfig(temperature=1.0, max_new_tokens=40), HFConfig(seed=0), loaded=loaded, guide=first.guide
    )
    assert again.guide is first.guide
    conversations = [first_turn(i % 3, image) for i in range(6)]
    assert [g.token_ids for g in again.generate_sync(conversations)] == [g.token_ids for g in guided]


def test_guided_decoding_redraws_a_token_that_breaks_the_layout(loaded, image, monkeypatch) -> None:
    hf = policy(loaded, max_new_tokens=40)
    tokenizer = loaded[1].tokenizer
    script = iter(tokenizer("<reason>r</answer><answer>x</answer>", add_special_tokens=False)["input_ids"])
    close_reason, close_answer = tokenizer.convert_tokens_to_ids(["</reason>", "</answer>"])
    sample, masks = hf._sample, []

    def propose(logits, allowed=None):
        """Propose the script's next token; when the guide refuses it, record its mask and make the script's
        writer choose </reason> among the allowed tokens."""
        if allowed is not None:
            masks.append(allowed[0].clone())
            logits = logits.clone()
            logits[:, close_reason] = 1e4
            return sample(logits, allowed)
        return torch.tensor([next(script)]), torch.zeros(1)

    monkeypatch.setattr(hf, "_sample", propose)
    generation = hf.generate_sync([first_turn(0, image)])[0]
    assert len(masks) == 1 and not masks[0][close_answer] and masks[0][close_reason]
    assert generation.text == "<reason>r</reason><answer>x</answer>"
    assert parse(generation.text).query == "x"


def test_sampling_is_seeded_and_respects_max_new_tokens(loaded, image) -> None:
    def sample(seed: int) -> list[int]:
        hf = HFPolicy(
            "tiny", SamplingConfig(temperature=1.0, top_p=0.9, max_new_tokens=8), HFConfig(seed=seed), loaded=loaded
        )
        return hf.generate_sync([first_turn(0, image)])[0].token_ids

    assert sample(3) == sample(3)
    assert len(sample(3)) <= 8


@pytest.mark.parametrize("vocab", ["small", "qwen"])
def test_dmms_ask_runs_a_full_episode_on_a_tiny_model(vocab: str, model_dir: Path, tmp_path: Path) -> None:
    path = model_dir if vocab == "small" else init_model(tmp_path / "qwen", vocab="qwen", size="tiny")
    config = tmp_path / "run.yaml"
    config.write_text("sampling:\n  max_new_tokens: 16\n", encoding="utf-8")
    result = CliRunner().invoke(
        app,
        [
            "ask",
            str(IMAGE_PATH),
            "How tall is it?",
            "--model",
            f"hf:{path}",
            "--kb",
            str(REPO / "examples" / "kb"),
            "--config",
            str(config),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    trajectory = json.loads(result.stdout)
    assert trajectory["stop_reason"] in {r.value for r in StopReason}
    assert trajectory["stop_reason"] != StopReason.POLICY_ERROR
    replies = [m for m in trajectory["messages"] if m["role"] == "assistant"]
    assert replies and all(m["token_ids"] and len(m["logprobs"]) == len(m["token_ids"]) for m in replies)
    assert trajectory["model"] == f"hf:{path}"


def test_a_models_saved_prompt_style_prompts_its_episodes(model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from deepmmsearch.models.build import PROMPT_STYLE_FILE, write_prompt_style
    from deepmmsearch.protocol import PromptStyle, system_prompt

    trained = tmp_path / "trained"
    shutil.copytree(model_dir, trained)
    write_prompt_style(trained, PromptStyle.SHORT)
    run = tmp_path / "run.yaml"
    run.write_text("sampling:\n  max_new_tokens: 8\n", encoding="utf-8")
    flags = ["ask", str(IMAGE_PATH), "How tall is it?", "--model", f"hf:{trained}", "--config", str(run), "--json"]
    result = CliRunner().invoke(app, [*flags, "--kb", str(REPO / "examples" / "kb")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["messages"][0]["text"] == system_prompt(PromptStyle.SHORT)
    (trained / PROMPT_STYLE_FILE).write_text("terse\n")
    result = CliRunner().invoke(app, [*flags, "--kb", str(REPO / "examples" / "kb")])
    assert result.exit_code != 0 and "unknown prompt style 'terse'" in result.output


def test_a_conversation_longer_than_the_context_is_refused(loaded, image) -> None:
    hf = policy(loaded)
    hf.max_context = 44  # the first turn (48 tokens) is longer, a bare "Hi" (39 tokens) is not
    with pytest.raises(ContextLimitError):
        hf.generate_sync([first_turn(0, image)])
    short = Conversation("s", [Message("user", "Hi")], image)
    long_reply, short_reply = hf.generate_sync([first_turn(0, image), short])
    assert long_reply.finish_reason == "context_limit" and long_reply.text == ""
    assert short_reply.token_ids and len(short_reply.token_ids) <= 44 - short_reply.prompt_tokens


def test_an_episode_budget_bounds_the_reply(loaded, image) -> None:
    hf = policy(loaded, max_new_tokens=30, guided=False)
    capped = first_turn(0, image)
    capped.max_new_tokens = 3
    (reply,) = hf.generate_sync([capped])
    assert reply.completion_tokens <= 3 and capped.started_at is not None
    bounded = first_turn(0, image)
    bounded.max_length = reply.prompt_tokens + 2
    (reply,) = hf.generate_sync([bounded])
    assert reply.completion_tokens <= 2
    spent = first_turn(0, image)
    spent.max_length = reply.prompt_tokens
    with pytest.raises(ContextLimitError, match="token budget"):
        hf.generate_sync([spent])


def test_the_vocabulary_size_comes_from_the_config(loaded, image, monkeypatch) -> None:
    # Under ZeRO-3 an unwrapped model's output embedding is an empty shard: the guide must not size itself on it.
    model, _ = loaded
    monkeypatch.setattr(model, "get_output_embeddings", lambda: torch.nn.Linear(4, 0, bias=False))
    hf = policy(loaded, max_new_tokens=4)
    assert hf.guide.plain.shape[0] == model.config.get_text_config().vocab_size
    assert hf.generate_sync([first_turn(0, image)])[0].token_ids


def test_the_cache_keeps_at_most_max_cached_episodes(loaded, image) -> None:
    hf = policy(loaded, max_new_tokens=2, max_cached_episodes=1)
    hf.generate_sync([first_turn(0, image), first_turn(1, image)])
    assert list(hf._cache) == ["q1"] and list(hf._images) == ["q1"]


def test_load_policy_knows_hf(model_dir: Path) -> None:
    hf = load_policy(f"hf:{model_dir}")
    assert isinstance(hf, HFPolicy) and hf.max_batch_size == HFConfig().max_batch_size


def test_the_guide_refuses_a_tag_it_could_not_finish(loaded) -> None:
    tokenizer = loaded[1].tokenizer
    guide = HFPolicy("tiny", SamplingConfig(), HFConfig(), loaded=loaded).guide
    bare = tokenizer.convert_tokens_to_ids("<")
    assert guide.pieces[bare] == "<"
    # Tags are whole tokens here and plain words are refused between tags: nothing could follow a bare "<".
    assert not guide.closable("\n<") and guide.closable("<reason>x</reason>\n")
    assert not guide.allows("", False, bare)
    assert not bool(guide.allowed("", False)[bare])
    # Should a reply still reach a dead end, the stop tokens are the way out, never an empty set to draw from.
    dead = guide.allowed("<reason>x</reason>\n<", False)
    assert bool(dead.any()) and set(dead.nonzero().flatten().tolist()) == guide.stop_ids


def test_batches_waiting_for_the_model_leave_the_default_threads_to_the_tools(loaded, image, monkeypatch) -> None:
    hf = policy(loaded)
    slow = hf.generate_sync

    def generate_sync(conversations):
        time.sleep(0.1)
        return slow(conversations)

    monkeypatch.setattr(hf, "generate_sync", generate_sync)

    async def run() -> tuple[float, list]:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=4))
        batches = [asyncio.create_task(hf.generate([first_turn(i % 3, image)])) for i in range(8)]
        await asyncio.sleep(0.05)  # every batch has asked for the model
        start = time.perf_counter()
        await asyncio.to_thread(lambda: None)  # what a local search does
        waited = time.perf_counter() - start
        return waited, await asyncio.gather(*batches)

    waited, generations = asyncio.run(run())
    assert waited < 0.08 and len(generations) == 8

"""The loss masks of SFT and GRPO on real multi-turn conversations: assistant tokens weight 1, everything else 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepmmsearch.agent import AgentConfig
from deepmmsearch.images import load_image
from deepmmsearch.records import Trajectory, read_jsonl


@pytest.fixture(scope="module")
def processor(tiny_model: Path):
    from deepmmsearch.models.build import load_model

    return load_model(tiny_model, "float32", "cpu")[1]


def _multi_turn(sft_data: Path) -> list[Trajectory]:
    kept = [Trajectory.from_dict(d) for d in read_jsonl(sft_data / "kept.jsonl")]
    multi = [t for t in kept if t.num_tool_calls >= 2]
    assert multi, "the oracle should keep conversations with several tool calls"
    return multi


def test_sft_labels_cover_exactly_the_assistant_replies(sft_data, processor):
    from deepmmsearch.train.sft import IGNORE_INDEX, ConversationCollator, load_sft_rows

    rows, data_dir = load_sft_rows(str(sft_data))
    collator = ConversationCollator(processor, data_dir)
    row = next(r for r in rows if sum(m["kind"] == "tool_result" for m in r["messages"]) >= 2)
    batch = collator([row, rows[0]])  # two rows of different lengths: padding must carry no loss either
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    trained = labels != IGNORE_INDEX
    assert bool((labels[trained] == ids[trained]).all())

    tokenizer = processor.tokenizer
    replies = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
    # Each reply is trained with the <|im_end|> that ends its turn, and the ids are the template's all the same.
    assert tokenizer.decode(ids[trained]) == "".join(r + "<|im_end|>" for r in replies)
    assert int(trained.sum()) == sum(len(tokenizer(r, add_special_tokens=False)["input_ids"]) + 1 for r in replies)
    from deepmmsearch.models.encoding import encode_conversation
    from deepmmsearch.train.sft import resolve_image, row_messages

    messages = row_messages(row, resolve_image(row["image_path"], data_dir))
    plain = encode_conversation(processor, messages, load_image(messages[1].image), use_token_ids=False)
    assert plain["input_ids"][0].tolist() == ids[batch["attention_mask"][0] == 1].tolist()
    context = tokenizer.decode(ids[~trained])
    for message in row["messages"]:
        if message["kind"] in ("prompt", "tool_result"):
            assert message["content"].split("\n")[0] in context  # system prompt, question, every tool result
    # The shorter row is right-padded with labels that carry no loss.
    short = batch["attention_mask"][1] == 0
    assert bool(short.any()) and bool((batch["labels"][1][short] == IGNORE_INDEX).all())
    assert batch["pixel_values"].shape[0] == int(batch["image_grid_thw"].prod(dim=1).sum())


def test_grpo_env_mask_zeroes_prompt_and_tool_results(sft_data, processor):
    from trl.data_utils import apply_chat_template, prepare_multimodal_messages

    from deepmmsearch.train.rollout import episode_tokens, prompt_messages

    trajectory = _multi_turn(sft_data)[0]
    image = load_image(trajectory.question.image)
    tokens = episode_tokens(processor, trajectory, image)
    tokenizer = processor.tokenizer
    assert len(tokens.completion_ids) == len(tokens.env_mask) == len(tokens.logprobs)

    replies = [m.text for m in trajectory.messages if m.role == "assistant"]
    trained = [t for t, m in zip(tokens.completion_ids, tokens.env_mask, strict=True) if m]
    assert tokenizer.decode(trained) == "".join(replies)
    masked = tokenizer.decode([t for t, m in zip(tokens.completion_ids, tokens.env_mask, strict=True) if not m])
    observations = [m.tool.observation for m in trajectory.messages if m.tool is not None]
    assert len(observations) >= 2
    for observation in observations:
        assert observation.strip().split("\n")[0] in masked
    prompt = tokenizer.decode(tokens.prompt_ids)
    assert trajectory.question.question in prompt and not any(r in prompt for r in replies)
    assert tokens.completion_ids[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")

    # TRL computes pixel_values from the dataset prompt: the rollout's prompt ids must be that very prompt.
    messages = prepare_multimodal_messages(prompt_messages(trajectory.question, AgentConfig()), images=[image])
    text = apply_chat_template({"prompt": messages}, processor)["prompt"]
    trl_prompt = processor(images=[[image]], text=[text], return_tensors="pt")["input_ids"][0].tolist()
    assert trl_prompt == tokens.prompt_ids


def test_a_sampled_image_placeholder_gets_no_weight(sft_data, processor):
    from deepmmsearch.train.rollout import episode_tokens

    trajectory = _multi_turn(sft_data)[0]
    tokenizer = processor.tokenizer
    image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    reply = next(m for m in trajectory.messages if m.role == "assistant")
    reply.token_ids = [*tokenizer(reply.text, add_special_tokens=False)["input_ids"][:3], image_pad]
    reply.logprobs = [-0.5] * len(reply.token_ids)
    tokens = episode_tokens(processor, trajectory, load_image(trajectory.question.image))
    assert image_pad not in tokens.completion_ids  # the model would look for image features that do not exist
    assert (
        sum(tokens.env_mask)
        == sum(
            len(tokenizer(m.text, add_special_tokens=False)["input_ids"])
            for m in trajectory.messages
            if m.role == "assistant" and m is not reply
        )
        + 3
    )


def test_an_episode_without_a_reply_is_an_empty_weightless_completion(sft_data, processor):
    from deepmmsearch.train.rollout import episode_tokens

    trajectory = _multi_turn(sft_data)[0]
    trajectory.messages = trajectory.messages[:2]
    trajectory.stop_reason = "policy_error"
    tokens = episode_tokens(processor, trajectory, load_image(trajectory.question.image))
    assert tokens.env_mask == [0] and len(tokens.completion_ids) == 1
    assert processor.tokenizer.decode(tokens.prompt_ids).endswith("<|im_start|>assistant\n")


def test_tokens_the_guide_chose_get_no_weight(sft_data, processor):
    from deepmmsearch.train.rollout import episode_tokens

    trajectory = _multi_turn(sft_data)[0]
    tokenizer = processor.tokenizer
    replies = [m for m in trajectory.messages if m.role == "assistant"]
    for reply in replies:
        reply.token_ids = tokenizer(reply.text, add_special_tokens=False)["input_ids"]
        reply.logprobs = [-0.5] * len(reply.token_ids)
    first = replies[0]
    first.redrawn = [0, len(first.token_ids) - 1]  # e.g. a closing tag the model did not want to write
    tokens = episode_tokens(processor, trajectory, load_image(trajectory.question.image))
    trained = [t for t, m in zip(tokens.completion_ids, tokens.env_mask, strict=True) if m]
    expected = first.token_ids[1:-1] + [t for reply in replies[1:] for t in reply.token_ids]
    assert trained == expected


def test_sft_keeps_the_encodings_for_every_epoch(sft_data, processor):
    from deepmmsearch.train.sft import ConversationCollator, load_sft_rows

    rows, data_dir = load_sft_rows(str(sft_data), limit=6)
    collator = ConversationCollator(processor, data_dir)
    lengths = collator.lengths(rows)
    assert lengths == [collator.encode(row)["input_ids"].shape[1] for row in rows] and len(collator.kept) == 6
    fresh = ConversationCollator(processor, data_dir)
    kept, encoded = collator([rows[0], rows[3]]), fresh([rows[0], rows[3]])
    assert kept.keys() == encoded.keys() and all(bool((kept[k] == encoded[k]).all()) for k in kept)
    small = ConversationCollator(processor, data_dir)
    small.lengths(rows, keep_bytes=1000)
    assert not small.kept  # what does not fit the budget is not kept at all

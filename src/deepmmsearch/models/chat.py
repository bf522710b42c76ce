"""The Qwen2.5-VL chat format: special tokens in id order and the released chat template. No heavy imports."""

from __future__ import annotations

from typing import Any

# The 22 special tokens of Qwen2.5 in id order; with the real vocabulary they take ids 151643..151664.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
# Released Qwen2.5 marks the first 14 as special (skipped when decoding); tool-call and FIM tokens are plain text.
N_SKIPPED_SPECIAL = 14
# Qwen2-VL has only those 14 (151643..151656); Qwen3 and Qwen3-VL add four plain-text tokens after Qwen2.5's 22
# (151665..151668); Qwen3.5's vocabulary of 248,044 ranks is followed by Qwen3's 26 and seven audio tokens.
QWEN2_VL_SPECIAL_TOKENS: tuple[str, ...] = SPECIAL_TOKENS[:N_SKIPPED_SPECIAL]
QWEN3_SPECIAL_TOKENS: tuple[str, ...] = (*SPECIAL_TOKENS, "<tool_response>", "</tool_response>", "<think>", "</think>")
AUDIO_TOKENS: tuple[str, ...] = (
    "<|audio_start|>",
    "<|audio_end|>",
    "<tts_pad>",
    "<tts_text_bos>",
    "<tts_text_eod>",
    "<tts_text_bos_single>",
    "<|audio_pad|>",
)
QWEN3_5_SPECIAL_TOKENS: tuple[str, ...] = (*QWEN3_SPECIAL_TOKENS, *AUDIO_TOKENS)

EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
IMAGE_TOKEN = "<|image_pad|>"
VIDEO_TOKEN = "<|video_pad|>"
VISION_START_TOKEN = "<|vision_start|>"


def stop_ids(tokenizer: Any) -> set[int]:
    """The ids that end a reply: end of turn, and the padding token a model may emit in its place."""
    return {tokenizer.convert_tokens_to_ids(EOS_TOKEN), tokenizer.convert_tokens_to_ids(PAD_TOKEN)}


def never_sampled_ids(tokenizer: Any) -> list[int]:
    """Image placeholders: one sampled would be re-read next turn as an image slot with no image (transformers'
    rope index then fails), and undertrained models do sample them."""
    return [tokenizer.convert_tokens_to_ids(t) for t in (IMAGE_TOKEN, VIDEO_TOKEN, VISION_START_TOKEN)]


# Qwen2.5-VL-7B-Instruct's chat_template.json, verbatim.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)

"""Turn a conversation into model inputs exactly as generation sees it, with the mask of trainable tokens.

Generation (the ``hf:`` policy) and training (SFT, GRPO) both call :func:`encode_conversation`, so the tokens
a model is trained on are the tokens it was prompted with and sampled, id for id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from PIL import Image

from deepmmsearch.errors import InputError
from deepmmsearch.models.chat import EOS_TOKEN, IMAGE_TOKEN
from deepmmsearch.records import Message

# clean_text strips control characters from every message, so a NUL-delimited marker cannot occur in one.
_SLOT_RE = re.compile("\x00(\\d+)\x00")


def image_inputs(processor: Any, image: Image.Image) -> dict[str, Any]:
    """``pixel_values`` and ``image_grid_thw`` of one image, as the model's image processor makes them."""
    out = processor.image_processor(images=[image], return_tensors="pt")
    return {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]}


def encode_conversation(
    processor: Any,
    messages: Sequence[Message],
    image: Image.Image | None = None,
    *,
    add_generation_prompt: bool = False,
    use_token_ids: bool = True,
    images: dict[str, Any] | None = None,
    train_end_of_turn: bool = False,
) -> dict[str, Any]:
    """Tokenize a multi-turn conversation with the model's chat template.

    Returns tensors of batch size 1: ``input_ids``, ``attention_mask``, ``assistant_mask`` (1 on the tokens of
    assistant replies only, never on the template's markup or on tool results), ``mm_token_type_ids`` (1 on
    image tokens) and, when a message shows the image, ``pixel_values`` and ``image_grid_thw``.

    An assistant message that carries ``token_ids`` (what a local policy sampled) is inserted as those ids,
    not re-tokenized from its text: BPE of a sampled sequence need not be canonical, and training must see
    the sampled tokens. A reply that ended with ``<|im_end|>`` keeps that token as its own (trainable) last one.
    ``images`` may pass precomputed :func:`image_inputs` to skip the image processor. ``train_end_of_turn``: a
    reply given as text is a whole turn, and its ``<|im_end|>`` is trainable too (SFT: a model that never learned
    to end its turn runs on past the reply where a server does not stop it at our stop strings).
    """
    import torch

    tokenizer = processor.tokenizer
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    rendered: list[dict[str, Any]] = []
    n_images = 0
    for index, message in enumerate(messages):
        if message.role == "assistant":
            rendered.append({"role": "assistant", "content": f"\x00{index}\x00"})
        elif message.image is not None:
            n_images += 1
            rendered.append(
                {"role": message.role, "content": [{"type": "image"}, {"type": "text", "text": message.text}]}
            )
        else:
            rendered.append({"role": message.role, "content": message.text})
    text = tokenizer.apply_chat_template(
        rendered,
        chat_template=processor.chat_template,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
        **getattr(processor, "template_kwargs", {}),  # the family's template switches (Qwen3.5: non-thinking)
    )

    out: dict[str, Any] = {}
    image_pad = IMAGE_TOKEN
    if n_images:
        if images is None:
            if image is None:
                raise InputError("a message shows the image but no image was given")
            images = image_inputs(processor, image)
        grid = images["image_grid_thw"]
        out["pixel_values"] = images["pixel_values"].repeat(n_images, 1)
        out["image_grid_thw"] = grid.repeat(n_images, 1)
        image_pad = IMAGE_TOKEN * (int(grid[0].prod()) // processor.image_processor.merge_size**2)

    ids: list[int] = []
    mask: list[int] = []
    pieces = _SLOT_RE.split(text)  # text, slot index, text, slot index, ..., text
    strip_eos = False
    for position, piece in enumerate(pieces):
        if position % 2 == 0:
            if strip_eos and piece.startswith(EOS_TOKEN):
                piece = piece[len(EOS_TOKEN) :]
            piece_ids = tokenizer(piece.replace(IMAGE_TOKEN, image_pad), add_special_tokens=False)["input_ids"]
            ids += piece_ids
            mask += [0] * len(piece_ids)
            continue
        message = messages[int(piece)]
        if use_token_ids and message.token_ids:
            reply = list(message.token_ids)
        else:
            reply = tokenizer(message.text, add_special_tokens=False)["input_ids"]
            if train_end_of_turn:
                reply.append(eos_id)
        strip_eos = bool(reply) and reply[-1] == eos_id
        ids += reply
        mask += [1] * len(reply)

    input_ids = torch.tensor([ids], dtype=torch.long)
    out.update(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        assistant_mask=torch.tensor([mask], dtype=torch.long),
        mm_token_type_ids=(input_ids == processor.image_token_id).long(),
    )
    return out

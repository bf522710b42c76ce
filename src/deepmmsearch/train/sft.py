"""``dmms train sft``: the supervised cold start on the conversations that ``dmms data build`` kept.

Each dataset row is turned back into :class:`~deepmmsearch.records.Message` objects and tokenized with
:func:`~deepmmsearch.models.encoding.encode_conversation`, the function generation uses, so the model is trained
on exactly the tokens it will be prompted with. Labels are the input ids where ``assistant_mask`` is 1 and -100
everywhere else: the system prompt, the question and every tool result carry no loss.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from deepmmsearch.data.augment import final_answer, proper_words, swap_answer, swap_names
from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.records import Message
from deepmmsearch.train.config import TrainSFTConfig

IGNORE_INDEX = -100  # the label PyTorch's cross-entropy skips
DESCRIBE = "Describe the picture."  # the question of a caption row


def caption_conversations(path: str, limit: int | None = None) -> list[dict]:
    """The rows of a captions file (JSON Lines of ``image``, ``caption``; images relative to the file) as SFT rows:
    the picture and "Describe the picture.", answered by the caption."""
    from deepmmsearch.records import read_jsonl

    folder = Path(path).parent
    rows = [
        {
            "id": f"caption-{index}",
            "image_path": str(folder / record["image"]),
            "messages": [
                {"role": "user", "content": DESCRIBE, "image": True},
                {"role": "assistant", "content": record["caption"]},
            ],
        }
        for index, record in enumerate(read_jsonl(path))
        if record.get("image") and record.get("caption")
    ][:limit]
    if not rows:
        raise InputError(f"{path}: no rows with an image and a caption")
    return rows


def row_messages(row: dict, image_path: str) -> list[Message]:
    """The messages of one SFT row, the input image attached to the turn that showed it."""
    return [Message(m["role"], m["content"], image=image_path if m.get("image") else None) for m in row["messages"]]


def resolve_image(path: str, data_dir: Path) -> str:
    """An image path of a row: absolute, relative to the working folder, or relative to the data folder."""
    candidates = [Path(path), data_dir / path, data_dir.parent / path]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise InputError(f"image {path} of the SFT data not found (looked in ., {data_dir} and {data_dir.parent})")


def encode_example(processor: Any, messages: list[Message], image: Any) -> dict[str, Any]:
    """Model inputs of one conversation with its labels: loss on assistant reply tokens only, each reply's
    ``<|im_end|>`` included."""
    from deepmmsearch.models.encoding import encode_conversation

    enc = encode_conversation(processor, messages, image, use_token_ids=False, train_end_of_turn=True)
    labels = enc["input_ids"].masked_fill(enc.pop("assistant_mask") == 0, IGNORE_INDEX)
    return {**enc, "labels": labels}


class ConversationCollator:
    """Tokenizes rows with :func:`encode_example` and right-pads them into one batch (images concatenated).

    Augmentations (see :mod:`deepmmsearch.data.augment`), drawn anew each time a row is batched: with
    ``swap_share`` > 0, that share of the conversations has its made-up names swapped for others of ``name_pool``;
    with ``answer_share`` > 0, that share has the answer its tool results gave swapped for another value (of
    ``answer_pool`` when it is not a number).
    """

    def __init__(
        self,
        processor: Any,
        data_dir: Path,
        swap_share: float = 0.0,
        name_pool: list[str] | None = None,
        seed: int = 0,
        answer_share: float = 0.0,
        answer_pool: list[str] | None = None,
    ) -> None:
        from deepmmsearch.models.chat import PAD_TOKEN

        self.processor = processor
        self.data_dir = data_dir
        self.pad_id = processor.tokenizer.convert_tokens_to_ids(PAD_TOKEN)
        self.swap_share = swap_share
        self.name_pool = name_pool or []
        self.answer_share = answer_share
        self.answer_pool = answer_pool or []
        self.rng = random.Random(seed)
        self.kept: dict[str, dict[str, Any]] = {}  # by row content: plain encodings reused epoch after epoch

    def encode(self, row: dict, texts: list[str] | None = None) -> dict[str, Any]:
        """The encoded row; with ``texts``, its turns' texts replaced by them (an augmented draw)."""
        from deepmmsearch.images import load_image

        image_path = resolve_image(row["image_path"], self.data_dir)
        messages = row_messages(row, image_path)
        if texts is not None:
            messages = [replace(m, text=text) for m, text in zip(messages, texts, strict=True)]
        return encode_example(self.processor, messages, load_image(image_path))

    def augmented(self, row: dict) -> list[str] | None:
        """The row's turn texts after this draw's augmentations, or None when none was drawn or none applied."""
        texts = [m["content"] for m in row["messages"]]
        changed = texts
        if self.swap_share > 0 and self.rng.random() < self.swap_share:
            changed = swap_names(changed, self.name_pool, self.rng)
        if self.answer_share > 0 and self.rng.random() < self.answer_share:
            changed = swap_answer(changed, [m.get("kind", "") for m in row["messages"]], self.answer_pool, self.rng)
        return None if changed == texts else changed

    def __call__(self, rows: list[dict]) -> dict[str, Any]:
        examples = []
        for row in rows:
            texts = self.augmented(row)
            kept = self.kept.get(_row_key(row)) if texts is None else None
            examples.append(kept or self.encode(row, texts))
        return self.pad(examples)

    def lengths(self, rows: Iterable[dict], keep_bytes: int = 2**31) -> list[int]:
        """Each row's length in tokens. Encoding is what this costs, so the plain encodings are kept for the batches
        of every epoch (augmented draws are encoded anew) when all of them fit in ``keep_bytes``."""
        keep, used, lengths = True, 0, []
        for row in rows:
            encoded = self.encode(row)
            lengths.append(encoded["input_ids"].shape[1])
            used += sum(t.nelement() * t.element_size() for t in encoded.values())
            keep = keep and used <= keep_bytes
            if keep:
                self.kept[_row_key(row)] = encoded
        if not keep:
            self.kept.clear()
        return lengths

    def pad(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        """Encoded examples right-padded into one batch, their images concatenated."""
        import torch

        width = max(e["input_ids"].shape[1] for e in examples)

        def padded(key: str, value: int) -> Any:
            return torch.cat(
                [torch.nn.functional.pad(e[key], (0, width - e[key].shape[1]), value=value) for e in examples]
            )

        batch = {
            "input_ids": padded("input_ids", self.pad_id),
            "attention_mask": padded("attention_mask", 0),
            "labels": padded("labels", IGNORE_INDEX),
            "mm_token_type_ids": padded("mm_token_type_ids", 0),
        }
        with_images = [e for e in examples if "pixel_values" in e]
        if with_images:
            batch["pixel_values"] = torch.cat([e["pixel_values"] for e in with_images])
            batch["image_grid_thw"] = torch.cat([e["image_grid_thw"] for e in with_images])
        return batch


def _row_key(row: dict) -> str:
    return json.dumps([row["image_path"], row["messages"]], sort_keys=True)


def load_sft_rows(data: str, limit: int | None = None) -> tuple[Any, Path]:
    """The SFT dataset of a ``dmms data build`` folder (or its ``sft/``), and the folder images resolve against."""
    from datasets import load_from_disk

    path = Path(data)
    if (path / "sft").is_dir():
        path = path / "sft"
    if not path.is_dir():
        raise InputError(f"{data}: no SFT dataset here; run `dmms data build ... --out DIR` and pass DIR")
    try:
        rows = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise InputError(f"{path}: not a datasets folder ({e})") from None
    # A column named "image" would make TRL treat this as a vision dataset and tokenize it its own way.
    rows = rows.rename_column("image", "image_path")
    if limit is not None:
        rows = rows.select(range(min(limit, len(rows))))
    return rows, path.parent


def train_sft(config: TrainSFTConfig, resume: bool = False) -> dict[str, Any]:
    """Run SFT as configured; return a summary (steps, loss, final model folder, wall time)."""
    from trl import SFTTrainer

    from deepmmsearch.models.build import write_prompt_style
    from deepmmsearch.protocol import prompt_style_of
    from deepmmsearch.train.common import (
        device_and_precision,
        image_size_limit,
        make_metrics_logger,
        resume_checkpoint,
        train_and_save,
        trainable_model,
        world_size,
    )
    from deepmmsearch.train.config import sft_args

    start = time.perf_counter()
    # --- set-up: devices, run folder, where to resume
    use_cpu, bf16, dtype = device_and_precision(config.device, config.dtype)
    checkpoint = resume_checkpoint(config.out, resume)

    # --- data: rows of `dmms data build`, too-long conversations left out (cutting one could split its image)
    if not config.data:
        raise ConfigError("no training data: set data: in the config or pass --data DIR")
    rows, data_dir = load_sft_rows(config.data, config.limit)
    if config.captions and config.caption_rows:
        from datasets import Dataset, concatenate_datasets

        pictures = caption_conversations(config.captions, config.caption_rows)
        extra = {name: None for name in rows.column_names if name not in pictures[0]}
        rows = concatenate_datasets([rows, Dataset.from_list([{**extra, **r} for r in pictures]).cast(rows.features)])

    # --- model: vision tower frozen, LoRA or the whole language model trainable
    model, processor = trainable_model(
        config.model, dtype, config.lora, config.train_vision, max_pixels=config.max_pixels
    )
    swapping = config.swap_names or config.swap_answers  # the pools come from the data's texts
    texts = [[m["content"] for m in row["messages"]] for row in rows] if swapping else []
    names = proper_words(t for turns in texts for t in turns) if config.swap_names else []
    answers = sorted({a for turns in texts if (a := final_answer(turns)) is not None}) if config.swap_answers else []
    collator = ConversationCollator(
        processor, data_dir, config.swap_names, names, config.seed, config.swap_answers, answers
    )
    lengths = collator.lengths(rows)
    keep = [i for i, n in enumerate(lengths) if n <= config.max_length]
    if not keep:
        raise ConfigError(
            f"every conversation is longer than max_length={config.max_length} tokens (the longest: "
            f"{max(lengths)}); raise max_length, or lower max_pixels (images take most of them)"
        )
    if len(keep) < len(lengths):
        import warnings

        warnings.warn(
            f"SFT leaves out {len(lengths) - len(keep)} of {len(lengths)} conversations longer than max_length="
            f"{config.max_length} tokens (the longest: {max(lengths)}); raise max_length, or lower max_pixels "
            f"(now {image_size_limit(processor)})",
            UserWarning,
            stacklevel=2,
        )
    rows = rows.select(keep)

    # --- trainer: TRL's SFTTrainer with our collator; our callback writes the metrics log
    args = sft_args(config, use_cpu, bf16, world_size())
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=rows,
        data_collator=collator,
        processing_class=processor,
        callbacks=[make_metrics_logger(config.out)],
    )

    # --- train, continuing from the last checkpoint when resuming
    result, summary = train_and_save(trainer, processor, config.out, checkpoint, start, "SFT", dtype=dtype)
    # The model answers best when prompted as it was trained: the data's style, told by its system prompts.
    styles = Counter(prompt_style_of(m[0]["content"]) for m in rows["messages"] if m and m[0]["role"] == "system")
    style = styles.most_common(1)[0][0] if styles else None
    if style is not None and trainer.is_world_process_zero():
        write_prompt_style(summary["final"], style)
    return {
        **summary,
        "train_loss": result.training_loss,
        "examples": len(rows),
        "skipped_too_long": len(lengths) - len(keep),
    }

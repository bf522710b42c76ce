"""``dmms train sft``: the supervised cold start on the conversations that ``dmms data build`` kept.

Each dataset row is turned back into :class:`~deepmmsearch.records.Message` objects and tokenized with
:func:`~deepmmsearch.models.encoding.encode_conversation`, the function generation uses, so the model is trained
on exactly the tokens it will be prompted with. Labels are the input ids where ``assistant_mask`` is 1 and -100
everywhere else: the system prompt, the question and every tool result carry no loss.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.records import Message
from deepmmsearch.train.config import TrainSFTConfig

IGNORE_INDEX = -100  # the label PyTorch's cross-entropy skips


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
    """Tokenizes rows with :func:`encode_example` and right-pads them into one batch (images concatenated)."""

    def __init__(self, processor: Any, data_dir: Path) -> None:
        from deepmmsearch.models.chat import PAD_TOKEN

        self.processor = processor
        self.data_dir = data_dir
        self.pad_id = processor.tokenizer.convert_tokens_to_ids(PAD_TOKEN)
        self.kept: dict[str, dict[str, Any]] = {}  # by row content: encodings reused epoch after epoch

    def encode(self, row: dict) -> dict[str, Any]:
        """The encoded row."""
        from deepmmsearch.images import load_image

        image_path = resolve_image(row["image_path"], self.data_dir)
        return encode_example(self.processor, row_messages(row, image_path), load_image(image_path))

    def __call__(self, rows: list[dict]) -> dict[str, Any]:
        return self.pad([self.kept.get(_row_key(row)) or self.encode(row) for row in rows])

    def lengths(self, rows: Iterable[dict], keep_bytes: int = 2**31) -> list[int]:
        """Each row's length in tokens. Encoding is what this costs, so the encodings are kept for the batches of
        every epoch when all of them fit in ``keep_bytes``."""
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

    from deepmmsearch.models.build import PROMPT_STYLE_FILE, read_prompt_style, write_prompt_style
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
    from deepmmsearch.train.distributed import start_processes

    start = time.perf_counter()
    # --- set-up: devices, run folder, where to resume
    use_cpu, bf16, dtype = device_and_precision(config.schedule.device, config.schedule.dtype)
    checkpoint = resume_checkpoint(config.out, resume)

    # --- data: rows of `dmms data build`, too-long conversations left out (cutting one could split its image)
    if not config.data:
        raise ConfigError("no training data: set data: in the config or pass --data DIR")
    rows, data_dir = load_sft_rows(config.data, config.limit)
    style = read_prompt_style(data_dir)  # the data's prompt style, kept beside the model: agents prompt it so
    if style is None:
        warnings.warn(
            f"{data_dir} records no prompt style ({PROMPT_STYLE_FILE}, written by `dmms data build`): the model is "
            "saved without one, and agents prompt it in the configured style, else full",
            UserWarning,
            stacklevel=2,
        )

    # --- model: vision tower frozen, LoRA or the whole language model trainable; under ZeRO-3 loaded partitioned
    args = sft_args(config, use_cpu, bf16, world_size())
    start_processes(args)
    model, processor = trainable_model(
        config.model, dtype, config.lora, config.train_vision, max_pixels=config.max_pixels
    )
    collator = ConversationCollator(processor, data_dir)
    lengths = collator.lengths(rows)
    keep = [i for i, n in enumerate(lengths) if n <= config.max_length]
    if not keep:
        raise ConfigError(
            f"every conversation is longer than max_length={config.max_length} tokens (the longest: "
            f"{max(lengths)}); raise max_length, or lower max_pixels (images take most of them)"
        )
    if len(keep) < len(lengths):
        warnings.warn(
            f"SFT leaves out {len(lengths) - len(keep)} of {len(lengths)} conversations longer than max_length="
            f"{config.max_length} tokens (the longest: {max(lengths)}); raise max_length, or lower max_pixels "
            f"(now {image_size_limit(processor)})",
            UserWarning,
            stacklevel=2,
        )
    rows = rows.select(keep)

    # --- trainer: TRL's SFTTrainer with our collator; our callback writes the metrics log
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
    if style is not None and trainer.is_world_process_zero():
        write_prompt_style(summary["final"], style)
    return {
        **summary,
        "train_loss": result.training_loss,
        "examples": len(rows),
        "skipped_too_long": len(lengths) - len(keep),
    }

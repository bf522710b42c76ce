"""``dmms train align``: vision alignment of a student around a released language model.

The student of ``dmms model init --lm`` has a new, random vision tower. Before SFT it learns to see on captioned
pictures ("colour: red. shape: star. background: cream."), with the language model frozen, as LLaVA's first stage
trains its projector: the language model keeps what it knows, and the picture's features come to mean to it what
the caption says. Loss on the caption's tokens only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from deepmmsearch.errors import ConfigError
from deepmmsearch.train.config import LoraSettings, TrainAlignConfig


def train_align(config: TrainAlignConfig, resume: bool = False) -> dict[str, Any]:
    """Run vision alignment as configured; return a summary (steps, loss, final model folder, wall time)."""
    from datasets import Dataset
    from trl import SFTTrainer

    from deepmmsearch.train.common import (
        device_and_precision,
        make_metrics_logger,
        resume_checkpoint,
        train_and_save,
        trainable_model,
        world_size,
    )
    from deepmmsearch.train.config import sft_args
    from deepmmsearch.train.sft import ConversationCollator, caption_conversations

    start = time.perf_counter()
    # --- set-up: devices, run folder, where to resume
    use_cpu, bf16, dtype = device_and_precision(config.device, config.dtype)
    checkpoint = resume_checkpoint(config.out, resume)

    # --- data: each captioned picture as a one-turn conversation, the caption its reply
    if not config.captions:
        raise ConfigError("no captioned pictures: set captions: in the config or pass --captions FILE")
    rows = Dataset.from_list(caption_conversations(config.captions, config.rows))

    # --- model: the vision tower and merger train, the language model is frozen
    model, processor = trainable_model(
        config.model, dtype, LoraSettings(enabled=False), train_vision=True, train_language_model=False
    )
    collator = ConversationCollator(processor, Path(config.captions).parent)

    # --- trainer: TRL's SFTTrainer with our collator; our callback writes the metrics log
    trainer = SFTTrainer(
        model=model,
        args=sft_args(config, use_cpu, bf16, world_size()),
        train_dataset=rows,
        data_collator=collator,
        processing_class=processor,
        callbacks=[make_metrics_logger(config.out)],
    )
    result, summary = train_and_save(trainer, processor, config.out, checkpoint, start, "align", dtype=dtype)
    return {**summary, "train_loss": result.training_loss, "examples": len(rows)}

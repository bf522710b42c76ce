"""``dmms train pretrain``: causal-LM pre-training of a model built from scratch, on a knowledge base's pages.

A released VLM arrives able to read a search result and copy a name out of it; a tiny model built by
``dmms model init`` cannot, and SFT alone (a few copies per conversation, loss on the replies only) teaches that
slowly. Pages rendered as the search tools show them, several to a sequence, give it that reading first: every
result line repeats its title, so each sequence holds many copies to learn from. Text only; the vision tower is
untouched.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.train.config import LoraSettings, TrainPretrainConfig


def pretraining_texts(pages: list[dict], sequences: int, pages_per_sequence: int, seed: int = 0) -> list[str]:
    """``sequences`` texts, each a random group of pages, one result line per page."""
    from deepmmsearch.engine.summarize import result_line

    if not pages:
        raise InputError("no pages to pre-train on")
    rng = random.Random(seed)
    size = min(pages_per_sequence, len(pages))
    return [
        "\n".join(result_line(p["title"], p.get("url", ""), p["text"]) for p in rng.sample(pages, size))
        for _ in range(sequences)
    ]


def read_kb_pages(kb: str) -> list[dict]:
    """The pages of a knowledge-base folder (``dmms kb build`` or ``dmms world build``)."""
    from deepmmsearch.records import read_jsonl

    if not kb:
        raise ConfigError("no corpus: set kb: in the config or pass --kb DIR")
    path = Path(kb) / "pages.jsonl"
    if not path.is_file():
        raise InputError(f"{kb}: no pages.jsonl here; pass a folder built by `dmms kb build` or `dmms world build`")
    return [p for p in read_jsonl(path) if p.get("title") and p.get("text")]


def train_pretrain(config: TrainPretrainConfig, resume: bool = False) -> dict[str, Any]:
    """Run LM pre-training as configured; return a summary (steps, loss, final model folder, wall time)."""
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
    from deepmmsearch.train.config import pretrain_args

    start = time.perf_counter()
    use_cpu, bf16, dtype = device_and_precision(config.device, config.dtype)
    checkpoint = resume_checkpoint(config.out, resume)
    texts = pretraining_texts(read_kb_pages(config.kb), config.sequences, config.pages_per_sequence, config.seed)
    model, processor = trainable_model(config.model, dtype, LoraSettings(enabled=False))
    trainer = SFTTrainer(
        model=model,
        args=pretrain_args(config, use_cpu, bf16, world_size()),
        train_dataset=Dataset.from_dict({"text": texts}),
        processing_class=processor.tokenizer,  # text only: the tokenizer, not the image processor
        callbacks=[make_metrics_logger(config.out)],
    )
    result, summary = train_and_save(trainer, processor, config.out, checkpoint, start)
    return {**summary, "train_loss": result.training_loss, "sequences": len(texts)}

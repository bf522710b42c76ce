"""``dmms train pretrain``: causal-LM pre-training of a model built from scratch, on a knowledge base's pages.

A released VLM arrives able to read a search result and copy a name out of it; a tiny model built by
``dmms model init`` cannot, and SFT alone (a few copies per conversation, loss on the replies only) teaches that
slowly. Pages rendered as the search tools show them give it that reading first: each sequence is a few result
blocks as the agent sees them, each followed by a line that names the first result ("This is Risbel Ibex."), the
copy an agent makes after an image search, far back in its context. Text only; the vision tower is untouched.
"""

from __future__ import annotations

import random
import textwrap
import time
from pathlib import Path
from typing import Any

from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.train.config import LoraSettings, TrainPretrainConfig

# What a reader says after a block of results: the name of the first one.
NAMING = (
    "This is {title}.",
    "It is {title}.",
    "The best match is {title}.",
    "The image search identifies it as {title}.",
    "According to the image search this is {title}.",
)


def pretraining_texts(
    pages: list[dict], sequences: int, pages_per_block: int, blocks_per_sequence: int = 3, seed: int = 0
) -> list[str]:
    """``sequences`` texts, each ``blocks_per_sequence`` result blocks of random pages (one short result line per
    page, inside ``<information>`` as the tools return them), each block followed by a line naming its first result.
    """
    from deepmmsearch.engine.summarize import result_line

    if not pages:
        raise InputError("no pages to pre-train on")
    rng = random.Random(seed)
    size = min(pages_per_block, len(pages))

    def block() -> str:
        chosen = rng.sample(pages, size)
        lines = "\n".join(
            result_line(p["title"], p.get("url", ""), textwrap.shorten(p["text"], 120, placeholder="")) for p in chosen
        )
        return f"<information>\n{lines}\n</information>\n" + rng.choice(NAMING).format(title=chosen[0]["title"])

    return ["\n".join(block() for _ in range(blocks_per_sequence)) for _ in range(sequences)]


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
    texts = pretraining_texts(
        read_kb_pages(config.kb), config.sequences, config.pages_per_block, config.blocks_per_sequence, config.seed
    )
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

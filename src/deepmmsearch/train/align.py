"""``dmms train align``: vision alignment of a student around a released language model.

The student of ``dmms model init --lm`` has a new, random vision tower. Before SFT it learns to see on captioned
pictures ("colour: red. shape: star. background: cream.") in two stages:

1. **The tower names the picture.** Each picture's image tokens learn to be the language model's input embeddings
   of its caption's words: every token near one of the words, every word near one of the tokens (a Chamfer
   distance), and that token nearer to its word than to any other word of the captions (cross-entropy, which
   tells shapes apart). The language model is frozen and never run, so thousands of pictures cost minutes, where
   a new tower learns slowly through a frozen language model (docs/training.md, "Why these settings").
2. **The language model learns to read them.** LoRA on its blocks, the caption as the reply to "Describe the
   picture.", loss on the caption only; the adapter is merged into ``final/``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.files import build_beside
from deepmmsearch.progress import Bars
from deepmmsearch.train.config import TrainAlignConfig

_KEY = re.compile(r"[\w'-]+:")
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


def train_align(config: TrainAlignConfig, resume: bool = False) -> dict[str, Any]:
    """Run vision alignment as configured; return a summary (steps, loss, final model folder, wall time)."""
    from accelerate import PartialState
    from datasets import Dataset
    from trl import SFTTrainer

    from deepmmsearch.progress import progress_bars
    from deepmmsearch.train.common import (
        device_and_precision,
        make_metrics_logger,
        resume_checkpoint,
        train_and_save,
        trainable_model,
        world_size,
    )
    from deepmmsearch.train.config import sft_args
    from deepmmsearch.train.distributed import start_processes
    from deepmmsearch.train.sft import ConversationCollator

    start = time.perf_counter()
    # --- set-up: devices, run folder, where to resume
    use_cpu, bf16, dtype = device_and_precision(config.schedule.device, config.schedule.dtype)
    checkpoint = resume_checkpoint(config.out, resume)
    if not config.captions:
        raise ConfigError("no captioned pictures: set captions: in the config or pass --captions FILE")
    rows = Dataset.from_list(caption_conversations(config.captions, config.rows))

    # --- stage 1: the tower names the picture (on the main process, the others wait; a resumed run keeps it)
    source = config.model
    if config.tower_steps:
        source = str(Path(config.out) / "tower")
        state = PartialState()
        with state.main_process_first():
            if state.is_main_process and not (resume and Path(source).is_dir()):
                with progress_bars() as bars:
                    train_tower(config, source, bf16, bars)

    # --- stage 2: the language model reads the tower's tokens (LoRA, merged into final/)
    args = sft_args(config, use_cpu, bf16, world_size())
    start_processes(args)
    model, processor = trainable_model(
        source, dtype, config.lora, train_vision=config.train_vision, train_language_model=config.lora.enabled
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=rows,
        data_collator=ConversationCollator(processor, Path(config.captions).parent),
        processing_class=processor,
        callbacks=[make_metrics_logger(config.out)],
    )
    result, summary = train_and_save(trainer, processor, config.out, checkpoint, start, "align", dtype=dtype)
    return {**summary, "train_loss": result.training_loss, "examples": len(rows)}


def caption_words(caption: str) -> list[str]:
    """The words a caption says about its picture: every word but the keys of ``key: value`` pairs."""
    return re.findall(r"[\w'-]+", _KEY.sub(" ", caption))


def train_tower(config: TrainAlignConfig, out: str, bf16: bool, bars: Bars) -> dict[str, float]:
    """Stage 1: train the vision tower and merger of ``config.model`` until each picture's image tokens name its
    caption's words in the language model's input embeddings (:func:`_naming_loss`); save the model to ``out``.
    Returns the first and last step's loss."""
    import random

    import torch
    from transformers import get_cosine_schedule_with_warmup

    from deepmmsearch.images import load_image
    from deepmmsearch.models.build import load_model
    from deepmmsearch.models.encoding import image_inputs
    from deepmmsearch.records import read_jsonl

    torch.manual_seed(config.schedule.seed)
    device = "cuda" if config.schedule.device != "cpu" and torch.cuda.is_available() else "cpu"
    model, processor = load_model(config.model, "float32", device)
    embeddings = model.get_input_embeddings().weight.detach().float()
    unit = embeddings.pow(2).sum(-1).mean().sqrt()  # distances in units of the embeddings' root mean square norm
    tokenizer = processor.tokenizer
    folder = Path(config.captions).parent
    records = [(r["image"], caption_words(r.get("caption", ""))) for r in read_jsonl(config.captions) if r.get("image")]
    records = [(image, said) for image, said in records if said]
    if not records:
        raise InputError(f"{config.captions}: no picture has a caption with words to learn")
    words = sorted({w for _, said in records for w in said})
    number = {w: i for i, w in enumerate(words)}
    # A word as the text spells it after a blank: its tokens' mean input embedding.
    spelled = [tokenizer(" " + w, add_special_tokens=False)["input_ids"] for w in words]
    vocabulary = torch.stack([embeddings[ids].mean(0) for ids in spelled]).to(device) / unit
    encoded: dict[int, tuple[Any, Any, Any]] = {}

    def picture(index: int) -> tuple[Any, Any, Any]:  # pixels stored in bfloat16: half the memory, close enough
        if index not in encoded:
            image, said = records[index]
            inputs = image_inputs(processor, load_image(str(folder / image)))
            ids = torch.tensor([number[w] for w in said])
            encoded[index] = (inputs["pixel_values"].to(torch.bfloat16), inputs["image_grid_thw"], ids)
        return encoded[index]

    visual = model.model.visual
    for parameter in model.parameters():
        parameter.requires_grad = False
    for parameter in visual.parameters():
        parameter.requires_grad = True
    optimizer = torch.optim.AdamW(visual.parameters(), lr=config.tower_learning_rate, weight_decay=0.0)
    schedule = get_cosine_schedule_with_warmup(optimizer, min(30, config.tower_steps // 10), config.tower_steps)
    order = random.Random(config.schedule.seed)
    losses = []
    for step in range(config.tower_steps):
        batch = [picture(order.randrange(len(records))) for _ in range(config.tower_batch_size)]
        grid = torch.cat([b[1] for b in batch]).to(device)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            tokens = visual(torch.cat([b[0] for b in batch]).to(device).float(), grid_thw=grid).pooler_output
        per_picture = torch.split(tokens.float(), (grid.prod(-1) // visual.spatial_merge_size**2).tolist())
        pairs = zip(per_picture, batch, strict=True)
        loss = torch.stack([_naming_loss(t / unit, b[2].to(device), vocabulary) for t, b in pairs]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        bars.update("align: tower", completed=step + 1, total=config.tower_steps, note=f"loss {losses[-1]:.3g}")
    with build_beside(out) as partial:  # a kill leaves no half-written tower
        model.save_pretrained(partial)
        processor.save_pretrained(partial)
    return {"first_loss": losses[0], "last_loss": losses[-1]}


def _naming_loss(tokens: Any, said: Any, vocabulary: Any, sharpness: float = 10.0) -> Any:
    """How far a picture's image ``tokens`` are from naming the words ``said`` (indices into ``vocabulary``, the
    caption words' embeddings, all scaled alike): the squared distance of each token to its nearest word and of each
    word to its nearest token, plus the cross-entropy of telling that token's word among the whole vocabulary."""
    import torch

    distances = torch.cdist(tokens, vocabulary[said]).pow(2)
    nearest = distances.argmin(0)  # each said word's nearest token
    logits = -sharpness * torch.cdist(tokens[nearest], vocabulary).pow(2)
    return (
        distances.min(1).values.mean()
        + distances.min(0).values.mean()
        + torch.nn.functional.cross_entropy(logits, said)
    )

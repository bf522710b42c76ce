"""``dmms train pretrain``: pre-training of a model built from scratch, so that it can read a search result.

A released VLM arrives able to copy a name or a sentence out of its context; a tiny model built by ``dmms model
init`` cannot, and does not learn it from SFT (a few copies per conversation; measured in docs/training.md). The
mechanism, an induction head (attend to the token after an earlier copy of the current one, repeat it), forms
only on dense copying, and the time it takes grows with the sequence length: the demo's 2-layer model stays at
chance after 1,500 steps of 16 sequences of 300 tokens, and copies 98% right after 600 steps of 48 tokens. So:

1. **Copy warm-up**: random token sequences in which a stretch repeats, loss on the repeat only; short sequences,
   then a few long ones (lengths of a conversation). About 25 s on 2 CPU cores. With ``captions``, each step also
   trains on a batch of captioned pictures, vision tower included (about 70 s more): the seeing a released VLM
   brings from image-text pre-training. Then ``caption_steps`` on the pictures alone: colour is learned in a few
   hundred steps, shape only after some 2,000.
2. **Reading**: rows of three kinds in one shuffled pass, loss on each row's completion only:
   - the knowledge base's pages, rendered as the search tools show them (language modelling: completion = all);
   - reading drills: a result block followed by the start of one of its lines, completed by the rest of it, the
     lead lines first ("Best match: <title>", "Most relevant: <sentence>", as the extractive summarizer writes);
   - copy rows of random words from the pages with a repeated stretch, which keep the warm-up's copying alive
     (without them page modelling, where memorizing pays better, undoes it).

The vision tower is trained in the warm-up only (with captions), and frozen in the text-only reading pass.
"""

from __future__ import annotations

import os
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.progress import Bars, progress_bars
from deepmmsearch.train.config import LoraSettings, TrainPretrainConfig
from deepmmsearch.train.sft import caption_conversations

# (sequence length, batch size) of the copy phases: short sequences make the copy form fast, long ones carry it to
# the positions of a conversation; page text as long as a whole conversation, after the reading pass, carries it
# past hundreds of tokens of look-alike words.
SHORT, LONG, TEXT = (48, 32), (300, 16), (1024, 8)
# The copy forms suddenly, from chance to right within some 100 steps, at a step that varies with the model and its
# vocabulary: tiny (width 64, 1,024 tokens) by step 700; mini (width 128) at 1,000-1,100; tiny with 3,000 tokens not
# by 700. The short phase goes on until this share of repeats comes out right (a later phase cannot form it).
COPY_FORMED = 0.9


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


def reading_drills(pages: list[dict], images: list[dict], count: int, seed: int = 0) -> list[dict]:
    """``count`` prompt-completion rows in turn of three kinds: name the best image match, repeat the most relevant
    sentence, continue a sentence of the first result. ``images`` are image records (title, page_url, description);
    without them the pages stand in."""
    from deepmmsearch.engine.summarize import result_line
    from deepmmsearch.engine.text_index import split_sentences
    from deepmmsearch.protocol import BEST_MATCH, MOST_RELEVANT

    rng = random.Random(seed)
    matches = [(i["title"], i.get("page_url", ""), i.get("description") or i["title"]) for i in images] or [
        (p["title"], p.get("url", ""), (split_sentences(p["text"]) or [p["title"]])[0]) for p in pages
    ]
    rows = []
    for index in range(count):
        if index % 3 == 0:
            block = rng.sample(matches, min(4, len(matches)))
            lines = "\n".join(result_line(*m) for m in block)
            title = block[0][0]
            rows.append(_row(f"{BEST_MATCH} {title}\n{lines}", BEST_MATCH, f" {title}"))
            continue
        block = rng.sample(pages, min(rng.randint(1, 3), len(pages)))
        lines = "\n".join(result_line(p["title"], p.get("url", ""), p["text"]) for p in block)
        sentences = split_sentences(block[0]["text"]) or [block[0]["text"]]
        sentence = rng.choice(sentences)
        if index % 3 == 1:
            rows.append(_row(f"{MOST_RELEVANT} {sentence}\n{lines}", MOST_RELEVANT, f" {sentence}"))
        else:
            words = sentence.split()
            cut = rng.randint(1, max(1, len(words) - 1))
            rows.append(_row(lines, " ".join(words[:cut]), " " + " ".join(words[cut:])))
    return rows


def _row(information: str, cue: str, completion: str) -> dict:
    return {"prompt": f"<information>\n{information}\n</information>\n{cue}", "completion": completion}


def copy_rows(pages: list[dict], count: int, seed: int = 0) -> list[dict]:
    """``count`` rows of random words from the pages in which a stretch of 4-12 words comes back; the prompt ends
    one or two words into the repeat and the completion is the rest of it."""
    rng = random.Random(seed)
    vocabulary = sorted({w for p in pages for w in re.findall(r"[^\W_]+", p["text"])})
    rows = []
    for _ in range(count):
        stretch = rng.choices(vocabulary, k=rng.randint(4, 12))
        before, between = rng.choices(vocabulary, k=rng.randint(0, 60)), rng.choices(vocabulary, k=rng.randint(0, 120))
        cut = rng.randint(1, 2)
        rows.append(
            {
                "prompt": " ".join(before + stretch + between + stretch[:cut]),
                "completion": " " + " ".join(stretch[cut:]),
            }
        )
    return rows


def copy_warmup(
    model: Any,
    tokenizer: Any,
    config: TrainPretrainConfig,
    say: Callable[[str], None] = lambda _: None,
    pictures: Callable[[], dict[str, Any]] | None = None,
    bars: Bars | None = None,
) -> list[float]:
    """Train ``model`` in place to copy: each sequence repeats a stretch of random tokens, with loss on the repeat
    (after its first token, which nothing predicts). Returns the share of repeat tokens predicted right at the end
    of each phase, and shows each phase's steps on ``bars``. A hand-written loop: the batches are made of token ids
    on the fly, which no trainer wants.

    With ``pictures`` (a function returning a batch of captioned pictures, :class:`CaptionBatches`), each step also
    trains on one such batch, vision tower included: a tiny model built from scratch learns to look at the picture
    only alongside the copy (measured in docs/training.md: once the copy has formed, its language model no longer
    learns to attend to image tokens; trained on captions first, it no longer forms the copy)."""
    import torch

    generator = torch.Generator().manual_seed(config.seed)
    rng = random.Random(config.seed)
    special = set(tokenizer.added_tokens_decoder)
    allowed = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.copy_learning_rate)
    device = next(model.parameters()).device

    def picture_loss() -> Any:
        assert pictures is not None
        return model(**{k: v.to(device) for k, v in pictures().items()}).loss

    extra_loss = picture_loss if pictures is not None else None

    def random_row(length: int) -> tuple[Any, int, int, int]:
        ids = allowed[torch.randint(len(allowed), (length,), generator=generator)]
        size = rng.randint(length // 6, length // 3)
        first = rng.randint(0, length // 6)
        return ids, size, first, first + size + rng.randint(0, length // 6)

    bars = bars or Bars()
    model.train()
    accuracy = []
    for steps, shape in ((config.copy_steps, SHORT), (config.copy_long_steps, LONG)):
        if not steps:
            continue
        phase = f"copy, {shape[0]} tokens"
        accuracy.append(_copy_phase(model, optimizer, random_row, steps, shape, phase, bars, extra_loss))
        more = 0
        while shape == SHORT and accuracy[-1] < COPY_FORMED and more < config.copy_until_formed:
            step = min(100, config.copy_until_formed - more)
            accuracy[-1] = _copy_phase(
                model, optimizer, random_row, step, shape, f"{phase}, until formed", bars, extra_loss
            )
            more += step
        line = f"copy warm-up, {shape[0]}-token sequences: {steps + more} steps, repeats {accuracy[-1]:.0%} right"
        formed = accuracy[-1] >= COPY_FORMED or shape != SHORT
        say(line if formed else f"{line}; the copy has not formed, so the model will copy poorly")
    if pictures is not None and config.caption_steps:
        losses = []
        for step in range(config.caption_steps):
            loss = picture_loss()
            _step(optimizer, loss)
            losses.append(loss.item())
            note = f"loss {losses[-1]:.3g}"
            bars.update("pre-training: captions", completed=step + 1, total=config.caption_steps, note=note)
        say(f"captions alone: {config.caption_steps} steps, loss {sum(losses[-20:]) / len(losses[-20:]):.3f}")
    return accuracy


def copy_text(
    model: Any, tokenizer: Any, texts: list[str], config: TrainPretrainConfig, bars: Bars | None = None
) -> float:
    """Train ``model`` in place to copy out of page text as long as a conversation (``copy_text_steps``): a quote
    of 8-40 tokens comes back up to 400 tokens later, anywhere in 1,024 tokens of ``texts`` joined. Returns the
    share of repeat tokens predicted right in the last steps.

    Run after the reading pass, once the model knows the words: a copy learned on random tokens holds among
    hundreds of tokens of text only this way (measured in docs/training.md: 5% of a quote copied right 600 tokens
    into a text, 80% after this)."""
    import torch

    rng = random.Random(config.seed)
    lines = [tokenizer(text + "\n")["input_ids"] for text in texts]
    if not lines:
        raise InputError("no page text to copy from")

    def text_row(length: int) -> tuple[Any, int, int, int]:
        ids: list[int] = []
        while len(ids) < length:
            ids += rng.choice(lines)
        size, gap = rng.randint(8, 40), rng.randint(0, 400)
        first = rng.randint(0, length - 2 * size - gap)
        return torch.tensor(ids[:length]), size, first, first + size + gap

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.copy_learning_rate)
    model.train()
    return _copy_phase(model, optimizer, text_row, config.copy_text_steps, TEXT, "copy, page text", bars or Bars())


def _copy_phase(
    model: Any,
    optimizer: Any,
    make_row: Callable[[int], tuple[Any, int, int, int]],
    steps: int,
    shape: tuple[int, int],
    phase: str,
    bars: Bars,
    extra_loss: Callable[[], Any] | None = None,
) -> float:
    """``steps`` steps on batches of ``shape`` (length, rows) made by ``make_row`` (token ids, stretch size, its
    start, its repeat's start), loss on the repeat after its first token (which nothing predicts); returns the share
    of repeat tokens predicted right in the last 20 steps."""
    import torch

    length, batch = shape
    device = next(model.parameters()).device
    correct = total = 0
    for step in range(steps):
        rows, labels = [], []
        for _ in range(batch):
            ids, size, first, second = make_row(length)
            ids[second : second + size] = ids[first : first + size].clone()
            label = torch.full_like(ids, -100)
            label[second + 1 : second + size] = ids[second + 1 : second + size]
            rows.append(ids)
            labels.append(label)
        ids, targets = torch.stack(rows).to(device), torch.stack(labels)[:, 1:].to(device)
        logits = model(input_ids=ids).logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        if extra_loss is not None:
            loss = loss + extra_loss()
        _step(optimizer, loss)
        bars.update(f"pre-training: {phase}", completed=step + 1, total=steps, note=f"loss {loss.item():.3g}")
        if step >= steps - 20:  # the last steps say how well it copies now
            scored = targets != -100
            correct += int((logits.argmax(-1)[scored] == targets[scored]).sum())
            total += int(scored.sum())
    return round(correct / max(total, 1), 3)


def _step(optimizer: Any, loss: Any) -> None:
    import torch

    optimizer.zero_grad()
    loss.backward()
    # Unclipped, the switch to long sequences could throw the copy away (mini at lr 1.5e-3: 0% right).
    torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], 1.0)
    optimizer.step()


class CaptionBatches:
    """Batches of ``config.captions`` (:func:`~deepmmsearch.train.sft.caption_conversations`) in shuffled passes:
    what a released VLM learned from image-text pairs."""

    def __init__(self, processor: Any, rows: list[dict], config: TrainPretrainConfig) -> None:
        from deepmmsearch.train.sft import ConversationCollator

        self.rows = rows
        self.collate = ConversationCollator(processor, Path(config.captions).parent)
        self.size = config.caption_batch_size
        self.rng = random.Random(config.seed)
        self.order: list[int] = []
        self.encoded: dict[int, dict[str, Any]] = {}  # each picture is shown several times; encode it once

    def __call__(self) -> dict[str, Any]:
        if len(self.order) < self.size:
            self.order += self.rng.sample(range(len(self.rows)), len(self.rows))
        batch, self.order = self.order[: self.size], self.order[self.size :]
        for i in batch:
            if i not in self.encoded:
                self.encoded[i] = self.collate.encode(self.rows[i])
        return self.collate.pad([self.encoded[i] for i in batch])


def read_kb_pages(kb: str) -> list[dict]:
    """The pages of a knowledge-base folder (``dmms kb build`` or ``dmms world build``)."""
    from deepmmsearch.records import read_jsonl

    if not kb:
        raise ConfigError("no corpus: set kb: in the config or pass --kb DIR")
    path = Path(kb) / "pages.jsonl"
    if not path.is_file():
        raise InputError(f"{kb}: no pages.jsonl here; pass a folder built by `dmms kb build` or `dmms world build`")
    return [p for p in read_jsonl(path) if p.get("title") and p.get("text")]


def read_kb_images(kb: str) -> list[dict]:
    """The image records of a knowledge-base folder (title, page_url, description), if it has any."""
    from deepmmsearch.records import read_jsonl

    path = Path(kb) / "images.jsonl"
    return [i for i in read_jsonl(path) if i.get("title")] if path.is_file() else []


def train_pretrain(config: TrainPretrainConfig, resume: bool = False) -> dict[str, Any]:
    """Run the copy warm-up and the reading pass as configured; return a summary (steps, loss, warm-up copy
    accuracy, final model folder, wall time)."""
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
    pages = read_kb_pages(config.kb)
    texts = pretraining_texts(pages, config.sequences, config.pages_per_sequence, config.seed)
    rows = [{"prompt": "", "completion": text} for text in texts]
    rows += reading_drills(pages, read_kb_images(config.kb), config.drills, config.seed)
    rows += copy_rows(pages, config.copy_rows, config.seed)
    captions = caption_conversations(config.captions) if config.captions else []  # a bad file fails here, early
    model, processor = trainable_model(config.model, dtype, LoraSettings(enabled=False))
    if not use_cpu:
        model.to(f"cuda:{os.environ.get('LOCAL_RANK', 0)}")
    # A checkpoint holds the warmed-up weights already. Progress goes to stderr: stdout is the summary's (--json).
    warmup: list[float] = []
    if not checkpoint:
        pictures = CaptionBatches(processor, captions, config) if captions else None
        if pictures is not None:  # a model built from scratch has a random vision tower: it learns here
            for parameter in model.model.visual.parameters():
                parameter.requires_grad = True
        with progress_bars() as bars:
            warmup = copy_warmup(
                model, processor.tokenizer, config, lambda m: print(m, file=sys.stderr), pictures, bars
            )
        # The reading pass is text only: a vision tower left trainable would get no gradient, which distributed
        # training refuses.
        for parameter in model.model.visual.parameters():
            parameter.requires_grad = False
    trainer = SFTTrainer(
        model=model,
        args=pretrain_args(config, use_cpu, bf16, world_size()),
        train_dataset=Dataset.from_list(rows).shuffle(seed=config.seed),
        processing_class=processor.tokenizer,  # text only: the tokenizer, not the image processor
        callbacks=[make_metrics_logger(config.out)],
    )
    text_copy: list[float] = []
    result, summary = train_and_save(
        trainer,
        processor,
        config.out,
        checkpoint,
        start,
        "pre-training: reading",
        lambda bars: text_copy.append(copy_text(model, processor.tokenizer, texts, config, bars)),
        dtype=dtype,
    )
    return {
        **summary,
        "train_loss": result.training_loss,
        "rows": len(rows),
        "copy_warmup_accuracy": warmup + text_copy,
    }

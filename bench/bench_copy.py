"""How far back can a model copy a sentence? The reading a search agent lives on, probed on a knowledge base.

A page sentence is quoted after "Most relevant:", other page sentences follow until the quote lies ``distance``
tokens back, and "Most relevant:" comes again; the figure is the share of the quoted sentence's tokens that the
model predicts right (teacher-forced, top token). Each distance is measured with the quote at the start of the
context and again ``--offset`` tokens into it (a conversation's last reply reads a result ~1,000 tokens in).
docs/training.md ("Reading the search results") has the figures for the demo's model sizes.

    python bench/bench_copy.py runs/demo/pretrain/final --kb runs/demo/world/kb [--trials 24] [--offset 600]
"""

from __future__ import annotations

import argparse
import random
from typing import Any

import torch

from deepmmsearch.engine.text_index import split_sentences
from deepmmsearch.errors import DmmsError
from deepmmsearch.models.build import load_model
from deepmmsearch.protocol import MOST_RELEVANT
from deepmmsearch.train.pretrain import read_kb_pages


def filler(sentences: list[str], tokens: int, tokenizer: Any, rng: random.Random) -> str:
    """Page sentences joined until they make at least ``tokens`` tokens."""
    text = ""
    while len(tokenizer(text)["input_ids"]) < tokens:
        text += " " + rng.choice(sentences)
    return text


def copy_accuracy(
    model: Any, tokenizer: Any, sentences: list[str], distance: int, offset: int, trials: int, seed: int
) -> float:
    """Share of the quoted sentences' tokens predicted right when they come back ``distance`` tokens later."""
    rng = random.Random(f"{seed}-{distance}-{offset}")
    right = total = 0
    for _ in range(trials):
        quote = rng.choice(sentences)
        prompt = (
            filler(sentences, offset, tokenizer, rng)
            + f" {MOST_RELEVANT} {quote}"
            + filler(sentences, distance, tokenizer, rng)
            + f"\n{MOST_RELEVANT}"
        )
        start = len(tokenizer(prompt)["input_ids"])
        ids = tokenizer(f"{prompt} {quote}", return_tensors="pt")["input_ids"].to(model.device)
        with torch.no_grad():
            predicted = model(input_ids=ids).logits[0, start - 1 : -1].argmax(-1)
        right += int((predicted == ids[0, start:]).sum())
        total += ids.shape[1] - start
    return right / max(total, 1)


def _distances(text: str) -> list[int]:
    try:
        return [int(d) for d in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated token counts, like 30,200; got {text!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model folder (dmms model init, train pretrain/sft)")
    parser.add_argument("--kb", required=True, help="knowledge base folder whose pages are quoted")
    parser.add_argument(
        "--distances", type=_distances, default="30,100,200,300,450", help="tokens between quote and copy"
    )
    parser.add_argument("--offset", type=int, default=600, help="tokens before the quote, in the second row")
    parser.add_argument("--trials", type=int, default=24, help="quoted sentences per figure")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    try:
        pages = read_kb_pages(args.kb)
        model, processor = load_model(args.model, dtype="float32", device="cpu")
    except DmmsError as error:
        raise SystemExit(f"error: {error}") from None
    model.eval()
    sentences = [s for page in pages for s in split_sentences(page["text"])]
    distances = args.distances
    print(f"copy accuracy of {args.model} ({args.trials} sentences a figure)")
    print("quote at      | " + " | ".join(f"{d:>4} back" for d in distances))
    for offset in (0, args.offset):
        figures = [
            copy_accuracy(model, processor.tokenizer, sentences, d, offset, args.trials, args.seed) for d in distances
        ]
        print(f"token {offset:<7} | " + " | ".join(f"{100 * f:8.0f}%" for f in figures))


if __name__ == "__main__":
    main()

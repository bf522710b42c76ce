"""Build a Qwen2.5-VL model from a size and a vocabulary, save it with its processor, and load it back."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.models.chat import EOS_TOKEN, IMAGE_TOKEN, PAD_TOKEN, VIDEO_TOKEN, VISION_START_TOKEN
from deepmmsearch.models.sizes import ModelSize, get_size
from deepmmsearch.protocol import PromptStyle

Vocab = Literal["qwen", "small"]
VOCABS: tuple[str, ...] = ("qwen", "small")


def build_tokenizer(vocab: str, corpus: Iterable[str] | None = None, vocab_size: int = 1024) -> Any:
    """The tokenizer of a vocabulary name: ``qwen`` (released ids) or ``small`` (trained on ``corpus``)."""
    from deepmmsearch.models import tokenizers

    if vocab == "qwen":
        return tokenizers.qwen_tokenizer()
    if vocab == "small":
        return tokenizers.small_tokenizer(corpus if corpus is not None else tokenizers.default_corpus(), vocab_size)
    raise ConfigError(f"unknown vocabulary {vocab!r}; use one of: {', '.join(VOCABS)}")


def vision_config(size: ModelSize, out_hidden_size: int) -> dict[str, Any]:
    """The vision tower of a size, its merger projecting to ``out_hidden_size`` (the language model's width)."""
    return {
        "depth": size.vision_depth,
        "hidden_size": size.vision_hidden_size,
        "intermediate_size": size.vision_intermediate_size,
        "num_heads": size.vision_heads,
        "out_hidden_size": out_hidden_size,
        "fullatt_block_indexes": list(size.fullatt_block_indexes),
        "tokens_per_second": size.tokens_per_second,
    }


def build_config(size: ModelSize, tokenizer: Any) -> Any:
    """A ``Qwen2_5_VLConfig`` of this size whose token ids are the tokenizer's."""
    from transformers import Qwen2_5_VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (EOS_TOKEN, PAD_TOKEN, IMAGE_TOKEN, VIDEO_TOKEN)}
    vocab_size = max(size.vocab_size or 0, len(tokenizer))
    text_config = {
        "vocab_size": vocab_size,
        "hidden_size": size.hidden_size,
        "intermediate_size": size.intermediate_size,
        "num_hidden_layers": size.num_layers,
        "num_attention_heads": size.num_heads,
        "num_key_value_heads": size.num_kv_heads,
        "max_position_embeddings": size.max_position_embeddings,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": size.rope_theta,
            "mrope_section": list(size.mrope_section),
        },
        "tie_word_embeddings": size.tie_word_embeddings,
        "bos_token_id": ids[PAD_TOKEN],  # Qwen2.5 has no BOS in prompts; its config names <|endoftext|>
        "eos_token_id": ids[EOS_TOKEN],
        "pad_token_id": ids[PAD_TOKEN],
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config(size, size.hidden_size),
        image_token_id=ids[IMAGE_TOKEN],
        video_token_id=ids[VIDEO_TOKEN],
        vision_start_token_id=tokenizer.convert_tokens_to_ids(VISION_START_TOKEN),
        tie_word_embeddings=size.tie_word_embeddings,
        bos_token_id=ids[PAD_TOKEN],
        eos_token_id=ids[EOS_TOKEN],
        pad_token_id=ids[PAD_TOKEN],
    )


def init_model(
    out: str | Path,
    vocab: str = "small",
    size: str = "tiny",
    corpus: Iterable[str] | None = None,
    vocab_size: int = 1024,
    seed: int = 0,
) -> Path:
    """Build a randomly initialized model with its processor and save both to ``out``, loadable as ``hf:OUT``."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    from deepmmsearch.models.processor import ImageOnlyQwen2_5_VLProcessor, image_processor_for

    shape = get_size(size)
    tokenizer = build_tokenizer(vocab, corpus, vocab_size)
    processor = ImageOnlyQwen2_5_VLProcessor(
        image_processor_for(shape.min_pixels, shape.max_pixels), tokenizer, chat_template=tokenizer.chat_template
    )
    config = build_config(shape, tokenizer)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.convert_tokens_to_ids(EOS_TOKEN), tokenizer.convert_tokens_to_ids(PAD_TOKEN)],
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN),
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def resolve_dtype(dtype: str, device: str) -> Any:
    """``auto`` is bfloat16 on a GPU and float32 elsewhere; otherwise a torch dtype name."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    value = getattr(torch, dtype, None)
    if not isinstance(value, torch.dtype):
        raise ConfigError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")
    return value


def resolve_device(device: str) -> str:
    """``auto`` is the first GPU when there is one, else the CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


# A trained model answers best under the prompt style it was trained with; SFT and GRPO save it beside the weights.
PROMPT_STYLE_FILE = "prompt_style.txt"


def read_prompt_style(path: str | Path) -> PromptStyle | None:
    """The prompt style a model folder was trained in, or None (a hub id, or a model no run of ours trained)."""
    file = Path(path) / PROMPT_STYLE_FILE
    if not file.is_file():
        return None
    text = file.read_text(encoding="utf-8").strip()
    if text not in set(PromptStyle):
        raise InputError(f"{file}: unknown prompt style {text!r}; known: {', '.join(PromptStyle)}")
    return PromptStyle(text)


def write_prompt_style(folder: str | Path, style: PromptStyle) -> None:
    """Record beside a trained model's weights the prompt style it was trained in."""
    (Path(folder) / PROMPT_STYLE_FILE).write_text(f"{style.value}\n", encoding="utf-8")


def load_model(path: str | Path, dtype: str = "auto", device: str = "auto") -> tuple[Any, Any]:
    """Load a Qwen2.5-VL-family checkpoint and its image-only processor: ``(model, processor)``, in eval mode."""
    from transformers import AutoModelForImageTextToText

    from deepmmsearch.models.processor import ImageOnlyQwen2_5_VLProcessor

    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    processor = ImageOnlyQwen2_5_VLProcessor.from_pretrained(path)
    try:
        model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=torch_dtype)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load a model from {path}: {' '.join(str(e).split())[:300]}") from None
    model.to(device)
    model.eval()
    return model, processor

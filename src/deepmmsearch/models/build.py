"""Build a model of a Qwen-VL family from a size and a vocabulary, save it with its processor, and load it back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.models.chat import EOS_TOKEN, IMAGE_TOKEN, PAD_TOKEN, VIDEO_TOKEN, VISION_START_TOKEN
from deepmmsearch.models.families import DEFAULT_FAMILY, Family, family_of, get_family
from deepmmsearch.models.sizes import ModelSize, get_size
from deepmmsearch.protocol import PromptStyle

VOCABS: tuple[str, ...] = ("qwen", "small")
# The shapes of released models exist for Qwen2.5-VL only; the other families build from the small shapes.
RELEASED_SIZES = ("3b", "7b")


def build_tokenizer(vocab: str, vocab_size: int = 1024, family: str = DEFAULT_FAMILY) -> Any:
    """The tokenizer of a vocabulary name: ``qwen`` (the family's released ids) or ``small`` (a BPE trained on
    built-in text), with the family's special tokens and chat template."""
    from deepmmsearch.models import tokenizers

    if vocab == "qwen":
        return tokenizers.qwen_tokenizer(family)
    if vocab == "small":
        return tokenizers.small_tokenizer(tokenizers.default_corpus(), vocab_size, family)
    raise ConfigError(f"unknown vocabulary {vocab!r}; use one of: {', '.join(VOCABS)}")


def vision_config(size: ModelSize, out_hidden_size: int, family: Family | None = None) -> dict[str, Any]:
    """The vision tower of a size in the family's terms, its merger projecting to ``out_hidden_size`` (the
    language model's width)."""
    family = family or get_family(DEFAULT_FAMILY)
    if family.name == "qwen2-vl":
        return {
            "depth": size.vision_depth,
            "embed_dim": size.vision_hidden_size,
            "hidden_size": out_hidden_size,
            "mlp_ratio": size.vision_intermediate_size // size.vision_hidden_size,
            "num_heads": size.vision_heads,
        }
    common = {
        "depth": size.vision_depth,
        "hidden_size": size.vision_hidden_size,
        "intermediate_size": size.vision_intermediate_size,
        "num_heads": size.vision_heads,
        "out_hidden_size": out_hidden_size,
    }
    if family.qwen3:
        return {
            **common,
            "patch_size": family.patch_size,
            # Learned positions on a square grid, interpolated to each image's: 48x48 in the released towers.
            "num_position_embeddings": 48 * 48 if size.vision_depth > 8 else 16 * 16,
            # Which blocks feed their features into the first language-model layers ("deepstack").
            "deepstack_visual_indexes": _deepstack(size.vision_depth),
        }
    return {
        **common,
        "fullatt_block_indexes": list(size.fullatt_block_indexes),
        "tokens_per_second": size.tokens_per_second,
    }


def _deepstack(depth: int) -> list[int]:
    """Three blocks spread over the tower as in the released ones (8, 16, 24 of 27); the middle one of a tiny one."""
    return [depth // 3, 2 * depth // 3, depth - 3] if depth > 8 else [depth // 2]


def interleaved_mrope_section(rotary_dim: int) -> list[int]:
    """Qwen3-VL's split of a head's rotary pairs into time, height and width (24/20/20 of 64), for any width."""
    half = rotary_dim // 2
    height = width = (half * 20) // 64 or 1
    return [half - height - width, height, width]


def build_config(size: ModelSize, tokenizer: Any, family: str = DEFAULT_FAMILY) -> Any:
    """The family's config of this size whose token ids are the tokenizer's."""
    import transformers

    spec = get_family(family)
    if spec.name != DEFAULT_FAMILY and size.vocab_size is not None:
        raise ConfigError(
            f"sizes {', '.join(RELEASED_SIZES)} are Qwen2.5-VL's released shapes; build {spec.name} as tiny or "
            f"small, or start from a released model ({spec.released})"
        )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (EOS_TOKEN, PAD_TOKEN, IMAGE_TOKEN, VIDEO_TOKEN)}
    text_config: dict[str, Any] = {
        "vocab_size": max(size.vocab_size or 0, len(tokenizer)),
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
    if spec.qwen3:
        text_config.update(_qwen3_text(size, spec))
    config_class = getattr(transformers, spec.model_class.replace("ForConditionalGeneration", "Config"))
    return config_class(
        text_config=text_config,
        vision_config=vision_config(size, size.hidden_size, spec),
        image_token_id=ids[IMAGE_TOKEN],
        video_token_id=ids[VIDEO_TOKEN],
        vision_start_token_id=tokenizer.convert_tokens_to_ids(VISION_START_TOKEN),
        vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"),
        tie_word_embeddings=size.tie_word_embeddings,
        bos_token_id=ids[PAD_TOKEN],
        eos_token_id=ids[EOS_TOKEN],
        pad_token_id=ids[PAD_TOKEN],
    )


def _qwen3_text(size: ModelSize, family: Family) -> dict[str, Any]:
    """What the Qwen3-VL text models add: q/k norms over an explicit head_dim with interleaved rotary sections;
    for the MoE a few experts; for Qwen3.5 gated-delta-net (linear-attention) layers before every full one."""
    head_dim = size.head_dim
    rotary = head_dim // 4 if family.hybrid else head_dim  # Qwen3.5 rotates a quarter of each head
    text: dict[str, Any] = {
        "head_dim": head_dim,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": size.rope_theta,
            "mrope_section": interleaved_mrope_section(rotary),
            "mrope_interleaved": True,
            **({"partial_rotary_factor": 0.25} if family.hybrid else {}),
        },
    }
    if family.moe:
        text.update(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=size.intermediate_size // 2)
        if family.hybrid:  # Qwen3.5's MoE adds a shared expert beside the routed ones
            text.update(shared_expert_intermediate_size=size.intermediate_size // 2)
        else:
            text.update(decoder_sparse_step=1)
    if family.hybrid:
        # Released: three linear-attention layers to one full-attention layer; a 2-layer model gets one of each.
        text.update(
            layer_types=[
                "full_attention" if (i + 1) % 4 == 0 or i == size.num_layers - 1 else "linear_attention"
                for i in range(size.num_layers)
            ],
            linear_num_key_heads=size.num_kv_heads,
            linear_num_value_heads=size.num_heads,
            linear_key_head_dim=head_dim,
            linear_value_head_dim=head_dim,
        )
    return text


def init_model(
    out: str | Path,
    vocab: str = "small",
    size: str = "tiny",
    vocab_size: int = 1024,
    seed: int = 0,
    arch: str = DEFAULT_FAMILY,
) -> Path:
    """Build a randomly initialized model of the family ``arch`` with its processor and save both to ``out``,
    loadable as ``hf:OUT`` and by ``AutoProcessor``."""
    import torch
    import transformers
    from transformers import GenerationConfig

    from deepmmsearch.models.processor import build_processor

    family = get_family(arch)
    shape = get_size(size)
    tokenizer = build_tokenizer(vocab, vocab_size, family.name)
    # Sizes count pixels in Qwen2.5-VL's 28x28-pixel tokens: the same numbers of tokens in the family's.
    token = family.pixels_per_token
    processor = build_processor(
        family.name, tokenizer, shape.min_pixels // (28 * 28) * token, shape.max_pixels // (28 * 28) * token
    )
    config = build_config(shape, tokenizer, family.name)
    torch.manual_seed(seed)
    model = getattr(transformers, family.model_class)(config)
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


# A model answers best under the prompt style it was trained with: `dmms data build` records the style beside the
# data, SFT keeps it beside the weights (GRPO too), and the code that builds an agent reads it there.
PROMPT_STYLE_FILE = "prompt_style.txt"


def read_prompt_style(path: str | Path) -> PromptStyle | None:
    """The prompt style a data folder's episodes or a model folder's training were prompted in, or None (a hub id,
    data or a model no run of ours made)."""
    file = Path(path) / PROMPT_STYLE_FILE
    if not file.is_file():
        return None
    text = file.read_text(encoding="utf-8").strip()
    if text not in set(PromptStyle):
        raise InputError(f"{file}: unknown prompt style {text!r}; known: {', '.join(PromptStyle)}")
    return PromptStyle(text)


def write_prompt_style(folder: str | Path, style: PromptStyle) -> None:
    """Record in a data or model folder the prompt style its episodes or its training were prompted in."""
    (Path(folder) / PROMPT_STYLE_FILE).write_text(f"{style.value}\n", encoding="utf-8")


def model_family(path: str | Path) -> Family:
    """The family of the model at ``path`` (a folder or hub id), from its config's ``model_type``."""
    from transformers import AutoConfig

    if str(path).startswith(("/", ".", "~")) and not Path(path).expanduser().is_dir():
        raise ConfigError(f"no model folder at {path}")  # a hub id never starts so: say what is missing
    try:
        config = AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load a model config from {path}: {' '.join(str(e).split())[:300]}") from None
    return family_of(config.model_type)


@contextmanager
def whole_models() -> Iterator[None]:
    """Models built or loaded inside the block are whole in this process. While a training run's DeepSpeed ZeRO-3
    config is registered, transformers builds every model under ``deepspeed.zero.Init``, partitioned collectively
    across the processes: right for the model being trained, a hang or empty weights for any other (a policy
    answering questions, a model the main process alone builds to save)."""
    from transformers.integrations import deepspeed as hf_deepspeed

    # transformers offers set and unset but no getter: the registered config is read from its module.
    registered = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if registered is not None and registered() is not None:
            hf_deepspeed.set_hf_deepspeed_config(registered())


def load_model(
    path: str | Path, dtype: str = "auto", device: str = "auto", partitioned: bool = False
) -> tuple[Any, Any]:
    """Load a checkpoint of any Qwen-VL family we run and its image-only processor: ``(model, processor)``, in
    eval mode. The family is read once, from the checkpoint's config. ``partitioned``: under a training run's
    ZeRO-3 config, load it partitioned across the processes and leave it where it loads, for the trainer to place
    (the model being trained); otherwise it loads whole, onto ``device``."""
    from contextlib import nullcontext

    from transformers import AutoModelForImageTextToText

    from deepmmsearch.models.processor import load_processor

    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    family = model_family(path)
    processor = load_processor(path, family.name)
    try:
        with nullcontext() if partitioned else whole_models():
            model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=torch_dtype)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load a model from {path}: {' '.join(str(e).split())[:300]}") from None
    if not partitioned:
        model.to(device)
    model.eval()
    return model, processor

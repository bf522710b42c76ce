"""The Qwen-VL model families we load, train and build: what tells them apart, as data. No heavy imports.

A family is named once, by ``model_type`` in a model's ``config.json`` (or by ``--arch`` when building one), and
everything that differs between families is read from its :class:`Family`: the transformers classes, the chat
template and its arguments, the vocabulary, the image patch size and normalization. The rest of the code (the
encoder, the policies, SFT and GRPO) works on any of them alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from deepmmsearch.errors import ConfigError
from deepmmsearch.models.chat import (
    AUDIO_TOKENS,
    CHAT_TEMPLATE,
    N_SKIPPED_SPECIAL,
    QWEN2_VL_SPECIAL_TOKENS,
    QWEN3_5_SPECIAL_TOKENS,
    QWEN3_SPECIAL_TOKENS,
    SPECIAL_TOKENS,
)
from deepmmsearch.models.templates import QWEN3_5_TEMPLATE, QWEN3_VL_TEMPLATE

# Image normalization: CLIP's for Qwen2-VL and Qwen2.5-VL, a plain 0.5 for the SigLIP-2 towers of Qwen3-VL and 3.5.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Family:
    """One Qwen-VL family: how transformers names its parts and how its released models read text and images."""

    name: str = field(metadata={"help": "what --arch takes"})
    model_type: str = field(metadata={"help": "config.json's model_type"})
    model_class: str = field(metadata={"help": "the transformers model class"})
    processor_class: str = field(metadata={"help": "the transformers processor a saved folder names"})
    video_processor_class: str = field(metadata={"help": "its video processor (torchvision), named in the save"})
    vocab: str = field(metadata={"help": "the BPE ranks: qwen2 (Qwen2 to Qwen3-VL) or qwen3.5"})
    special_tokens: tuple[str, ...] = field(metadata={"help": "added after the ranks, in id order"})
    skipped_special: tuple[str, ...] = field(metadata={"help": "those of them decoding skips"})
    chat_template: str = field(metadata={"help": "the released Instruct models' chat template"})
    template_kwargs: tuple[tuple[str, Any], ...] = field(default=(), metadata={"help": "passed to the template"})
    patch_size: int = field(default=14, metadata={"help": "vision patch side in pixels"})
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD
    hybrid: bool = field(default=False, metadata={"help": "linear-attention layers beside full attention"})
    moe: bool = field(default=False, metadata={"help": "mixture-of-experts MLPs (fused experts)"})
    released: str = field(default="", metadata={"help": "a released Instruct model of the family"})

    @property
    def pixels_per_token(self) -> int:
        """Pixels one image token covers: a 2x2 merge of patches."""
        return (2 * self.patch_size) ** 2

    @property
    def qwen3(self) -> bool:
        """Qwen3-VL's text model and vision tower (head_dim, interleaved rotary, deepstack), Qwen3.5 included."""
        return self.patch_size == 16


_QWEN3_VL = Family(
    name="qwen3-vl",
    model_type="qwen3_vl",
    model_class="Qwen3VLForConditionalGeneration",
    processor_class="Qwen3VLProcessor",
    video_processor_class="Qwen3VLVideoProcessor",
    vocab="qwen2",
    special_tokens=QWEN3_SPECIAL_TOKENS,
    skipped_special=SPECIAL_TOKENS[:N_SKIPPED_SPECIAL],
    chat_template=QWEN3_VL_TEMPLATE,
    patch_size=16,
    image_mean=HALF,
    image_std=HALF,
    released="Qwen/Qwen3-VL-8B-Instruct",
)

# Qwen3.5 reads images as Qwen3-VL does (its processor, patches and normalization), with its own vocabulary.
_QWEN3_5 = replace(
    _QWEN3_VL,
    name="qwen3.5",
    model_type="qwen3_5",
    model_class="Qwen3_5ForConditionalGeneration",
    vocab="qwen3.5",
    special_tokens=QWEN3_5_SPECIAL_TOKENS,
    skipped_special=(*SPECIAL_TOKENS[:N_SKIPPED_SPECIAL], *AUDIO_TOKENS),
    chat_template=QWEN3_5_TEMPLATE,
    # Our <reason> is the reasoning: the template's non-thinking mode, as its own switch gives it; and every
    # earlier reply keeps the empty think block it was sampled after (see chat_template_for).
    template_kwargs=(("enable_thinking", False), ("preserve_thinking", True)),
    hybrid=True,
    released="Qwen/Qwen3.5-9B",
)

FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            name="qwen2-vl",
            model_type="qwen2_vl",
            model_class="Qwen2VLForConditionalGeneration",
            processor_class="Qwen2VLProcessor",
            video_processor_class="Qwen2VLVideoProcessor",
            vocab="qwen2",
            special_tokens=QWEN2_VL_SPECIAL_TOKENS,
            skipped_special=QWEN2_VL_SPECIAL_TOKENS,
            chat_template=CHAT_TEMPLATE,  # Qwen2.5-VL took Qwen2-VL's template unchanged
            released="Qwen/Qwen2-VL-7B-Instruct",
        ),
        Family(
            name="qwen2.5-vl",
            model_type="qwen2_5_vl",
            model_class="Qwen2_5_VLForConditionalGeneration",
            processor_class="Qwen2_5_VLProcessor",
            video_processor_class="Qwen2VLVideoProcessor",
            vocab="qwen2",
            special_tokens=SPECIAL_TOKENS,
            skipped_special=SPECIAL_TOKENS[:N_SKIPPED_SPECIAL],
            chat_template=CHAT_TEMPLATE,
            released="Qwen/Qwen2.5-VL-7B-Instruct",
        ),
        _QWEN3_VL,
        # The mixture-of-experts models read text and images as the dense ones do: only the model class differs.
        replace(
            _QWEN3_VL,
            name="qwen3-vl-moe",
            model_type="qwen3_vl_moe",
            model_class="Qwen3VLMoeForConditionalGeneration",
            moe=True,
            released="Qwen/Qwen3-VL-30B-A3B-Instruct",
        ),
        _QWEN3_5,
        replace(
            _QWEN3_5,
            name="qwen3.5-moe",
            model_type="qwen3_5_moe",
            model_class="Qwen3_5MoeForConditionalGeneration",
            moe=True,
            released="Qwen/Qwen3.5-35B-A3B",
        ),
    )
}
DEFAULT_FAMILY = "qwen2.5-vl"


# Qwen3.5's template drops the think block of every reply before the last user turn, so a turn's prompt does not
# extend the last (no KV cache reuse) and training would read replies without the block they were sampled after.
# Qwen3.6's template (same architecture) adds a switch that keeps them; we add that line to a Qwen3.5 template.
_DROPS_THINKING = "{%- if loop.index0 > ns.last_query_index %}"
_KEEPS_THINKING = (
    "{%- if (preserve_thinking is defined and preserve_thinking is true) or (loop.index0 > ns.last_query_index) %}"
)


def chat_template_for(family: Family, template: str | None) -> str:
    """The chat template a model of ``family`` is run with: its own (else the family's), with Qwen3.6's
    ``preserve_thinking`` switch added to a Qwen3.5 template that lacks it."""
    template = template or family.chat_template
    if dict(family.template_kwargs).get("preserve_thinking") and template.count(_DROPS_THINKING) == 1:
        template = template.replace(_DROPS_THINKING, _KEEPS_THINKING)
    return template


def get_family(name: str) -> Family:
    """The family ``--arch`` names; an unknown name is an error listing the known ones."""
    if name not in FAMILIES:
        raise ConfigError(f"unknown architecture {name!r}; use one of: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def family_of(model_type: str) -> Family:
    """The family of a ``config.json`` ``model_type``; any other model type is an error naming the known ones."""
    for family in FAMILIES.values():
        if family.model_type == model_type:
            return family
    known = ", ".join(f"{f.model_type} ({f.name})" for f in FAMILIES.values())
    raise ConfigError(f"a {model_type!r} model is not a Qwen-VL family we run; known: {known}")

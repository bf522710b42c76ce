"""Model sizes of the Qwen2.5-VL architecture, from a CPU-test toy to the released 7B shape. No heavy imports."""

from __future__ import annotations

from dataclasses import dataclass, field

from deepmmsearch.errors import ConfigError


@dataclass(frozen=True)
class ModelSize:
    """The shape of a Qwen2.5-VL model: language model, vision tower and image resolution."""

    hidden_size: int = field(metadata={"help": "language-model width"})
    intermediate_size: int = field(metadata={"help": "language-model MLP width"})
    num_layers: int = field(metadata={"help": "language-model layers"})
    num_heads: int = field(metadata={"help": "attention heads"})
    num_kv_heads: int = field(metadata={"help": "key/value heads (grouped-query attention)"})
    mrope_section: tuple[int, int, int] = field(
        metadata={"help": "rotary dims for time/height/width; sum = head_dim/2"}
    )
    vision_depth: int = field(metadata={"help": "vision transformer blocks"})
    vision_hidden_size: int = field(metadata={"help": "vision transformer width"})
    vision_intermediate_size: int = field(metadata={"help": "vision MLP width"})
    vision_heads: int = field(metadata={"help": "vision attention heads"})
    fullatt_block_indexes: tuple[int, ...] = field(metadata={"help": "vision blocks with full (not window) attention"})
    min_pixels: int = field(metadata={"help": "images are resized to at least this many pixels"})
    max_pixels: int = field(metadata={"help": "and at most this many (28x28 pixels make one image token)"})
    vocab_size: int | None = field(default=None, metadata={"help": "embedding rows; None: the tokenizer's size"})
    tie_word_embeddings: bool = field(default=True, metadata={"help": "share input embedding and output head"})
    max_position_embeddings: int = field(default=32768, metadata={"help": "longest context"})
    rope_theta: float = field(default=1_000_000.0, metadata={"help": "rotary base"})
    tokens_per_second: int = field(default=2, metadata={"help": "video time scale (unused for images)"})

    def __post_init__(self) -> None:
        head_dim = self.hidden_size // self.num_heads
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ConfigError(f"hidden_size/num_heads/num_kv_heads do not divide evenly: {self}")
        if sum(self.mrope_section) * 2 != head_dim:
            raise ConfigError(f"mrope_section {self.mrope_section} must sum to head_dim/2 = {head_dim // 2}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


# Few dozen image patches at most, so a forward pass of the tiny models stays in milliseconds on a CPU.
_TINY_PIXELS = {"min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 16}

_TINY = ModelSize(
    hidden_size=64,
    intermediate_size=128,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    mrope_section=(2, 3, 3),
    vision_depth=2,
    vision_hidden_size=32,
    vision_intermediate_size=64,
    vision_heads=2,
    fullatt_block_indexes=(1,),
    max_position_embeddings=8192,
    **_TINY_PIXELS,
)

SIZES: dict[str, ModelSize] = {
    "tiny": _TINY,
    "small": ModelSize(
        hidden_size=256,
        intermediate_size=768,
        num_layers=4,
        num_heads=4,
        num_kv_heads=2,
        mrope_section=(8, 12, 12),
        vision_depth=4,
        vision_hidden_size=128,
        vision_intermediate_size=256,
        vision_heads=4,
        fullatt_block_indexes=(1, 3),
        min_pixels=28 * 28 * 4,
        max_pixels=28 * 28 * 64,
    ),
    # The released shapes (Qwen2.5-VL-3B/7B-Instruct config.json); for GPU users, never built in tests.
    "3b": ModelSize(
        hidden_size=2048,
        intermediate_size=11008,
        num_layers=36,
        num_heads=16,
        num_kv_heads=2,
        mrope_section=(16, 24, 24),
        vision_depth=32,
        vision_hidden_size=1280,
        vision_intermediate_size=3420,
        vision_heads=16,
        fullatt_block_indexes=(7, 15, 23, 31),
        min_pixels=56 * 56,
        max_pixels=28 * 28 * 1280,
        vocab_size=151936,
        tie_word_embeddings=True,
        max_position_embeddings=128000,
    ),
    "7b": ModelSize(
        hidden_size=3584,
        intermediate_size=18944,
        num_layers=28,
        num_heads=28,
        num_kv_heads=4,
        mrope_section=(16, 24, 24),
        vision_depth=32,
        vision_hidden_size=1280,
        vision_intermediate_size=3420,
        vision_heads=16,
        fullatt_block_indexes=(7, 15, 23, 31),
        min_pixels=56 * 56,
        max_pixels=28 * 28 * 1280,
        vocab_size=152064,
        tie_word_embeddings=False,
        max_position_embeddings=128000,
    ),
}


def get_size(name: str) -> ModelSize:
    """The size a name stands for; an unknown name is an error listing the known ones."""
    if name not in SIZES:
        raise ConfigError(f"unknown model size {name!r}; use one of: {', '.join(SIZES)}")
    return SIZES[name]

"""Image-only processors of the Qwen-VL families: the stock ones insist on a video processor, which needs torchvision.

Each subclasses its family's transformers processor (``Qwen2VLProcessor``, ``Qwen2_5_VLProcessor``,
``Qwen3VLProcessor``), so text and images go through the stock code, and takes only an image processor (PIL
backend) and a tokenizer. A save is the released layout under the stock class's name: ``processor_config.json``
with the image processor and a video processor entry (the family's, with its defaults), ``preprocessor_config.json``
and ``video_preprocessor_config.json`` beside it. ``AutoProcessor.from_pretrained`` (and vLLM, which builds the
stock processor) then loads the folder as the family's own processor wherever torchvision is installed; without
torchvision it can build everything but the video processor, so we load with :func:`load_processor`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from transformers import PreTrainedTokenizerFast, Qwen2_5_VLProcessor, Qwen2VLProcessor, Qwen3VLProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.processing_utils import ProcessorMixin

from deepmmsearch.errors import ConfigError
from deepmmsearch.models.chat import IMAGE_TOKEN, VIDEO_TOKEN
from deepmmsearch.models.families import DEFAULT_FAMILY, Family, chat_template_for, get_family

VISION_END_TOKEN = "<|vision_end|>"
VISION_START_TOKEN = "<|vision_start|>"


class _ImageOnly:
    """What the image-only processors share; ``family`` names the family whose stock processor a class extends."""

    family_name: ClassVar[str]

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None) -> None:
        self.image_token, self.video_token = IMAGE_TOKEN, VIDEO_TOKEN
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self.video_token_id = tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
        # Qwen3VLProcessor reads these; the others ignore them.
        self.vision_start_token, self.vision_end_token = VISION_START_TOKEN, VISION_END_TOKEN
        self.vision_start_token_id = tokenizer.convert_tokens_to_ids(VISION_START_TOKEN)
        self.vision_end_token_id = tokenizer.convert_tokens_to_ids(VISION_END_TOKEN)
        # Skips the stock __init__, whose signature and checks require the video processor.
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)  # type: ignore[arg-type]

    @property
    def family(self) -> Family:
        return get_family(self.family_name)

    @property
    def merge_size(self) -> int:
        return int(self.image_processor.merge_size)  # type: ignore[attr-defined]

    @property
    def template_kwargs(self) -> dict[str, Any]:
        """What the family's chat template is rendered with (Qwen3.5: non-thinking)."""
        return dict(self.family.template_kwargs)

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> Any:  # type: ignore[override]
        """Load the tokenizer and the PIL image processor saved in ``path`` (a folder or a hub id)."""
        try:
            tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path), **kwargs)
            image_processor = Qwen2VLImageProcessorPil.from_pretrained(str(path), **kwargs)
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"{path}: no {cls.family_name} processor found ({' '.join(str(e).split())[:200]})"
            ) from None
        tokenizer.padding_side = "left"
        family = get_family(cls.family_name)
        return cls(image_processor, tokenizer, chat_template=chat_template_for(family, tokenizer.chat_template))

    def to_dict(self) -> dict[str, Any]:
        """The stock processor's config: its class name and a video processor entry beside the image processor."""
        output = ProcessorMixin.to_dict(self)  # type: ignore[arg-type]
        output["processor_class"] = self.family.processor_class
        output["video_processor"] = video_processor_config(self.family, self.image_processor)  # type: ignore[attr-defined]
        return output

    def save_pretrained(self, save_directory: str | Path, **kwargs: Any) -> list[str]:  # type: ignore[override]
        """Save in the released layout (see the module docstring), under the stock processor's name."""
        files = ProcessorMixin.save_pretrained(self, save_directory, **kwargs)  # type: ignore[arg-type]
        folder = Path(save_directory)
        stock = self.family.processor_class
        config = self.to_dict()
        # The files transformers 4 and older tools (and vLLM on them) read the sub-processors from.
        _write_json(folder / "preprocessor_config.json", {**config["image_processor"], "processor_class": stock})
        _write_json(folder / "video_preprocessor_config.json", {**config["video_processor"], "processor_class": stock})
        tokenizer_config = folder / "tokenizer_config.json"
        _write_json(
            tokenizer_config, {**json.loads(tokenizer_config.read_text(encoding="utf-8")), "processor_class": stock}
        )
        return files


class ImageOnlyQwen2VLProcessor(_ImageOnly, Qwen2VLProcessor):
    """``Qwen2VLProcessor`` with an image processor (PIL backend) and a tokenizer, and no video processor."""

    family_name = "qwen2-vl"


class ImageOnlyQwen2_5_VLProcessor(_ImageOnly, Qwen2_5_VLProcessor):
    """``Qwen2_5_VLProcessor`` with an image processor (PIL backend) and a tokenizer, and no video processor."""

    family_name = "qwen2.5-vl"


class ImageOnlyQwen3VLProcessor(_ImageOnly, Qwen3VLProcessor):
    """``Qwen3VLProcessor`` (Qwen3-VL, Qwen3-VL-MoE) with an image processor (PIL backend) and a tokenizer."""

    family_name = "qwen3-vl"


class ImageOnlyQwen3_5Processor(_ImageOnly, Qwen3VLProcessor):
    """Qwen3.5's processor: Qwen3-VL's, with Qwen3.5's vocabulary and chat template."""

    family_name = "qwen3.5"


PROCESSORS: dict[str, type[_ImageOnly]] = {
    cls.family_name: cls
    for cls in (
        ImageOnlyQwen2VLProcessor,
        ImageOnlyQwen2_5_VLProcessor,
        ImageOnlyQwen3VLProcessor,
        ImageOnlyQwen3_5Processor,
    )
}
# The MoE models read text and images as the dense ones do.
PROCESSORS["qwen3-vl-moe"] = ImageOnlyQwen3VLProcessor
PROCESSORS["qwen3.5-moe"] = ImageOnlyQwen3_5Processor


def processor_class(family: str = DEFAULT_FAMILY) -> type[_ImageOnly]:
    """The image-only processor class of a family."""
    return PROCESSORS[get_family(family).name]


def build_processor(family: str, tokenizer: Any, min_pixels: int, max_pixels: int) -> Any:
    """A family's image-only processor around ``tokenizer``, with the family's image processor and chat template."""
    spec = get_family(family)
    image_processor = image_processor_for(min_pixels, max_pixels, spec)
    template = chat_template_for(spec, tokenizer.chat_template)
    return PROCESSORS[spec.name](image_processor, tokenizer, chat_template=template)


def image_processor_for(min_pixels: int, max_pixels: int, family: Family | None = None) -> Qwen2VLImageProcessorPil:
    """The family's image processor (PIL backend: no torchvision) with the given resolution bounds; Qwen2.5-VL's
    when no family is given."""
    spec = family or get_family(DEFAULT_FAMILY)
    return Qwen2VLImageProcessorPil(
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
        patch_size=spec.patch_size,
        image_mean=list(spec.image_mean),
        image_std=list(spec.image_std),
    )


def video_processor_config(family: Family, image_processor: Any) -> dict[str, Any]:
    """The family's video processor entry: its class, with the image processor's patching and normalization (the
    rest are the class's defaults)."""
    return {
        "video_processor_type": family.video_processor_class,
        "patch_size": int(image_processor.patch_size),
        "temporal_patch_size": int(image_processor.temporal_patch_size),
        "merge_size": int(image_processor.merge_size),
        "image_mean": list(image_processor.image_mean),
        "image_std": list(image_processor.image_std),
    }


def load_processor(path: str | Path, family: str = DEFAULT_FAMILY) -> Any:
    """The image-only processor of the model at ``path``, of the given family."""
    return processor_class(family).from_pretrained(path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")

"""A Qwen2.5-VL processor for images only: the stock one insists on a video processor, which needs torchvision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerFast, Qwen2_5_VLProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.processing_utils import ProcessorMixin

from deepmmsearch.errors import ConfigError
from deepmmsearch.models.chat import CHAT_TEMPLATE, IMAGE_TOKEN, VIDEO_TOKEN


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """``Qwen2_5_VLProcessor`` with an image processor (PIL backend) and a tokenizer, and no video processor.

    ``AutoProcessor`` cannot rebuild it (it would return the tokenizer alone): load it with
    :meth:`from_pretrained` of this class, which builds both parts explicitly.
    """

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None) -> None:
        self.image_token = IMAGE_TOKEN
        self.video_token = VIDEO_TOKEN
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self.video_token_id = tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
        # Skips Qwen2_5_VLProcessor.__init__, whose signature and checks require the video processor.
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    @property
    def merge_size(self) -> int:
        return int(self.image_processor.merge_size)

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> ImageOnlyQwen2_5_VLProcessor:  # type: ignore[override]
        """Load the tokenizer and the PIL image processor saved in ``path`` (a folder or a hub id)."""
        try:
            tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path), **kwargs)
            image_processor = Qwen2VLImageProcessorPil.from_pretrained(str(path), **kwargs)
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path}: no Qwen2.5-VL processor found ({' '.join(str(e).split())[:200]})") from None
        tokenizer.padding_side = "left"
        return cls(image_processor, tokenizer, chat_template=tokenizer.chat_template or CHAT_TEMPLATE)


def image_processor_for(min_pixels: int, max_pixels: int) -> Qwen2VLImageProcessorPil:
    """Qwen2.5-VL's image processor (PIL backend: no torchvision) with the given resolution bounds."""
    return Qwen2VLImageProcessorPil(size={"shortest_edge": min_pixels, "longest_edge": max_pixels})

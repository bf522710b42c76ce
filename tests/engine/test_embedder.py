"""The embedder: a text's vector does not depend on what it is embedded with."""

from __future__ import annotations

import threading
import time

import numpy as np

from deepmmsearch.engine.embedder import DIM, load_embedder

TEXTS = [
    "Risbel Ibex: Risbel Ibex lives in Bratasro.",
    "The Fenlo Sculpture: The Fenlo Sculpture was completed in 1442.",
    "List of sculptures: This list names notable sculptures of the artwork kind: The Fenlo Sculpture, The Dunka.",
    "Bratasro: A river flows through it.",
    "Migal Bridge: Migal Bridge was built in 1871 across the Lune, and it is known for its blue star emblem.",
]


def test_a_vector_is_the_same_bit_for_bit_in_any_batch() -> None:
    embedder = load_embedder()
    together = embedder.encode(TEXTS, max_tokens=96)
    alone = np.stack([embedder.encode([text], max_tokens=96)[0] for text in TEXTS])
    # Mixed-length batches pad, and padded batches differ in the last bits: a summary's near-tie then flips.
    assert together.shape == (len(TEXTS), DIM)
    assert np.array_equal(together, alone)
    assert np.array_equal(embedder.encode(TEXTS[::-1], max_tokens=96)[::-1], together)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_queries_embedded_meanwhile_do_not_cut_a_long_text() -> None:
    embedder = load_embedder()
    long_text = " ".join(f"The Sculpture number {n} of the list." for n in range(12))  # ~100 tokens: past 64
    expected = embedder.encode([long_text], max_tokens=96)[0]
    stop = threading.Event()

    def ask() -> None:  # queries truncate at 64 tokens
        while not stop.is_set():
            embedder.encode_query("museum city of The Fenlo Sculpture")
            time.sleep(0.001)  # the lock is not fair: without a pause the asker holds it nearly always

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        vectors = [embedder.encode([long_text, "short"], max_tokens=96)[0] for _ in range(20)]
    finally:
        stop.set()
        asker.join()
    assert all(np.array_equal(v, expected) for v in vectors)

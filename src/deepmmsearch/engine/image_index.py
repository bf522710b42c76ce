"""Reverse image search over a local image collection, with no learned weights.

Each indexed image is described at many windows (the whole image plus crops at several scales and
positions), so that a cropped query lands close to the window it was cut from. A window's descriptor is a
mean-free colour thumbnail (invariant to brightness and colour shifts that add a constant) plus a grid of
gradient-orientation histograms (invariant to brightness, robust to JPEG and rescaling); both are
L2-normalized and searched by inner product in faiss. An image's score is its best window's score.

On disk an index is three files in its folder: ``image_index.faiss`` (the vectors), ``image_index.npy``
(the owner image of each vector) and ``image_index.jsonl`` (one record per image: id, path, page_url,
title, description). They sit next to the images without clashing with them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deepmmsearch.engine.text_index import search_one_thread
from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.images import load_image
from deepmmsearch.records import ImageHit, read_jsonl, write_jsonl

INDEX_FILE = "image_index.faiss"
OWNERS_FILE = "image_index.npy"
RECORDS_FILE = "image_index.jsonl"

_WORK_SIDE = 160  # images are shrunk to this longest side first: windows need no more detail than that
_THUMB = 8  # colour thumbnail side: coarse enough to ignore small shifts of a crop
_GRID = 4  # gradient histogram cells per side
_BINS = 8  # orientation bins (unsigned gradients, 0..pi)
_GRAD_SIDE = 32  # grey image side on which gradients are taken
# Window sides as fractions of the image side, per axis; positions at both ends and the middle. Crops that
# keep 55-100% of each side land within half a step of one of these windows.
_SCALES = (1.0, 0.85, 0.7, 0.55)
_COLOUR_WEIGHT = 0.6  # share of the colour part in the squared norm of a descriptor; gradients get the rest

DIM = _THUMB * _THUMB * 3 + _GRID * _GRID * _BINS


def _windows() -> list[tuple[float, float, float, float]]:
    spans: list[tuple[float, float]] = []
    for s in _SCALES:
        offsets = [0.0] if s == 1.0 else [0.0, (1.0 - s) / 2, 1.0 - s]
        spans += [(o, o + s) for o in offsets]
    return [(x0, y0, x1, y1) for x0, x1 in spans for y0, y1 in spans]


WINDOWS = _windows()


def _work_array(image: Image.Image) -> np.ndarray:
    image = image.convert("RGB")
    w, h = image.size
    scale = _WORK_SIDE / max(w, h)
    if scale < 1:
        image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float32) / 255.0


def _resize(array: np.ndarray, side: int) -> np.ndarray:
    """Area-average resize of an HxWxC float array to side x side (PIL's float mode works per channel)."""
    channels = [
        np.asarray(Image.fromarray(array[..., c]).resize((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0))
        for c in range(array.shape[2])
    ]
    return np.stack(channels, axis=-1)


def describe(array: np.ndarray) -> np.ndarray:
    """The descriptor of one window given as an HxWx3 float array in [0, 1]."""
    thumb = _resize(array, _THUMB)
    colour = (thumb - thumb.mean(axis=(0, 1), keepdims=True)).reshape(-1)
    colour /= np.linalg.norm(colour) + 1e-3  # +eps: a flat window stays near zero instead of amplifying noise

    grey = _resize(array, _GRAD_SIDE).mean(axis=2)
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    angle = np.mod(np.arctan2(gy, gx), np.pi)
    bins = np.minimum((angle / np.pi * _BINS).astype(np.int64), _BINS - 1)
    cell = _GRAD_SIDE // _GRID
    cells = (np.arange(_GRAD_SIDE) // cell).clip(max=_GRID - 1)
    flat_index = (cells[:, None] * _GRID + cells[None, :]) * _BINS + bins
    hist = np.bincount(flat_index.reshape(-1), weights=magnitude.reshape(-1), minlength=_GRID * _GRID * _BINS)
    hist = np.sqrt(hist)  # Hellinger-style damping: one strong edge should not drown the rest
    hist /= np.linalg.norm(hist) + 1e-3

    vector = np.concatenate([colour * np.sqrt(_COLOUR_WEIGHT), hist * np.sqrt(1 - _COLOUR_WEIGHT)])
    return (vector / (np.linalg.norm(vector) + 1e-6)).astype(np.float32)


def describe_image(image: Image.Image) -> np.ndarray:
    """The query descriptor of a whole image (or crop), shape (DIM,)."""
    return describe(_work_array(image))


def describe_windows(image: Image.Image) -> np.ndarray:
    """Descriptors of every indexing window of an image, shape (len(WINDOWS), DIM)."""
    array = _work_array(image)
    h, w = array.shape[:2]
    out = np.empty((len(WINDOWS), DIM), dtype=np.float32)
    for i, (x0, y0, x1, y1) in enumerate(WINDOWS):
        ys = slice(round(y0 * h), max(round(y1 * h), round(y0 * h) + 1))
        xs = slice(round(x0 * w), max(round(x1 * w), round(x0 * w) + 1))
        out[i] = describe(array[ys, xs])
    return out


_RECORD_KEYS = ("id", "path", "page_url", "title", "description")


class ImageIndex:
    """Window descriptors of a collection of images, searched with faiss; built in memory or loaded from disk."""

    def __init__(self, records: list[dict[str, Any]], vectors: np.ndarray, owners: np.ndarray) -> None:
        import faiss

        self.records = records
        self.owners = owners.astype(np.int64)
        self._index = faiss.IndexFlatIP(DIM)
        if len(vectors):
            self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_vectors(self) -> int:
        return int(self._index.ntotal)

    @classmethod
    def build(cls, records: Iterable[dict[str, Any]], base_dir: str | Path) -> ImageIndex:
        """Index the images that ``records`` name (paths relative to ``base_dir``); a missing or unreadable
        image is an :class:`InputError` naming the record."""
        base_dir = Path(base_dir)
        kept: list[dict[str, Any]] = []
        blocks: list[np.ndarray] = []
        for number, record in enumerate(records, 1):
            if "path" not in record:
                raise InputError(f"image record {number} has no 'path': {json.dumps(record)[:200]}")
            path = Path(record["path"])
            path = (path if path.is_absolute() else base_dir / path).resolve()
            image = load_image(str(path))
            kept.append({k: record.get(k, "") for k in _RECORD_KEYS} | {"path": str(path)})
            blocks.append(describe_windows(image))
        vectors = np.concatenate(blocks) if blocks else np.zeros((0, DIM), np.float32)
        owners = np.repeat(np.arange(len(kept)), len(WINDOWS))
        return cls(kept, vectors, owners)

    def save(self, out_dir: str | Path) -> None:
        """Write the index files into ``out_dir`` (created if needed)."""
        import faiss

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._index, str(out_dir / INDEX_FILE))
        np.save(out_dir / OWNERS_FILE, self.owners)
        home = out_dir.resolve().parent

        def stored(record: dict) -> dict:
            # Images inside the knowledge-base folder are stored relative to the index, so the folder can be
            # moved whole; images elsewhere keep their absolute path.
            path = Path(record["path"]).resolve()
            if path.is_relative_to(home):
                path = Path(os.path.relpath(path, out_dir.resolve()))
            return record | {"path": str(path)}

        write_jsonl(out_dir / RECORDS_FILE, (stored(record) for record in self.records))

    @staticmethod
    def exists(directory: str | Path) -> bool:
        directory = Path(directory)
        return all((directory / name).is_file() for name in (INDEX_FILE, OWNERS_FILE, RECORDS_FILE))

    @classmethod
    def load(cls, directory: str | Path) -> ImageIndex:
        """Load an index that :meth:`save` wrote; a missing or damaged one is a :class:`ConfigError`."""
        import faiss

        directory = Path(directory)
        if not cls.exists(directory):
            raise ConfigError(f"{directory}: no image index there; build one with `dmms kb build --images ...`")
        try:
            index = faiss.read_index(str(directory / INDEX_FILE))
            owners = np.load(directory / OWNERS_FILE)
            records = list(read_jsonl(directory / RECORDS_FILE))
            for record in records:
                record["path"] = str((directory / record["path"]).resolve())
        except (RuntimeError, ValueError, OSError, InputError) as e:
            raise ConfigError(f"{directory}: damaged image index ({e}); rebuild it") from None
        if index.d != DIM or index.ntotal != len(owners) or (len(owners) and owners.max() >= len(records)):
            raise ConfigError(f"{directory}: image index does not match this version or its records; rebuild it")
        loaded = cls.__new__(cls)
        loaded.records, loaded.owners, loaded._index = records, owners.astype(np.int64), index
        return loaded

    def search(self, image: Image.Image, k: int) -> list[ImageHit]:
        """The ``k`` indexed images most like ``image``, best first, each scored by its best window."""
        if not self.records or k <= 0:
            return []
        query = describe_image(image)[None, :]
        # Enough windows that k distinct images almost surely appear; a flat index makes this cheap.
        depth = min(self._index.ntotal, max(64, k * len(WINDOWS) // 4))
        scores, ids = search_one_thread(self._index, query, depth)
        best: dict[int, float] = {}
        for score, vector_id in zip(scores[0], ids[0], strict=True):
            if vector_id < 0:
                continue
            owner = int(self.owners[vector_id])
            if owner not in best:
                best[owner] = float(score)  # faiss returns best first, so the first window seen wins
                if len(best) == k:
                    break
        return [self._hit(owner, score) for owner, score in best.items()]

    def _hit(self, owner: int, score: float) -> ImageHit:
        record = self.records[owner]
        return ImageHit(
            title=record.get("title", ""),
            url=record.get("page_url", ""),
            description=record.get("description", ""),
            image=record.get("path"),
            score=score,
        )


def build_image_index(records: list[dict], base_dir: Path, out_dir: Path) -> int:
    """Index the images of ``records`` (images JSONL dicts; paths relative to ``base_dir``) into ``out_dir``;
    returns how many images were indexed."""
    index = ImageIndex.build(records, base_dir)
    index.save(out_dir)
    return len(index)

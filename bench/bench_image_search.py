"""Reverse image search: recall@1 and latency per kind of perturbation.

Builds an index over a generated collection of drawn pictures (and, with --photos, over scikit-image's
shipped photos), queries it with perturbed copies (crop, rescale, JPEG re-encode, brightness and colour
shift, and all of them at once) and reports, per kind, recall@1, recall@5 and the median query latency.

    python bench/bench_image_search.py [--images 100] [--queries-per-kind 60] [--photos] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

from deepmmsearch.engine.image_index import ImageIndex

PALETTE = [(220, 40, 40), (40, 160, 60), (40, 80, 220), (240, 200, 30), (150, 60, 190), (250, 130, 20),
           (30, 190, 200), (120, 70, 30), (20, 20, 20), (235, 235, 235), (240, 120, 170), (110, 110, 110)]  # fmt: skip


def drawn_picture(rng: np.random.Generator, size: tuple[int, int] = (240, 180)) -> Image.Image:
    """A picture of random shapes in random colours on a random background (a gradient half the time)."""
    w, h = size
    bg = PALETTE[rng.integers(len(PALETTE))]
    image = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(image)
    if rng.random() < 0.5:
        other = PALETTE[rng.integers(len(PALETTE))]
        for y in range(h):
            t = y / h
            draw.line([(0, y), (w, y)], fill=tuple(int(a * (1 - t) + b * t) for a, b in zip(bg, other, strict=True)))
    for _ in range(rng.integers(3, 8)):
        colour = PALETTE[rng.integers(len(PALETTE))]
        x0, y0 = rng.integers(0, w - 30), rng.integers(0, h - 30)
        x1, y1 = x0 + rng.integers(20, w // 2), y0 + rng.integers(20, h // 2)
        kind = rng.integers(4)
        if kind == 0:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        elif kind == 1:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        elif kind == 2:
            draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=colour)
        else:
            draw.line([(x0, y0), (x1, y1)], fill=colour, width=int(rng.integers(3, 12)))
    return image


def crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Keep 60-95% of each side, anywhere in the image."""
    w, h = image.size
    cw, ch = int(w * rng.uniform(0.6, 0.95)), int(h * rng.uniform(0.6, 0.95))
    x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
    return image.crop((x0, y0, x0 + cw, y0 + ch))


def rescale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Scale by 0.3-2x, with a slightly changed aspect ratio."""
    f = rng.uniform(0.3, 2.0)
    w, h = image.size
    return image.resize((max(8, int(w * f * rng.uniform(0.9, 1.1))), max(8, int(h * f))), Image.Resampling.BICUBIC)


def jpeg(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Re-encode as JPEG at quality 20-70."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(20, 71)))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def recolour(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Brightness x0.7-1.3, contrast x0.8-1.2 and a per-channel shift of up to 25 levels."""
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.7, 1.3))
    image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.8, 1.2))
    shifted = np.asarray(image, dtype=np.int16) + rng.integers(-25, 26, size=3)
    return Image.fromarray(np.clip(shifted, 0, 255).astype(np.uint8))


def combined(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return jpeg(recolour(rescale(crop(image, rng), rng), rng), rng)


PERTURBATIONS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "crop": crop,
    "rescale": rescale,
    "jpeg": jpeg,
    "recolour": recolour,
    "combined": combined,
}


def skimage_photos() -> list[Image.Image]:
    """scikit-image's shipped photos, in colour (grey ones converted), 20 or so."""
    import skimage.data

    photos = []
    # skimage.data.cat is chelsea again, so it is left out: duplicates would count as misses.
    for name in ("astronaut", "camera", "chelsea", "coffee", "horse", "moon", "page", "rocket", "text",
                 "brick", "grass", "gravel", "coins", "cell", "clock", "color", "immunohistochemistry", "logo",
                 "retina", "hubble_deep_field", "microaneurysms"):  # fmt: skip
        fetch = getattr(skimage.data, name, None)
        if fetch is None:
            continue
        try:
            array = fetch()
        except Exception:  # a photo this skimage version does not ship locally: skip it, never download
            continue
        array = np.asarray(array)
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        photos.append(Image.fromarray(array[..., :3].astype(np.uint8)))
    return photos


def evaluate(images: list[Image.Image], queries_per_kind: int, seed: int, label: str) -> dict[str, dict[str, float]]:
    """Index ``images``, query with perturbed copies, print and return the figures per perturbation kind."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        records = []
        for i, image in enumerate(images):
            image.save(Path(tmp) / f"{i}.png")
            records.append({"id": str(i), "path": f"{i}.png", "title": f"image {i}", "page_url": f"u/{i}"})
        t0 = time.perf_counter()
        index = ImageIndex.build(records, tmp)
        build_s = time.perf_counter() - t0
    print(f"{label}: {len(images)} images, {index.num_vectors} vectors, built in {build_s:.2f} s")
    results = {}
    for kind, perturb in PERTURBATIONS.items():
        top1 = top5 = 0
        latencies = []
        for _ in range(queries_per_kind):
            target = int(rng.integers(len(images)))
            query = perturb(images[target], rng)
            t0 = time.perf_counter()
            hits = index.search(query, 5)
            latencies.append(time.perf_counter() - t0)
            ids = [h.url for h in hits]
            top1 += ids[:1] == [f"u/{target}"]
            top5 += f"u/{target}" in ids
        results[kind] = {
            "recall@1": top1 / queries_per_kind,
            "recall@5": top5 / queries_per_kind,
            "median_ms": 1000 * statistics.median(latencies),
        }
        r = results[kind]
        print(f"  {kind:9s} recall@1 {r['recall@1']:.3f}  recall@5 {r['recall@5']:.3f}  {r['median_ms']:.1f} ms/query")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100, help="drawn pictures in the collection")
    parser.add_argument("--queries-per-kind", type=int, default=60)
    parser.add_argument("--photos", action="store_true", help="also run on scikit-image's photos")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    evaluate([drawn_picture(rng) for _ in range(args.images)], args.queries_per_kind, args.seed, "drawn pictures")
    if args.photos:
        evaluate(skimage_photos(), args.queries_per_kind, args.seed, "scikit-image photos")


if __name__ == "__main__":
    main()

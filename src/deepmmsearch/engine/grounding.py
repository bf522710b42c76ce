"""Offline grounding with no weights: object regions found in the image, and a parser of referring expressions.

Regions are the connected components of pixels that differ from the background colour (the dominant colour
of the image border). Each region gets a box, an area, a colour name and a rough shape. The expression is
parsed into constraints (colour words, shape words, "second from the left", "largest", "top left", ...)
that filter and order the regions. Nouns the parser does not know ("logo", "building") are ignored, so the
offline grounder is meant for drawn or staged scenes; real photos need a detector (tools/detectors.py). The
tool that serves it is ``local`` in tools/local_image.py.
"""

from __future__ import annotations

import colorsys
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from deepmmsearch.records import Box

# ---------------------------------------------------------------------------------------------- parsing

COLOURS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "brown", "black", "white", "grey")
_COLOUR_SYNONYMS = {"gray": "grey", "violet": "purple", "magenta": "pink", "teal": "cyan", "turquoise": "cyan"}
SHAPES = ("circle", "square", "rectangle", "triangle")
_SHAPE_SYNONYMS = {
    "round": "circle",
    "disc": "circle",
    "disk": "circle",
    "ball": "circle",
    "dot": "circle",
    "oval": "circle",
    "ellipse": "circle",
    "box": "square",
    "rectangular": "rectangle",
    "bar": "rectangle",
    "triangular": "triangle",
}
_ORDINALS = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
    "fifth": 5, "5th": 5, "sixth": 6, "6th": 6, "seventh": 7, "7th": 7, "eighth": 8, "8th": 8,
}  # fmt: skip
_DIRECTION_WORDS = {
    "left": "left", "leftmost": "left", "right": "right", "rightmost": "right",
    "top": "top", "topmost": "top", "upper": "top", "uppermost": "top", "above": "top",
    "bottom": "bottom", "bottommost": "bottom", "lower": "bottom", "lowest": "bottom", "below": "bottom",
}  # fmt: skip
_CENTRE_WORDS = {"centre", "center", "middle", "central"}
_LARGE_WORDS = {"largest", "biggest", "large", "big", "huge", "larger", "bigger"}
_SMALL_WORDS = {"smallest", "tiniest", "small", "tiny", "little", "smaller"}
_WORD_RE = re.compile(r"[a-z0-9]+")
_ORDINAL_FROM_RE = re.compile(
    r"\b(" + "|".join(_ORDINALS) + r")\s+(?:\w+\s+){0,3}?from\s+(?:the\s+)?(left|right|top|bottom)\b"
)


@dataclass(frozen=True)
class Expression:
    """What a referring expression asks for, as constraints on regions."""

    colours: frozenset[str] = frozenset()
    shape: str | None = None
    order: tuple[str, int] | None = None  # ("left", 2): the second counted from the left
    directions: tuple[str, ...] = ()  # "top", "left": the region furthest that way
    centre: bool = False
    size: str | None = None  # "large" or "small"


def parse_expression(text: str) -> Expression:
    """Parse the spatial, size, colour and shape words of a referring expression; other words are ignored."""
    lowered = text.lower().replace("-", " ")
    words = _WORD_RE.findall(lowered)
    order = None
    match = _ORDINAL_FROM_RE.search(" ".join(words))
    if match:
        order = (match.group(2), _ORDINALS[match.group(1)])
    colours = {_COLOUR_SYNONYMS.get(w, w) for w in words if _COLOUR_SYNONYMS.get(w, w) in COLOURS}
    shapes = [_SHAPE_SYNONYMS.get(w.rstrip("s"), w.rstrip("s")) for w in words]
    shape = next((s for s in shapes if s in SHAPES), None)
    directions: list[str] = []
    if order is None:
        for w in words:
            d = _DIRECTION_WORDS.get(w)
            if d and d not in directions:
                directions.append(d)
    size = "large" if _LARGE_WORDS & set(words) else "small" if _SMALL_WORDS & set(words) else None
    return Expression(
        colours=frozenset(colours),
        shape=shape,
        order=order,
        directions=tuple(directions),
        centre=bool(_CENTRE_WORDS & set(words)),
        size=size,
    )


# ---------------------------------------------------------------------------------------------- regions


@dataclass(frozen=True)
class Region:
    """One object candidate: its box (x0, y0 inclusive, x1, y1 exclusive), size, centre, colour and shape."""

    box: tuple[int, int, int, int]
    area: int
    centre: tuple[float, float]
    colour: str
    shape: str
    part: bool = False  # a single-colour part of a larger object, offered only when a colour is asked for


def colour_name(rgb: tuple[float, float, float]) -> str:
    """The nearest of :data:`COLOURS` for an RGB colour in 0..255, judged on hue, saturation and value."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    if v < 0.2:
        return "black"
    if s < 0.2:
        return "white" if v > 0.75 else "grey"
    hue = h * 360
    if 10 <= hue < 45 and v < 0.65:
        return "brown"  # a dark orange reads as brown
    for limit, name in ((15, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (195, "cyan"), (255, "blue")):
        if hue < limit:
            return name
    if hue < 290:
        return "purple"
    if hue < 345:
        return "pink"
    return "red"


def _shape_of(mask: np.ndarray) -> str:
    """A rough shape from how much of its box a region fills and the box's aspect ratio."""
    h, w = mask.shape
    fill = mask.mean()
    if fill < 0.62:
        return "triangle"  # a triangle fills half its box; a disc 0.79; a rectangle all of it
    if fill < 0.88:
        return "circle"
    return "square" if 0.8 <= w / h <= 1.25 else "rectangle"


def find_regions(
    image: Image.Image, tolerance: float = 40.0, min_area_fraction: float = 0.002, max_side: int = 400
) -> list[Region]:
    """Object candidates: connected components of pixels further than ``tolerance`` (RGB distance) from every
    background colour (the colours that cover much of the image border: sky and sea both count). Tiny
    components (noise, JPEG ringing) are dropped. An object of several colours also yields its single-colour
    parts (``Region.part``), so "the red band" can name part of a lighthouse. Boxes are in ``image`` pixels."""
    from scipy import ndimage

    image = image.convert("RGB")
    scale = min(1.0, max_side / max(image.size))  # work small: regions need no fine detail
    small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    array = np.asarray(small, dtype=np.float32)
    border = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
    keys = _colour_keys(border)
    values, counts = np.unique(keys, return_counts=True)
    dominant = [values[np.argmax(counts)]] + [v for v, c in zip(values, counts, strict=True) if c >= 0.2 * len(keys)]
    foreground = np.ones(array.shape[:2], dtype=bool)
    for value in dominant:
        background = border[keys == value].mean(axis=0)
        foreground &= np.linalg.norm(array - background, axis=2) > tolerance
    foreground = ndimage.binary_opening(foreground, iterations=1)
    # Background-coloured patches enclosed by an object (a dark pattern on a tile) belong to that object;
    # left as holes, what they enclose would count as separate objects and throw "second from the left" off.
    foreground = ndimage.binary_fill_holes(foreground)
    min_area = min_area_fraction * foreground.size

    def region(mask: np.ndarray, slices: tuple[slice, slice], part: bool) -> Region:
        ys, xs = slices
        box = (
            int(xs.start / scale),
            int(ys.start / scale),
            min(image.width, int(np.ceil(xs.stop / scale))),
            min(image.height, int(np.ceil(ys.stop / scale))),
        )
        return Region(
            box=box,
            area=round(int(mask.sum()) / scale**2),
            # The box centre, not the centre of mass: people place a triangle by its box, not its centroid.
            centre=((box[0] + box[2]) / 2, (box[1] + box[3]) / 2),
            colour=colour_name(tuple(np.median(array[slices][mask], axis=0))),
            shape=_shape_of(mask),
            part=part,
        )

    regions = []
    labels, _ = ndimage.label(foreground)
    for index, slices in enumerate(ndimage.find_objects(labels), 1):
        if slices is None:
            continue
        mask = labels[slices] == index
        if mask.sum() < min_area:
            continue
        regions.append(region(mask, slices, part=False))
        pixels = array[slices]
        median = np.median(pixels[mask], axis=0)
        if (np.linalg.norm(pixels[mask] - median, axis=1) < tolerance).mean() > 0.85:
            continue  # one colour: the object is its own only part
        part_keys = _colour_keys(pixels)
        for value in np.unique(part_keys[mask]):
            part_labels, _ = ndimage.label(mask & (part_keys == value))
            for part_index, part_slices in enumerate(ndimage.find_objects(part_labels), 1):
                if part_slices is None:
                    continue
                part_mask = part_labels[part_slices] == part_index
                if part_mask.sum() < min_area:
                    continue
                absolute = tuple(
                    slice(outer.start + inner.start, outer.start + inner.stop)
                    for outer, inner in zip(slices, part_slices, strict=True)
                )
                regions.append(region(part_mask, absolute, part=True))  # type: ignore[arg-type]
    return regions


def _colour_keys(pixels: np.ndarray) -> np.ndarray:
    """A coarse colour bin per pixel (about 10 levels a channel), as one integer."""
    quantized = (pixels // 24).astype(np.int64)
    return quantized[..., 0] * 10_000 + quantized[..., 1] * 100 + quantized[..., 2]


# ---------------------------------------------------------------------------------------------- choosing

_AXIS = {"left": (0, 1), "right": (0, -1), "top": (1, 1), "bottom": (1, -1)}  # (coordinate, sign)


def select_region(regions: list[Region], expression: Expression, size: tuple[int, int]) -> Region | None:
    """The region that fits the expression best, or None when no region has the colours or shape asked for."""
    objects = [r for r in regions if not r.part]
    candidates = [r for r in objects if not expression.colours or r.colour in expression.colours]
    if expression.colours and not candidates:
        # No whole object has that colour: a part may ("the red band" of a white-and-red tower).
        candidates = [r for r in regions if r.part and r.colour in expression.colours]
    if expression.shape:
        # A square is a rectangle too; a rectangle asked for may be drawn nearly square.
        ok = {"square": {"square"}, "rectangle": {"rectangle", "square"}}.get(expression.shape, {expression.shape})
        candidates = [r for r in candidates if r.shape in ok]
    if not candidates:
        return None
    if expression.order is not None:
        direction, n = expression.order
        axis, sign = _AXIS[direction]
        ranked = sorted(candidates, key=lambda r: sign * r.centre[axis])
        return ranked[n - 1] if n <= len(ranked) else None
    width, height = size
    if expression.directions:

        def extremeness(r: Region) -> float:
            # Sum of how far the region sits towards each named side, in fractions of the image.
            total = 0.0
            for d in expression.directions:
                axis, sign = _AXIS[d]
                total += -sign * r.centre[axis] / (width if axis == 0 else height)
            return total

        return max(candidates, key=extremeness)
    if expression.centre:
        return min(candidates, key=lambda r: np.hypot(r.centre[0] - width / 2, r.centre[1] - height / 2))
    if expression.size == "small":
        return min(candidates, key=lambda r: r.area)
    # "the largest" and every expression that names nothing we can check: the most salient region.
    return max(candidates, key=lambda r: r.area)


def ground(image: Image.Image, expression: str) -> Box | None:
    """Ground a referring expression in ``image``: the chosen region's box, or None when nothing fits."""
    parsed = parse_expression(expression)
    region = select_region(find_regions(image), parsed, image.size)
    if region is None:
        return None
    return Box(*region.box, label=f"{region.colour} {region.shape}")

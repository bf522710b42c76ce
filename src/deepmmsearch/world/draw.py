"""Pictures of the offline world: one distinctive drawing per entity, its variants, and multi-object scenes."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "diamond", "star", "hexagon", "cross", "arch")
COLOURS = {
    "red": (214, 39, 40),
    "orange": (243, 132, 28),
    "yellow": (236, 200, 30),
    "green": (44, 160, 44),
    "blue": (31, 90, 200),
    "purple": (128, 60, 180),
    "pink": (240, 110, 170),
    "brown": (140, 86, 45),
    "black": (30, 30, 30),
}
BACKGROUNDS = {
    "cream": (250, 240, 210),
    "sky": (200, 225, 250),
    "mint": (205, 240, 215),
    "lilac": (228, 214, 245),
    "peach": (252, 218, 196),
    "grey": (215, 215, 215),
    "lemon": (250, 248, 190),
    "rose": (248, 212, 222),
}
PATTERNS = ("plain", "stripes", "dots", "ring", "band")
SIZE = 128
SCENE_BACKGROUND = (46, 52, 64)  # dark slate: no tile background or pastel can be mistaken for it


@dataclass(frozen=True)
class Look:
    """What an entity's picture looks like; every entity in a world has a different look."""

    shape: str
    colour: str
    background: str
    pattern: str
    accent: str  # colour of a small mark in a corner
    corner: int  # which corner holds the mark, 0-3


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    if shape == "hexagon":
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (i * math.pi / 3 for i in range(6))]
    if shape == "star":
        points = []
        for i in range(10):
            radius = r if i % 2 == 0 else r * 0.45
            angle = -math.pi / 2 + i * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        return points
    if shape == "cross":
        w = r * 0.38
        return [
            (cx - w, cy - r),
            (cx + w, cy - r),
            (cx + w, cy - w),
            (cx + r, cy - w),
            (cx + r, cy + w),
            (cx + w, cy + w),
            (cx + w, cy + r),
            (cx - w, cy + r),
            (cx - w, cy + w),
            (cx - r, cy + w),
            (cx - r, cy - w),
            (cx - w, cy - w),
        ]
    if shape == "arch":
        top = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (math.pi + i * math.pi / 12 for i in range(13))]
        return [
            *top,
            (cx + r, cy + r),
            (cx + r * 0.45, cy + r),
            (cx + r * 0.45, cy),
            (cx - r * 0.45, cy),
            (cx - r * 0.45, cy + r),
            (cx - r, cy + r),
        ]
    raise ValueError(f"unknown shape {shape!r}")


def draw_entity(look: Look, rng: random.Random | None = None, size: int = SIZE) -> Image.Image:
    """The entity's picture. With ``rng``, a variant: shifted, rescaled and slightly recoloured."""
    jitter = rng is not None
    shift = (rng.uniform(-0.06, 0.06) * size, rng.uniform(-0.06, 0.06) * size) if jitter else (0.0, 0.0)
    scale = rng.uniform(0.85, 1.08) if jitter else 1.0
    tint = rng.randint(-14, 14) if jitter else 0

    def tinted(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
        return tuple(max(0, min(255, c + tint)) for c in rgb)  # type: ignore[return-value]

    image = Image.new("RGB", (size, size), tinted(BACKGROUNDS[look.background]))
    draw = ImageDraw.Draw(image)
    cx, cy, r = size / 2 + shift[0], size / 2 + shift[1], size * 0.32 * scale
    colour = tinted(COLOURS[look.colour])
    if look.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        draw.polygon(_polygon(look.shape, cx, cy, r), fill=colour)
    mark = (255, 255, 255) if look.colour != "yellow" else (60, 60, 60)
    if look.pattern == "stripes":
        for x in range(int(cx - r), int(cx + r), max(4, int(r / 3))):
            draw.line([(x, cy - r * 0.5), (x + r * 0.3, cy + r * 0.5)], fill=mark, width=max(2, int(r / 10)))
    elif look.pattern == "dots":
        for dx in (-0.35, 0.35):
            for dy in (-0.3, 0.3):
                d = r * 0.12
                draw.ellipse([cx + dx * r - d, cy + dy * r - d, cx + dx * r + d, cy + dy * r + d], fill=mark)
    elif look.pattern == "ring":
        d = r * 0.35
        draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=mark, width=max(2, int(r / 9)))
    elif look.pattern == "band":
        draw.rectangle([cx - r * 0.7, cy - r * 0.12, cx + r * 0.7, cy + r * 0.12], fill=mark)
    m = size * 0.09
    corners = [
        (m * 1.6, m * 1.6),
        (size - m * 1.6, m * 1.6),
        (size - m * 1.6, size - m * 1.6),
        (m * 1.6, size - m * 1.6),
    ]
    ax, ay = corners[look.corner]
    draw.rectangle([ax - m, ay - m, ax + m, ay + m], fill=tinted(COLOURS[look.accent]))
    return image


def draw_scene(tiles: list[Image.Image], rng: random.Random, tile: int = 96, gap: int = 24) -> Image.Image:
    """Tiles side by side on a dark canvas, with gaps, so that each is one separate object."""
    width = gap + len(tiles) * (tile + gap)
    height = tile + 2 * gap + 16
    scene = Image.new("RGB", (width, height), SCENE_BACKGROUND)
    for i, picture in enumerate(tiles):
        y = gap + rng.randint(0, 16)
        scene.paste(picture.resize((tile, tile), Image.Resampling.BILINEAR), (gap + i * (tile + gap), y))
    return scene


def random_look(rng: random.Random) -> Look:
    """Any look, not one of the world's entities: pictures to learn seeing from."""
    colour = rng.choice(list(COLOURS))
    accent = rng.choice([c for c in COLOURS if c != colour])
    return Look(
        rng.choice(SHAPES), colour, rng.choice(list(BACKGROUNDS)), rng.choice(PATTERNS), accent, rng.randrange(4)
    )


def describe(look: Look) -> str:
    """A caption of a picture drawn from ``look``, as "key: value." pairs: "colour: red. shape: star."."""
    return f"colour: {look.colour}. shape: {look.shape}. background: {look.background}."


def captioned_pictures(count: int, rng: random.Random) -> Iterator[tuple[Image.Image, str]]:
    """``count`` pictures with their captions, two single drawings to one scene of 2-4 ("objects: 3. colour: ..."):
    what a released model has seen before it is taught to answer about pictures (colour, shape, how many)."""
    for index in range(count):
        if index % 3 < 2:
            look = random_look(rng)
            yield draw_entity(look, rng), describe(look)
            continue
        looks = [random_look(rng) for _ in range(rng.randint(2, 4))]
        items = " ".join(f"colour: {look.colour}. shape: {look.shape}." for look in looks)
        yield draw_scene([draw_entity(look, rng) for look in looks], rng), f"objects: {len(looks)}. {items}"

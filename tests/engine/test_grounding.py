"""The offline grounder: expression parsing, region finding, and accuracy on generated multi-object scenes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from deepmmsearch.engine.grounding import (
    Expression,
    colour_name,
    find_regions,
    ground,
    parse_expression,
)
from deepmmsearch.tools.local_image import LocalGrounder

SCENE_COLOURS = {
    "red": (210, 30, 30),
    "green": (30, 150, 50),
    "blue": (40, 70, 220),
    "yellow": (245, 210, 20),
    "purple": (140, 50, 180),
    "orange": (250, 130, 20),
    "black": (15, 15, 15),
    "pink": (245, 110, 180),
}
BACKGROUNDS = [(255, 255, 255), (235, 235, 225), (200, 220, 240), (250, 240, 200)]


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=fill)
    elif shape == "triangle":
        draw.polygon([(x0, y1 - 1), ((x0 + x1) // 2, y0), (x1 - 1, y1 - 1)], fill=fill)
    else:
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=fill)


def make_scene(rng: np.random.Generator) -> tuple[Image.Image, list[dict]]:
    """3-5 objects of distinct colours, shapes and sizes in separate cells of a 3x2 grid (jittered)."""
    width, height = 480, 320
    image = Image.new("RGB", (width, height), BACKGROUNDS[rng.integers(len(BACKGROUNDS))])
    draw = ImageDraw.Draw(image)
    count = int(rng.integers(3, 6))
    cells = rng.permutation(6)[:count]
    colours = rng.permutation(list(SCENE_COLOURS))[:count]
    sizes = rng.permutation(np.linspace(40, 110, count).astype(int))  # distinct sizes, so "largest" is defined
    objects = []
    for cell, colour, side in zip(cells, colours, sizes, strict=True):
        shape = ("circle", "square", "triangle")[rng.integers(3)]
        cx = (cell % 3) * 160 + 80 + int(rng.integers(-15, 16))
        cy = (cell // 3) * 160 + 80 + int(rng.integers(-15, 16))
        box = (cx - side // 2, cy - side // 2, cx - side // 2 + side, cy - side // 2 + side)
        _draw(draw, shape, box, SCENE_COLOURS[colour])
        area = int(side) ** 2 * {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5}[shape]
        objects.append({"colour": str(colour), "shape": shape, "box": box, "cx": cx, "cy": cy, "area": area})
    return image, objects


def _iou(a: tuple[int, ...] | list[int], b: tuple[int, ...]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _expressions(objects: list[dict], rng: np.random.Generator) -> list[tuple[str, dict]]:
    """Referring expressions with the object each one names, worded several ways."""
    ordinal = ["first", "second", "third", "fourth", "fifth"]
    by_x = sorted(objects, key=lambda o: o["cx"])
    by_y = sorted(objects, key=lambda o: o["cy"])
    target = objects[rng.integers(len(objects))]
    n = by_x.index(target)
    out = [
        (f"the {target['colour']} object", target),
        (f"the {target['colour']} {target['shape']}", target),
        (f"the {ordinal[n]} object from the left", target),
        (f"the {ordinal[len(by_x) - 1 - n]} shape from the right", target),
        ("the leftmost object", by_x[0]),
        ("the thing on the right", by_x[-1]),
        ("the object at the top", by_y[0]),
        ("the bottom one", by_y[-1]),
        ("the largest object", max(objects, key=lambda o: o["area"])),
        ("the smallest shape", min(objects, key=lambda o: o["area"])),
    ]
    return out


def test_parse_expression_reads_spatial_size_colour_and_shape_words() -> None:
    e = parse_expression("The second red circle from the left")
    assert e.order == ("left", 2) and e.colours == {"red"} and e.shape == "circle"
    assert parse_expression("top-left grey box").directions == ("top", "left")
    assert parse_expression("top-left grey box").colours == {"grey"}
    assert parse_expression("a gray dot").shape == "circle"
    assert parse_expression("the biggest building").size == "large"
    assert parse_expression("the tiny logo").size == "small"
    assert parse_expression("the one in the middle").centre
    assert parse_expression("3rd from the bottom").order == ("bottom", 3)
    assert parse_expression("the logo on the cap") == Expression()


def test_colour_names() -> None:
    expected = {(210, 30, 30): "red", (30, 150, 50): "green", (40, 70, 220): "blue", (245, 210, 20): "yellow"}
    expected |= {(15, 15, 15): "black", (250, 250, 250): "white", (128, 128, 128): "grey", (120, 70, 30): "brown"}
    for rgb, name in expected.items():
        assert colour_name(rgb) == name, rgb


def test_find_regions_finds_each_object_with_its_colour_and_shape() -> None:
    image, objects = make_scene(np.random.default_rng(3))
    regions = find_regions(image)
    assert len(regions) == len(objects)
    for obj in objects:
        region = max(regions, key=lambda r: _iou(r.box, obj["box"]))
        assert _iou(region.box, obj["box"]) > 0.8
        assert region.colour == obj["colour"]
        assert region.shape == obj["shape"]


def test_grounding_picks_the_named_object_in_at_least_95_percent_of_scenes() -> None:
    rng = np.random.default_rng(0)
    right = total = 0
    failures = []
    for _ in range(40):
        image, objects = make_scene(rng)
        for text, target in _expressions(objects, rng):
            box = ground(image, text)
            total += 1
            if box is not None and _iou(box.as_list(), target["box"]) > 0.5:
                right += 1
            else:
                failures.append(text)
    assert total == 400
    assert right / total >= 0.95, failures[:20]


def test_nothing_fits_gives_none_and_the_grounder_is_async() -> None:
    image, objects = make_scene(np.random.default_rng(5))
    missing = next(c for c in SCENE_COLOURS if c not in {o["colour"] for o in objects})
    assert ground(image, f"the {missing} object") is None
    assert ground(image, "the seventh object from the left") is None
    assert ground(Image.new("RGB", (64, 64), "white"), "the red ball") is None
    box = asyncio.run(LocalGrounder().ground(image, f"the {objects[0]['colour']} one"))
    assert box is not None and _iou(box.as_list(), objects[0]["box"]) > 0.8
    assert box.label.startswith(objects[0]["colour"])


@pytest.mark.parametrize("quality", [40, 85])
def test_grounding_survives_jpeg(quality: int) -> None:
    import io

    image, objects = make_scene(np.random.default_rng(11))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    jpeg = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    leftmost = min(objects, key=lambda o: o["cx"])
    box = ground(jpeg, "the leftmost object")
    assert box is not None and _iou(box.as_list(), leftmost["box"]) > 0.7


def test_parts_of_a_many_coloured_object_on_a_two_colour_background() -> None:
    # Sky and sea both touch the border, so both are background; the red bands are parts of the tower.
    lighthouse = Image.open(Path(__file__).resolve().parents[2] / "examples" / "lighthouse.png").convert("RGB")
    whole = ground(lighthouse, "the lighthouse")
    assert whole is not None and whole.x0 < 140 and whole.x1 > 180 and whole.y0 < 40 and whole.y1 < 240
    band = ground(lighthouse, "the top red band")
    assert band is not None and band.label == "red rectangle"
    assert 130 <= band.x0 < band.x1 <= 190 and 75 <= band.y0 < band.y1 <= 100  # the highest of the three bands
    lamp = ground(lighthouse, "the yellow lamp")
    assert lamp is not None and lamp.y1 <= 65

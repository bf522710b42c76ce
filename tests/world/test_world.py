import hashlib
import json
from collections import Counter
from pathlib import Path

from PIL import Image

from deepmmsearch.records import read_questions
from deepmmsearch.world.build import WorldConfig, build_world


def tree_hash(root: Path) -> str:
    """One hash over every file's relative path and bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        build_world(tmp_path / name, WorldConfig(seed=seed, entities=18, captions=6))
    assert tree_hash(tmp_path / "a") == tree_hash(tmp_path / "b")
    assert tree_hash(tmp_path / "a") != tree_hash(tmp_path / "c")


def test_world_contents(tmp_path):
    summary = build_world(tmp_path, WorldConfig(seed=1, entities=60, captions=30))
    splits = {name: read_questions(tmp_path / "questions" / f"{name}.jsonl") for name in ("train", "dev", "test")}
    every = [q for qs in splits.values() for q in qs]
    assert summary["questions"] == {name: len(qs) for name, qs in splits.items()}
    assert {q.extra["skill"] for q in every} == {"search_free", "image_search", "crop_search", "multi_hop", "refine"}
    share = sum(bool(q.requires_search) for q in every) / len(every)
    assert 0.4 < share < 0.6
    assert {q.category for q in every} == {"landmark", "animal", "plant", "artwork", "vehicle", "person"}
    for q in every:
        assert q.answers and q.question_type in ("string", "numerical", "time")
        assert Path(q.image).is_file()
    # The unseen-entity split holds entities that train and dev never show.
    test_splits = Counter(q.split for q in splits["test"])
    assert test_splits["unseen_entity"] > 0 and test_splits["unseen_question"] > 0
    seen = {q.extra["entity"] for q in splits["train"] + splits["dev"]}
    assert not {q.extra["entity"] for q in splits["test"] if q.split == "unseen_entity"} & seen
    # Pages state the facts the questions ask about; namesakes get their place in the title.
    pages = [json.loads(line) for line in (tmp_path / "sources" / "pages.jsonl").read_text().splitlines()]
    text = " ".join(p["text"] for p in pages)
    image_questions = [q for q in every if q.extra["skill"] == "image_search"]
    assert all(q.extra["plan"]["value"] in text for q in image_questions)
    assert any("(" in p["title"] for p in pages)
    # A scene question's picture holds several objects side by side.
    scene = next(q for q in every if q.extra["skill"] == "crop_search")
    assert Image.open(scene.image).width > 2 * Image.open(splits["train"][0].image).width


def test_captions_say_what_their_pictures_show(tmp_path):
    from deepmmsearch.world.draw import BACKGROUNDS, COLOURS, SCENE_BACKGROUND

    summary = build_world(tmp_path, WorldConfig(seed=2, entities=18, captions=30))
    rows = [json.loads(line) for line in (tmp_path / "captions.jsonl").read_text().splitlines()]
    assert summary["captions"] == len(rows) == 30
    palette = {**COLOURS, **BACKGROUNDS, "white": (255, 255, 255), "slate": SCENE_BACKGROUND}

    def nearest(rgb: tuple[int, int, int]) -> str:
        return min(palette, key=lambda name: sum((a - b) ** 2 for a, b in zip(rgb, palette[name], strict=True)))

    scenes = 0
    for row in rows:
        picture = Image.open(tmp_path / row["image"]).convert("RGB")
        fields = dict(part.split(": ") for part in row["caption"].rstrip(".").split(". "))
        if "objects" in fields:  # "objects: 3. colour: red. shape: star. colour: ...": one tile each
            scenes += 1
            count = int(fields["objects"])
            assert row["caption"].count("shape: ") == count and picture.width == 24 + count * 120
            continue
        # The most common colour after the background is the shape's (the corner mark and pattern are small).
        counts = Counter(nearest(rgb) for rgb in picture.getdata())
        assert counts.most_common(1)[0][0] == fields["background"]
        assert [name for name, _ in counts.most_common(2)][1] == fields["colour"], row
    assert scenes == 10

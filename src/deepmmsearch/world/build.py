"""``dmms world build``: write a seeded offline world to a folder.

Layout of the folder::

    world.json                  seed, sizes, and every entity with its look and facts
    images/entities/ID.png      the canonical picture of each entity (what reverse image search indexes)
    images/questions/ID.png     the picture each question shows (a variant, or a scene of several entities)
    images/captions/N.png       pictures of random looks, captioned in captions.jsonl (to pre-train seeing on)
    sources/pages.jsonl         the world's web pages (entity pages and distractors), `kb build` input
    sources/images.jsonl        the image collection, `kb build` input
    kb/                         the knowledge base built from sources/, served by the local search engine
    questions/{train,dev,test}.jsonl
    captions.jsonl              image, caption: "colour: red. shape: star. background: cream."

The same seed gives the same files, byte for byte.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deepmmsearch.config import check_at_least
from deepmmsearch.errors import ConfigError
from deepmmsearch.records import write_jsonl
from deepmmsearch.world.draw import captioned_pictures, draw_entity
from deepmmsearch.world.generate import KINDS, PICTURED, Entity, image_description, make_entities, page_text
from deepmmsearch.world.questions import WorldQuestion, questions_for


@dataclass
class WorldConfig:
    """The size and seed of the offline world."""

    seed: int = field(default=0, metadata={"help": "same seed, same world, byte for byte"})
    entities: int = field(
        default=300, metadata={"help": "pictured entities, about 6 questions each; places are added in proportion"}
    )
    unseen_share: float = field(
        default=0.15, metadata={"help": "pictured entities held out of train and dev, asked about only in test"}
    )
    dev_share: float = field(default=0.1, metadata={"help": "questions drawn into the dev split"})
    test_share: float = field(default=0.1, metadata={"help": "questions drawn into the test split"})
    captions: int = field(
        default=3000, metadata={"help": "captioned pictures of random looks, none an entity's (captions.jsonl)"}
    )

    def __post_init__(self) -> None:
        if self.entities < len(PICTURED):  # every category pictured once, persons included (others refer to them)
            raise ConfigError(f"entities must be at least {len(PICTURED)} (one per category), got {self.entities}")
        check_at_least(self, 0, "captions")
        if not (0 <= self.unseen_share < 1 and self.dev_share >= 0 and self.test_share >= 0):
            raise ConfigError("unseen_share must be in [0, 1), dev_share and test_share 0 or more")
        if self.dev_share + self.test_share >= 1:
            raise ConfigError(
                f"dev_share + test_share must leave questions to train on, got {self.dev_share} + {self.test_share}"
            )


def build_world(
    out: str | Path,
    config: WorldConfig | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict:
    """Write the world's files under ``out`` and return a summary (counts per split, skill and category).

    The knowledge base in ``kb/`` is built separately, by :func:`index_world`."""
    config = config or WorldConfig()
    out = Path(out)
    rng = random.Random(config.seed)
    entities = make_entities(rng, config.entities, config.unseen_share)
    pictured = [e for e in entities.values() if e.look is not None]

    pages, images = [], []
    for entity in entities.values():
        url = f"https://world.example/wiki/{entity.title(entities).replace(' ', '_')}"
        pages.append(
            {"id": entity.id, "url": url, "title": entity.title(entities), "text": page_text(entity, entities, rng)}
        )
        if entity.look is not None:
            path = out / "images" / "entities" / f"{entity.id}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            draw_entity(entity.look).save(path)
            images.append(
                {
                    "id": entity.id,
                    "path": f"../images/entities/{entity.id}.png",
                    "page_url": url,
                    "title": entity.title(entities),
                    "description": image_description(entity, entities),
                }
            )
    pages += _distractor_pages(entities)
    write_jsonl(out / "sources" / "pages.jsonl", pages)
    write_jsonl(out / "sources" / "images.jsonl", images)

    splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for i, entity in enumerate(pictured):
        if progress:
            progress("questions", i + 1, len(pictured))
        for question in questions_for(entity, entities, pictured, rng):
            split, label = _split(entity, rng, config)
            path = out / "images" / "questions" / f"{question.id}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            question.image.save(path)
            splits[split].append(_record(question, label))
    for name, records in splits.items():
        write_jsonl(out / "questions" / f"{name}.jsonl", records)

    # Their own random stream: the number of captions leaves the rest of the world as it is.
    captions = []
    for index, (picture, caption) in enumerate(
        captioned_pictures(config.captions, random.Random(f"{config.seed}-captions"))
    ):
        if progress:
            progress("captions", index + 1, config.captions)
        path = out / "images" / "captions" / f"{index:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        picture.save(path)
        captions.append({"image": f"images/captions/{index:05d}.png", "caption": caption})
    write_jsonl(out / "captions.jsonl", captions)

    summary = {
        "seed": config.seed,
        "entities": len(entities),
        "pictured": len(pictured),
        "pages": len(pages),
        "images": len(images),
        "captions": len(captions),
        "questions": {name: len(records) for name, records in splits.items()},
        "skills": dict(Counter(r["skill"] for records in splits.values() for r in records)),
        "test_splits": dict(Counter(r["split"] for r in splits["test"])),
    }
    world = {"summary": summary, "entities": [asdict(e) for e in entities.values()]}
    (out / "world.json").write_text(json.dumps(world, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


def index_world(out: str | Path, show_progress: bool = True) -> dict:
    """Build the world's knowledge base (text and image indexes) in ``kb/`` from ``sources/``."""
    from deepmmsearch.engine.kb import build_kb

    out = Path(out)
    return build_kb(
        out / "sources" / "pages.jsonl",
        out / "kb",
        images=out / "sources" / "images.jsonl",
        show_progress=show_progress,
    )


def _split(entity: Entity, rng: random.Random, config: WorldConfig) -> tuple[str, str]:
    if entity.unseen:
        return "test", "unseen_entity"
    draw = rng.random()
    if draw < config.test_share:
        return "test", "unseen_question"
    if draw < config.test_share + config.dev_share:
        return "dev", "dev"
    return "train", "train"


def _record(question: WorldQuestion, split: str) -> dict:
    return {
        "id": question.id,
        "image": f"../images/questions/{question.id}.png",
        "question": question.question,
        "answers": question.answers,
        "question_type": question.question_type,
        "requires_search": question.requires_search,
        "category": question.category,
        "split": split,
        "skill": question.skill,
        "entity": question.entity,
        "plan": question.plan,
    }


def _distractor_pages(entities: dict[str, Entity]) -> list[dict]:
    """List pages that name many entities of a kind but state no facts: they compete with the real pages."""
    pages = []
    for category, kinds in KINDS.items():
        for kind in kinds:
            members = [e for e in entities.values() if e.kind == kind]
            if not members:
                continue
            names = ", ".join(e.name for e in members)
            pages.append(
                {
                    "id": f"list-{kind}",
                    "url": f"https://world.example/wiki/List_of_{kind}s",
                    "title": f"List of {kind}s",
                    "text": f"This list names notable {kind}s of the {category} kind: {names}. "
                    f"Each has its own article with its history and figures.",
                }
            )
    return pages

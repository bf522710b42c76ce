"""Questions about the offline world, one kind per skill of the paper, each with its image and its plan.

Skills (the ``skill`` field): ``search_free`` (answerable from the picture), ``image_search`` (identify the
pictured entity, then look a fact up), ``crop_search`` (the same, in a scene of several objects), ``multi_hop``
(a fact of an entity the first fact points to) and ``refine`` (the entity shares its name with another, so the
first query on the name alone is ambiguous). ``plan`` tells the oracle teacher what a good episode does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from PIL import Image

from deepmmsearch.world.draw import draw_entity, draw_scene
from deepmmsearch.world.generate import ATTRIBUTES, HOP_QUESTIONS, Attribute, Entity, answers_for, display

POSITIONS = ("on the left", "second from the left", "third from the left", "on the right")
_NUMBER_WORDS = {2: "two", 3: "three", 4: "four"}


@dataclass
class WorldQuestion:
    id: str
    question: str
    answers: list[str]
    question_type: str
    skill: str
    category: str
    entity: str  # id of the entity the question is about
    image: Image.Image
    plan: dict = field(default_factory=dict)

    @property
    def requires_search(self) -> bool:
        return self.skill != "search_free"


def _position(index: int, count: int) -> str:
    if index == 0:
        return "on the left"
    if index == count - 1:
        return "on the right"
    return POSITIONS[index]


def _about(question: str, kind: str, place: str) -> str:
    return question.format(kind=kind).replace(f"this {kind}", f"the {kind} {place}")


def _fact_plan(entity: Entity, attribute: Attribute, entities: dict[str, Entity]) -> dict:
    return {
        "target": entity.name,
        "kind": entity.kind,
        "what": attribute.name.removesuffix("_m")
        .removesuffix("_kg")
        .removesuffix("_cm")
        .removesuffix("_kmh")
        .replace("_", " "),
        "value": display(entities, entity.facts[attribute.name]),
        "ask": attribute.phrase,
        # "<ask> of <page title>", the title as the image search shows it ("Name (Place)" for a namesake: the place
        # tells them apart): each part a copy of one marked line before it (Wanted: / Best match:), with a fixed
        # word between, which a small model learns where a jump from one copied span to another it does not.
        "query": f"{attribute.phrase} of {entity.title(entities)}",
    }


def questions_for(
    entity: Entity, entities: dict[str, Entity], pictured: list[Entity], rng: random.Random
) -> list[WorldQuestion]:
    """About half search-free and half search-required questions about one pictured entity."""
    assert entity.look is not None
    look, out = entity.look, []
    qid = f"{entity.id}"

    def add(
        suffix: str,
        question: str,
        value: str,
        qtype: str,
        skill: str,
        image: Image.Image,
        plan: dict,
        attribute: str = "",
        answers: list[str] | None = None,
    ) -> None:
        out.append(
            WorldQuestion(
                id=f"{qid}-{suffix}",
                question=question,
                answers=answers or answers_for(value, qtype, attribute),
                question_type=qtype,
                skill=skill,
                category=entity.category,
                entity=entity.id,
                image=image,
                plan={"skill": skill, "answer": value, **plan},
            )
        )

    # Search-free: what the picture itself shows.
    add(
        "colour",
        f"What colour is the {look.shape} in this picture?",
        look.colour,
        "string",
        "search_free",
        draw_entity(look, rng),
        {},
    )
    add(
        "shape",
        "What shape is drawn in the middle of this picture?",
        look.shape,
        "string",
        "search_free",
        draw_entity(look, rng),
        {},
    )
    others = rng.sample([e for e in pictured if e.id != entity.id], rng.randint(1, 3))
    tiles = [draw_entity(e.look, rng) for e in [entity, *others]]  # type: ignore[arg-type]
    rng.shuffle(tiles)
    count = len(tiles)
    add(
        "count",
        "How many objects are in this picture?",
        str(count),
        "numerical",
        "search_free",
        draw_scene(tiles, rng),
        {},
        answers=[str(count), _NUMBER_WORDS[count]],
    )

    plain = [a for a in ATTRIBUTES[entity.category] if a.ref is None]
    # Whole-image search, then one text search.
    attribute = rng.choice(ATTRIBUTES[entity.category])
    add(
        "image",
        attribute.question.format(kind=entity.kind),
        display(entities, entity.facts[attribute.name]),
        attribute.question_type,
        "image_search",
        draw_entity(look, rng),
        _fact_plan(entity, attribute, entities),
        attribute.name,
    )

    # Crop-then-search: the entity among others in a scene, named by its place in the row.
    attribute = rng.choice(plain)
    members = [
        entity,
        *rng.sample([e for e in pictured if e.id != entity.id and e.kind != entity.kind], rng.randint(1, 3)),
    ]
    rng.shuffle(members)
    index = members.index(entity)
    where = _position(index, len(members))
    scene = draw_scene([draw_entity(m.look, rng) for m in members], rng)  # type: ignore[arg-type]
    add(
        "crop",
        _about(attribute.question, entity.kind, where),
        entity.facts[attribute.name],
        attribute.question_type,
        "crop_search",
        scene,
        {**_fact_plan(entity, attribute, entities), "crop": f"the {entity.kind} {where}"},
        attribute.name,
    )

    # Multi-hop: a fact of the entity that a fact of this one points to.
    hops = [a for a in ATTRIBUTES[entity.category] if a.ref]
    rng.shuffle(hops)
    for hop in hops:
        ref = entities[entity.facts[hop.name]]
        options = [(ref.category, a) for a in ATTRIBUTES[ref.category] if (ref.category, a.name) in HOP_QUESTIONS]
        if not options:
            continue
        _, second = rng.choice(options)
        question = HOP_QUESTIONS[(ref.category, second.name)].format(hop=hop.hop.format(kind=entity.kind))
        value = ref.facts[second.name]
        plan = {
            **_fact_plan(entity, hop, entities),
            "hop_name": ref.name,
            "hop_ask": second.phrase,
            "hop_query": f"{second.phrase} of {ref.name}",  # as "query": "<ask> of <name>"
        }
        add("hop", question, value, second.question_type, "multi_hop", draw_entity(look, rng), plan, second.name)
        break

    # Refine: the name alone finds two pages; the place tells them apart.
    if entity.twin and entity.place:
        attribute = rng.choice(plain)
        plan = {
            **_fact_plan(entity, attribute, entities),
            "vague_query": entity.name,
            "twin_value": entities[entity.twin].facts[attribute.name],
        }
        add(
            "refine",
            attribute.question.format(kind=entity.kind),
            entity.facts[attribute.name],
            attribute.question_type,
            "refine",
            draw_entity(look, rng),
            plan,
            attribute.name,
        )
    return out

"""The offline world's content: entities with facts, the pages about them, and the questions.

Everything is drawn from one seeded random generator, so a seed gives the same world every time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from deepmmsearch.errors import ConfigError
from deepmmsearch.world.draw import BACKGROUNDS, COLOURS, PATTERNS, SHAPES, Look

PICTURED = ("landmark", "animal", "plant", "artwork", "vehicle", "person")
KINDS = {
    "landmark": ("lighthouse", "bridge", "tower", "gate", "temple", "fort"),
    "animal": ("heron", "lynx", "tortoise", "ibex", "otter", "falcon"),
    "plant": ("lily", "fern", "orchid", "thistle", "cedar", "poppy"),
    "artwork": ("painting", "mural", "tapestry", "sculpture", "fresco", "mosaic"),
    "vehicle": ("locomotive", "airship", "tram", "schooner", "roadster", "glider"),
    "person": ("painter", "architect", "engineer", "composer", "explorer", "botanist"),
}
SYLLABLES = (
    "ka",
    "lo",
    "mer",
    "vin",
    "tas",
    "ro",
    "bel",
    "dor",
    "qui",
    "sa",
    "nel",
    "tor",
    "ven",
    "mi",
    "zar",
    "lin",
    "cor",
    "ath",
    "el",
    "os",
    "fen",
    "gal",
    "hu",
    "ris",
    "pa",
    "dun",
    "mor",
    "wy",
    "ys",
    "tre",
    "bra",
    "col",
)
_FIRST = (
    "Talia",
    "Oren",
    "Mira",
    "Iven",
    "Sela",
    "Dario",
    "Liesl",
    "Caspar",
    "Noor",
    "Elric",
    "Ysolde",
    "Bram",
    "Anouk",
    "Tobiah",
    "Vesna",
    "Quill",
    "Rhea",
    "Soren",
    "Ines",
    "Marek",
)
_DIETS = ("fish", "insects", "seeds", "grass", "fruit", "small mammals")
_MEDIA = ("oil on canvas", "tempera", "glazed tiles", "carved marble", "woven wool", "bronze")
_RIVERS = ("Selwa", "Orun", "Kessel", "Marrow", "Tavi", "Lune", "Brisk", "Velda")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


_CHOICES = {
    "flowering_month": _MONTHS,
    "diet": _DIETS,
    "flower_colour": tuple(COLOURS),
    "medium": _MEDIA,
    "river": _RIVERS,
}


@dataclass(frozen=True)
class Attribute:
    """One fact an entity of a category has. ``ref`` names the category the value points to, for multi-hop."""

    name: str
    question_type: str  # string, numerical or time
    question: str  # asked about the pictured entity; {kind} is the entity's kind
    phrase: str  # how a search query names it
    sentences: tuple[str, ...]  # page sentences; {name} and {value}
    ref: str | None = None
    hop: str = ""  # asked about the referenced entity: "the architect of this {kind}"


ATTRIBUTES: dict[str, tuple[Attribute, ...]] = {
    "landmark": (
        Attribute(
            "year_built",
            "time",
            "In what year was this {kind} built?",
            "built year",
            (
                "{name} was built in {value}.",
                "Construction of {name} was completed in {value}.",
                "{name} dates from {value}.",
            ),
        ),
        Attribute(
            "height_m",
            "numerical",
            "How tall is this {kind}, in metres?",
            "height metres",
            (
                "{name} is {value} metres tall.",
                "{name} rises {value} metres.",
                "The height of {name} is {value} metres.",
            ),
        ),
        Attribute(
            "location",
            "string",
            "In which city does this {kind} stand?",
            "city location",
            ("{name} stands in {value}.", "{name} is located in the city of {value}."),
            ref="place",
            hop="the city where this {kind} stands",
        ),
        Attribute(
            "architect",
            "string",
            "Who designed this {kind}?",
            "architect designed by",
            ("{name} was designed by {value}.", "The architect of {name} was {value}."),
            ref="person",
            hop="the architect who designed this {kind}",
        ),
    ),
    "animal": (
        Attribute(
            "weight_kg",
            "numerical",
            "How much does this {kind} weigh, in kilograms?",
            "weight kilograms",
            ("{name} weighs about {value} kilograms.", "An adult {name} weighs {value} kilograms."),
        ),
        Attribute(
            "lifespan_years",
            "numerical",
            "How many years does this {kind} live?",
            "lifespan years",
            ("{name} lives for about {value} years.", "The lifespan of {name} is {value} years."),
        ),
        Attribute(
            "habitat",
            "string",
            "In which region does this {kind} live?",
            "habitat region",
            ("{name} lives in {value}.", "{name} is found in the wetlands of {value}."),
            ref="place",
            hop="the region where this {kind} lives",
        ),
        Attribute(
            "diet",
            "string",
            "What does this {kind} mainly eat?",
            "diet eats",
            ("{name} feeds mainly on {value}.", "The diet of {name} is mostly {value}."),
        ),
    ),
    "plant": (
        Attribute(
            "height_cm",
            "numerical",
            "How tall does this {kind} grow, in centimetres?",
            "height centimetres",
            ("{name} grows to {value} centimetres.", "{name} reaches a height of {value} centimetres."),
        ),
        Attribute(
            "flowering_month",
            "time",
            "In which month does this {kind} flower?",
            "flowering month",
            ("{name} flowers in {value}.", "{name} blooms every {value}."),
        ),
        Attribute(
            "native_region",
            "string",
            "Where is this {kind} native to?",
            "native region",
            ("{name} is native to {value}.", "{name} originally comes from {value}."),
            ref="place",
            hop="the region this {kind} is native to",
        ),
        Attribute(
            "flower_colour",
            "string",
            "What colour are the flowers of this {kind}?",
            "flower colour",
            ("{name} has {value} flowers.", "The flowers of {name} are {value}."),
        ),
    ),
    "artwork": (
        Attribute(
            "year_made",
            "time",
            "In what year was this {kind} made?",
            "year made",
            ("{name} was made in {value}.", "{name} was completed in {value}."),
        ),
        Attribute(
            "artist",
            "string",
            "Who made this {kind}?",
            "artist made by",
            ("{name} is the work of {value}.", "{name} was made by {value}."),
            ref="person",
            hop="the artist who made this {kind}",
        ),
        Attribute(
            "museum_city",
            "string",
            "In which city is this {kind} displayed?",
            "museum city",
            ("{name} hangs in a museum in {value}.", "{name} is displayed in {value}."),
            ref="place",
            hop="the city where this {kind} is displayed",
        ),
        Attribute(
            "medium",
            "string",
            "What is this {kind} made of?",
            "medium material",
            ("{name} is made of {value}.", "The medium of {name} is {value}."),
        ),
    ),
    "vehicle": (
        Attribute(
            "top_speed_kmh",
            "numerical",
            "What is the top speed of this {kind}, in km/h?",
            "top speed",
            ("{name} has a top speed of {value} km/h.", "{name} can reach {value} km/h."),
        ),
        Attribute(
            "year_introduced",
            "time",
            "In what year was this {kind} introduced?",
            "year introduced",
            ("{name} was introduced in {value}.", "{name} entered service in {value}."),
        ),
        Attribute(
            "maker_city",
            "string",
            "In which city was this {kind} built?",
            "built in city factory",
            ("{name} was built in {value}.", "The factory that built {name} is in {value}."),
            ref="place",
            hop="the city where this {kind} was built",
        ),
        Attribute(
            "designer",
            "string",
            "Who designed this {kind}?",
            "designer designed by",
            ("{name} was designed by {value}.", "The designer of {name} was {value}."),
            ref="person",
            hop="the designer of this {kind}",
        ),
    ),
    "person": (
        Attribute(
            "birth_year",
            "time",
            "In what year was this {kind} born?",
            "born year",
            ("{name} was born in {value}.", "{name}, born in {value}, grew up by the sea."),
        ),
        Attribute(
            "birthplace",
            "string",
            "In which city was this {kind} born?",
            "birthplace city",
            ("{name} was born in the city of {value}.", "{name} came from {value}."),
            ref="place",
            hop="the city where this {kind} was born",
        ),
        Attribute(
            "occupation",
            "string",
            "What was this person's occupation?",
            "occupation",
            ("{name} worked as a {value}.", "{name} was a {value} by trade."),
        ),
    ),
    "place": (
        Attribute(
            "population",
            "numerical",
            "",
            "population",
            ("{name} has a population of {value}.", "About {value} people live in {name}."),
        ),
        Attribute(
            "founded_year",
            "time",
            "",
            "founded year",
            ("{name} was founded in {value}.", "The settlement of {name} dates back to {value}."),
        ),
        Attribute(
            "river",
            "string",
            "",
            "river",
            ("The {value} river flows through {name}.", "{name} lies on the {value} river."),
        ),
    ),
}
# What the second hop asks about a referenced entity, phrased to follow "of".
HOP_QUESTIONS = {
    ("person", "birth_year"): "In what year was {hop} born?",
    ("place", "river"): "Which river flows through {hop}?",
    ("place", "founded_year"): "In what year was {hop} founded?",
}


@dataclass
class Entity:
    id: str
    name: str
    category: str
    kind: str
    facts: dict[str, str] = field(default_factory=dict)  # attribute -> value, refs as entity ids
    look: Look | None = None
    unseen: bool = False  # held out of train and dev
    twin: str | None = None  # id of another entity with the same name

    @property
    def place(self) -> str | None:
        """The id of the place the entity belongs to (where it stands, lives, hangs, was built or born)."""
        return next((v for v in self.facts.values() if v.startswith("place-")), None)

    def title(self, entities: dict[str, Entity]) -> str:
        """Page title; namesakes get their place in brackets, as an encyclopedia would."""
        return f"{self.name} ({entities[self.place].name})" if self.twin and self.place else self.name


def _proper(rng: random.Random, syllables: int = 2) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(syllables)).capitalize()


def _name(rng: random.Random, category: str, kind: str) -> str:
    if category == "person":
        return f"{rng.choice(_FIRST)} {_proper(rng, rng.choice((2, 3)))}"
    if category == "place":
        return _proper(rng, rng.choice((2, 3)))
    if category == "artwork":
        return f"The {_proper(rng)} {kind.capitalize()}"
    return f"{_proper(rng, rng.choice((2, 3)))} {kind.capitalize()}"


def _value(rng: random.Random, category: str, attribute: str) -> str:
    numbers = {
        "height_m": (12, 160),
        "weight_kg": (2, 240),
        "lifespan_years": (4, 90),
        "height_cm": (10, 300),
        "top_speed_kmh": (30, 400),
        "population": (1_000, 900_000),
    }
    if attribute in numbers:
        value = rng.randint(*numbers[attribute])
        return f"{value:,}" if attribute == "population" else str(value)
    if attribute in ("year_built", "year_made", "year_introduced", "founded_year"):
        return str(rng.randint(1200, 1990))
    if attribute == "birth_year":
        return str(rng.randint(1750, 1960))
    return rng.choice(_CHOICES[attribute])


def _looks(rng: random.Random, count: int) -> list[Look]:
    """Looks that differ from each other in at least two of shape, colour, background, pattern and mark colour,
    one of them a main feature, so that no two pictures are near-copies."""
    colours = list(COLOURS)
    chosen: list[tuple[str, str, str, str, str]] = []
    for _ in range(200_000):
        c = (
            rng.choice(SHAPES),
            rng.choice(colours),
            rng.choice(list(BACKGROUNDS)),
            rng.choice(PATTERNS),
            rng.choice(colours),
        )
        if c[4] == c[1]:
            continue
        if all(_distance(c, o) >= 2 for o in chosen):
            chosen.append(c)
            if len(chosen) == count:
                return [Look(s, c, b, p, a, rng.randrange(4)) for s, c, b, p, a in chosen]
    raise ConfigError(f"entities: cannot draw {count} distinct looks; at most {len(chosen)}")


def _distance(a: tuple, b: tuple) -> int:
    main = sum(x != y for x, y in zip(a[:4], b[:4], strict=True))
    return 0 if main == 0 else main + (a[4] != b[4])


def make_entities(rng: random.Random, pictured: int, unseen_share: float = 0.15) -> dict[str, Entity]:
    """``pictured`` entities spread over the categories, plus the places they refer to."""
    entities: dict[str, Entity] = {}
    names: set[str] = set()

    def new(category: str, kind: str, index: int) -> Entity:
        while True:
            name = _name(rng, category, kind)
            if name not in names:
                names.add(name)
                break
        entity = Entity(f"{category}-{index:04d}", name, category, kind)
        entities[entity.id] = entity
        return entity

    places = [new("place", "city", i) for i in range(max(8, pictured // 6))]
    looks = _looks(rng, pictured)
    pictured_entities = []
    for i in range(pictured):
        category = PICTURED[i % len(PICTURED)]
        entity = new(category, rng.choice(KINDS[category]), i)
        entity.look = looks[i]
        pictured_entities.append(entity)
    persons = [e for e in pictured_entities if e.category == "person"]
    for entity in [*places, *pictured_entities]:
        for attribute in ATTRIBUTES[entity.category]:
            if attribute.ref == "place":
                entity.facts[attribute.name] = rng.choice(places).id
            elif attribute.ref == "person":
                entity.facts[attribute.name] = rng.choice(persons).id
            elif attribute.name == "occupation":
                entity.facts[attribute.name] = entity.kind
            else:
                entity.facts[attribute.name] = _value(rng, entity.category, attribute.name)
    # Namesakes: some pictured entities share a name with another of the same category, so that a first query
    # on the name alone is ambiguous and must be refined.
    by_category: dict[str, list[Entity]] = {}
    for entity in pictured_entities:
        by_category.setdefault(entity.category, []).append(entity)
    for group in by_category.values():
        if group[0].category == "person":
            continue
        for a, b in zip(group[0:8:2], group[1:8:2], strict=False):
            b.name, b.kind = a.name, a.kind
            a.twin, b.twin = b.id, a.id
            place_attribute = next(k for k, v in b.facts.items() if v.startswith("place-"))
            b.facts[place_attribute] = rng.choice([p.id for p in places if p.id != a.place])
    held = rng.sample(pictured_entities, round(len(pictured_entities) * unseen_share))
    for entity in held:
        if entity.category != "person":  # persons are hop targets everywhere; keep them seen
            entity.unseen = True
    return entities


def display(entities: dict[str, Entity], value: str) -> str:
    """A fact's value as text: references become the referenced entity's name."""
    return entities[value].name if value in entities else value


def page_text(entity: Entity, entities: dict[str, Entity], rng: random.Random) -> str:
    """An encyclopedia-style page: a lead sentence, then each fact in one of several phrasings."""
    if entity.category == "place":
        lead = f"{entity.name} is a city in the northern provinces."
    else:
        where = ""
        for attribute in ("location", "habitat", "native_region", "museum_city", "maker_city", "birthplace"):
            if attribute in entity.facts:
                where = f" associated with {entities[entity.facts[attribute]].name}"
                break
        lead = f"{entity.name} is a {entity.kind}{where}."
        if entity.look is not None:
            lead += f" It is known for its {entity.look.colour} {entity.look.shape} emblem."
    sentences = [lead]
    for attribute in ATTRIBUTES[entity.category]:
        template = rng.choice(attribute.sentences)
        sentences.append(template.format(name=entity.name, value=display(entities, entity.facts[attribute.name])))
    return " ".join(sentences)


def image_description(entity: Entity, entities: dict[str, Entity]) -> str:
    """What a reverse image search says about the entity's picture: its name, kind and where it belongs."""
    place = entities[entity.place].name if entity.place else None
    where = f" in {place}" if place and entity.category != "person" else ""
    return f"{entity.name}, a {entity.kind}{where}."


def answers_for(value: str, question_type: str, attribute: str) -> list[str]:
    """Acceptable answers: the value and its common aliases."""
    answers = [value]
    if attribute.endswith("_m"):
        answers += [f"{value} metres", f"{value} meters", f"{value} m"]
    elif attribute.endswith("_kg"):
        answers += [f"{value} kilograms", f"{value} kg"]
    elif attribute.endswith("_cm"):
        answers += [f"{value} centimetres", f"{value} centimeters", f"{value} cm"]
    elif attribute.endswith("_kmh"):
        answers += [f"{value} km/h", f"{value} kilometres per hour"]
    elif attribute.endswith("_years"):
        answers += [f"{value} years"]
    elif " " in value and question_type == "string" and value.split()[0] in _FIRST:
        answers.append(value.split()[-1])  # a person's surname alone
    return answers

"""``oracle``: the offline world's teacher. It knows each question's plan (the ``plan`` field the world writes),
handed to it when it is built, but acts only through the protocol and the real tools: it answers only once a tool
result shows the answer.

Like a strong but not flawless teacher it is imperfect on purpose: sometimes it crops when the whole image would
do, sometimes it starts with a vague query and refines it. Both rates are configurable.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from deepmmsearch.errors import PolicyError
from deepmmsearch.policies.base import Conversation, Generation, Policy
from deepmmsearch.protocol import (
    BEST_MATCH,
    GIVE_UP_ANSWER,
    MOST_RELEVANT,
    Action,
    ActionKind,
    render_action,
)
from deepmmsearch.records import Message, Question


@dataclass
class OracleConfig:
    needless_crop: float = field(default=0.05, metadata={"help": "share of whole-image questions it crops anyway"})
    vague_first: float = field(default=0.2, metadata={"help": "share of lookups it starts with the name alone"})
    seed: int = field(default=0, metadata={"help": "its choices are a function of the seed and the question id"})


# The first reply names what the question wants ("Wanted: weight kilograms."), right after the question.
# A searching reply repeats it before quoting the best match, so its query copies both from a few tokens back.
# The repetition opens the reply, never follows a quote: a small model goes on after a copy as it did after the last.
_LOOK = (
    "I do not recognise what the picture shows, so I will run a reverse image search on the whole image.",
    "The picture alone does not tell me what this is; a reverse image search on the whole image should.",
    "To answer I first need to know what is pictured, so I will search with the image.",
)
_CROP = (
    "The question is about {crop}, one of several objects, so I will crop that region and search with it.",
    "Several objects are shown; I will search with a crop of {crop} only.",
)
# Each names the entity as the image search's lead line does ("Best match: <title>"), or as the results list it
# when the best match is something else: a copy a small model learns where a paraphrase is not.
_IDENTIFIED = (
    "{named}. Now I will look up what is wanted.",
    "{named}. I still need what is wanted, so I will search the web.",
    "{named}. Next I will search for what is wanted.",
)
_VAGUE = (
    "{named}. I will first search for the name.",
    "{named}. Let me search for it by name.",
)
_GENERIC = (
    "I will start with a broad search for this kind of thing and narrow it down if needed.",
    "Let me first try a general query.",
)
_HOP = (
    "The result names {hop}. Now I need a fact about {hop}, so I will search for it.",
    "So the answer depends on {hop}; I will look {hop} up next.",
)
_REFINE = (
    "The results do not settle it; I will refine the query with more specific words.",
    "That search was not specific enough. I will search again with a refined query.",
)
_ANSWER = (
    "The search result states it: the answer is {answer}.",
    "The information says {answer}, which answers the question.",
    "According to the results, it is {answer}.",
)
_FREE = (
    "The picture itself shows the answer, so no search is needed: {answer}.",
    "I can see this directly in the image: {answer}.",
)
_GIVE_UP = (
    "The searches did not turn up the information I need, so I cannot answer reliably.",
    "Nothing in the results answers the question.",
)


def plans_of(questions: Iterable[Question]) -> dict[str, dict]:
    """The plans of the world questions among ``questions``, by question id."""
    return {q.id: q.extra["plan"] for q in questions if q.extra.get("plan")}


class OraclePolicy(Policy):
    """Plays each world question by its plan, through the real tools. ``plans`` maps question ids to plans (see
    :func:`plans_of`); no other policy is told them."""

    name = "oracle"
    max_batch_size = 256

    def __init__(self, plans: Mapping[str, dict], config: OracleConfig | None = None) -> None:
        self.plans = plans
        self.config = config or OracleConfig()

    async def generate(self, conversations: Sequence[Conversation]) -> list[Generation]:
        return [Generation(text=self._reply(c), finish_reason="stop") for c in conversations]

    def _reply(self, conversation: Conversation) -> str:
        question_id = conversation.question_id
        plan = self.plans.get(question_id)
        if not plan:
            raise PolicyError(
                f"the oracle has no plan for question {question_id!r}: it plays only offline-world questions "
                "(records with a 'plan' field)"
            )
        rng = random.Random(f"{self.config.seed}:{question_id}:{_turn(conversation.messages)}")
        decide = random.Random(f"{self.config.seed}:{question_id}")  # the same choices at every turn of an episode
        crop_anyway = decide.random() < self.config.needless_crop
        vague_first = decide.random() < self.config.vague_first
        return render_action(
            self._next(plan, conversation.messages, conversation.answer_only, rng, crop_anyway, vague_first)
        )

    def _next(
        self,
        plan: dict,
        messages: list[Message],
        answer_only: bool,
        rng: random.Random,
        crop_anyway: bool,
        vague_first: bool,
    ) -> Action:
        skill = plan["skill"]
        if skill == "search_free":
            return Action(ActionKind.ANSWER, plan["answer"], rng.choice(_FREE).format(answer=plan["answer"]))
        if answer_only:
            # A tool-free workflow (direct answer, or RAG with fixed searches): the oracle is only a reader.
            context = "\n".join(m.text for m in messages if m.role == "user")
            if _mentions(context, plan["answer"]):
                return Action(ActionKind.ANSWER, plan["answer"], rng.choice(_ANSWER).format(answer=plan["answer"]))
            return _give_up(rng)
        done = [
            (m.action, messages[i + 1].text if i + 1 < len(messages) else "")
            for i, m in enumerate(messages)
            if m.role == "assistant" and m.action is not None
        ]
        if not done:
            wanted = f"{_wanted(plan)} "
            if skill == "multi_hop":  # the second ask too, near the question, for the hop's query to copy
                wanted += f"{_then(plan)} "
            if skill == "crop_search":
                reason = wanted + rng.choice(_CROP).format(crop=plan["crop"])
                return Action(ActionKind.CROP_SEARCH, plan["crop"], reason)
            if crop_anyway:
                crop = "the object in the centre"
                return Action(ActionKind.CROP_SEARCH, crop, wanted + rng.choice(_CROP).format(crop=crop))
            return Action(ActionKind.IMAGE_SEARCH, "", wanted + rng.choice(_LOOK))

        target = plan["target"]
        last_action, last_seen = done[-1]
        queries = [a.query for a, _ in done if a.kind is ActionKind.TEXT_SEARCH]
        what = plan.get("what", "facts")
        if last_action.kind.is_image:
            if not _mentions(last_seen, target):
                return _give_up(rng)
            named = _named(last_seen, target)
            if skill == "refine":  # the name alone: a namesake makes it ambiguous
                return Action(ActionKind.TEXT_SEARCH, plan["vague_query"], rng.choice(_VAGUE).format(named=named))
            if vague_first:  # a generic query that forgets the name; the refined one follows
                return Action(ActionKind.TEXT_SEARCH, f"{plan['kind']} {what}", rng.choice(_GENERIC))
            # A multi-hop reply repeats the second ask too, so that the hop's reply copies it from one turn back.
            wanted = f"{_wanted(plan)} {_then(plan)}" if skill == "multi_hop" else _wanted(plan)
            reason = f"{wanted} {rng.choice(_IDENTIFIED).format(named=named)}"
            return Action(ActionKind.TEXT_SEARCH, plan["query"], reason)

        if skill == "multi_hop" and plan["hop_query"] not in queries:
            if _mentions(last_seen, plan["hop_name"]):
                # Quote the lead line that names the next entity, then name it after a mark, as for answers.
                hop = plan["hop_name"]
                quoted = _lead(last_seen, MOST_RELEVANT, hop)
                reason = f"{quoted} Next: {hop}." if quoted else rng.choice(_HOP).format(hop=hop)
                return Action(ActionKind.TEXT_SEARCH, plan["hop_query"], f"{_then(plan)} {reason}")
            return self._refine_or_give_up(plan["query"], queries, rng, _wanted(plan))
        answer = plan["answer"]
        twin = plan.get("twin_value")
        # After the name alone, a namesake's page may answer too: then only a refined query settles it.
        ambiguous = (
            last_action.query == plan.get("vague_query") and twin and twin != answer and _mentions(last_seen, twin)
        )
        if _mentions(last_seen, answer) and not ambiguous:
            quoted = _lead(last_seen, MOST_RELEVANT, answer)
            reason = f"{quoted} So the answer is {answer}." if quoted else rng.choice(_ANSWER).format(answer=answer)
            return Action(ActionKind.ANSWER, answer, reason)
        if skill == "multi_hop":
            return self._refine_or_give_up(plan["hop_query"], queries, rng, _then(plan))
        return self._refine_or_give_up(plan["query"], queries, rng, _wanted(plan))

    def _refine_or_give_up(self, query: str, asked: list[str], rng: random.Random, wanted: str) -> Action:
        for candidate in (query, f"{query} facts"):
            if candidate not in asked:
                return Action(ActionKind.TEXT_SEARCH, candidate, f"{wanted} {rng.choice(_REFINE)}")
        return _give_up(rng)


def _wanted(plan: dict) -> str:
    return f"Wanted: {plan.get('ask', 'facts')}."


def _then(plan: dict) -> str:
    return f"Then: {plan['hop_ask']}."


def _give_up(rng: random.Random) -> Action:
    return Action(ActionKind.ANSWER, GIVE_UP_ANSWER, rng.choice(_GIVE_UP))


def _named(result: str, target: str) -> str:
    """How the reply names the target: the image search's best match quoted when that is it, else the target."""
    return _lead(result, BEST_MATCH, target) or f"The results show {target}"


def _lead(result: str, prefix: str, phrase: str) -> str | None:
    """The result's line that starts with ``prefix`` (a lead line), if it mentions ``phrase``."""
    for line in result.splitlines():
        if line.startswith(prefix) and _mentions(line, phrase):
            return line.strip()
    return None


def _turn(messages: list[Message]) -> int:
    return sum(m.role == "assistant" for m in messages)


def _mentions(text: str, phrase: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(phrase.lower()) + r"(?!\w)", text.lower()) is not None

"""SFT augmentations that make copying from the search results the only way to get a conversation right.

**Name swapping.**
The teacher's conversations name a few hundred entities, each several times. A small model trained on them
learns the names by heart (which entity goes with which picture, fact and place) instead of reading them out of
the tool results, and then fails on any entity it has not memorised. Swapping every made-up name of a
conversation for another one, consistently across its turns, keeps the conversation coherent (the query still
repeats what the image search returned, the answer what the page said) while breaking every association that
could be memorised. Each pass over the data draws new names, so no swapped name/fact pairing is seen twice.

**Answer swapping.** The model also learns the answers by heart, and writes them in place of the ones it has just
read ("Most relevant: The flowers of Kacormor Thistle are purple." then "pink", the colour a train conversation
gave another Kacormor Thistle). Swapping the answer a conversation's tool results gave for another value of its
kind, in every result and reply, teaches that the result is right whatever was memorized: the counterfactual
substitution of Longpre et al. (2021), "Entity-Based Knowledge Conflicts in Question Answering".
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence

from deepmmsearch.protocol import GIVE_UP_ANSWER
from deepmmsearch.world.generate import SYLLABLES

_PIECES = sorted(SYLLABLES, key=len, reverse=True)  # longest first: a regex alternation takes the first that fits
# A made-up proper word of the offline world: two or three syllables, the first capitalised (Risbel, Dorystor).
PROPER_WORD = re.compile(
    r"(?<![A-Za-z])(?:{})(?:{}){{1,2}}(?![a-z])".format("|".join(p.capitalize() for p in _PIECES), "|".join(_PIECES))
)


def proper_words(texts: Iterable[str]) -> list[str]:
    """The distinct made-up proper words in ``texts``, sorted (the pool names are swapped from)."""
    return sorted({word for text in texts for word in PROPER_WORD.findall(text)})


def swap_names(texts: list[str], pool: list[str], rng: random.Random) -> list[str]:
    """``texts`` (the turns of one conversation) with each proper word replaced by another from ``pool``, the same
    word by the same replacement everywhere and two different words never by the same one."""
    found = proper_words(texts)
    if not found or len(pool) < len(found):
        return texts
    mapping = dict(zip(found, rng.sample(pool, len(found)), strict=True))
    return [PROPER_WORD.sub(lambda m: mapping[m.group(0)], text) for text in texts]


_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_INFORMATION = re.compile(r"<information>.*?</information>", re.DOTALL)


def final_answer(texts: Sequence[str]) -> str | None:
    """The answer the last turn of a conversation gives, or None (no answer, or the give-up answer)."""
    found = _ANSWER.search(texts[-1]) if texts else None
    answer = found.group(1).strip() if found else ""
    return answer if answer and answer != GIVE_UP_ANSWER else None


def _shape(value: str) -> tuple[int, bool, bool]:
    # Swapped values keep their kind (a name for a name, a material for a material) as far as its form tells.
    return len(value.split()), value[:1].isupper(), any(ch.isdigit() for ch in value)


def swap_answer(texts: list[str], kinds: list[str], pool: list[str], rng: random.Random) -> list[str]:
    """``texts`` (the turns of one conversation, each of ``kinds`` prompt, tool_result or generation) with its final
    answer replaced by another value wherever it stands: in the replies and inside the tool results'
    ``<information>`` blocks (not in the instructions around them). A number becomes a random number of as many
    digits, anything else another value of ``pool`` of the same shape (words, capital, digits). Unchanged when the
    answer was not read from a tool result (a picture's colour), when the prompt names it, or when nothing fits."""
    answer = final_answer(texts)
    if answer is None:
        return texts
    pattern = re.compile(rf"(?<!\w){re.escape(answer)}(?!\w)")
    prompts = [t for t, k in zip(texts, kinds, strict=True) if k == "prompt"]
    results = [t for t, k in zip(texts, kinds, strict=True) if k == "tool_result"]
    read = any(pattern.search(block) for t in results for block in _INFORMATION.findall(t))
    if not read or any(pattern.search(t) for t in prompts):
        return texts
    # A value the conversation already holds would make two facts one (the river named after the city searched).
    whole = "\n".join(texts)
    if answer.isdigit():
        low = 10 ** (len(answer) - 1) if len(answer) > 1 else 0
        fits = [str(rng.randrange(low, 10 ** len(answer))) for _ in range(5)]
    else:
        fits = rng.sample(pool, len(pool))
    new = next(
        (v for v in fits if _shape(v) == _shape(answer) and not re.search(rf"(?<!\w){re.escape(v)}(?!\w)", whole)), None
    )
    if new is None:
        return texts

    def swapped(text: str, kind: str) -> str:
        if kind == "generation":
            return pattern.sub(new, text)
        if kind == "tool_result":
            return _INFORMATION.sub(lambda block: pattern.sub(new, block.group(0)), text)
        return text

    return [swapped(t, k) for t, k in zip(texts, kinds, strict=True)]

"""Name swapping: an SFT augmentation that makes copying from search results the only way to get names right.

The teacher's conversations name a few hundred entities, each several times. A small model trained on them
learns the names by heart (which entity goes with which picture, fact and place) instead of reading them out of
the tool results, and then fails on any entity it has not memorised. Swapping every made-up name of a
conversation for another one, consistently across its turns, keeps the conversation coherent (the query still
repeats what the image search returned, the answer what the page said) while breaking every association that
could be memorised. Each pass over the data draws new names, so no swapped name/fact pairing is seen twice.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

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

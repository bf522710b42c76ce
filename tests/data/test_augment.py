import random

import pytest

from deepmmsearch.data.augment import PROPER_WORD, proper_words, swap_names

TURNS = [
    "Question: Where is this ibex native to?",
    "Risbel Ibex (Bratasro) (https://world.example/wiki/Risbel_Ibex_(Bratasro)): Risbel Ibex, a ibex in Bratasro.\n"
    "Tobiah Osbraris (https://world.example/wiki/Tobiah_Osbraris): Tobiah Osbraris, a composer.",
    "<reason>This is Risbel Ibex.</reason>\n<text_search>Risbel Ibex Bratasro habitat</text_search>",
    "<reason>The information says Bratasro.</reason>\n<answer>Bratasro</answer>",
]


def test_proper_words_are_the_made_up_names_only() -> None:
    assert proper_words(TURNS) == ["Bratasro", "Osbraris", "Risbel"]
    for word in ("Question", "The", "Tobiah", "Ibex", "Reason", "According", "Lune"):
        assert not PROPER_WORD.fullmatch(word), word


def test_swap_is_consistent_across_turns_and_one_to_one() -> None:
    pool = ["Kalo", "Merzar", "Quitre", "Venmi", "Dunpa"]
    swapped = swap_names(TURNS, pool, random.Random(0))
    mapping = {}
    for before, after in zip(TURNS, swapped, strict=True):
        for old, new in zip(PROPER_WORD.findall(before), PROPER_WORD.findall(after), strict=True):
            assert mapping.setdefault(old, new) == new  # the same name becomes the same name everywhere
    assert set(mapping) == {"Bratasro", "Osbraris", "Risbel"}
    assert len(set(mapping.values())) == 3 and set(mapping.values()) <= set(pool)
    # Everything but the names is kept: the question, the kind words, the protocol tags.
    assert swapped[0] == TURNS[0]
    assert swapped[3] == TURNS[3].replace("Bratasro", mapping["Bratasro"])
    new = mapping["Risbel"]
    assert f"<text_search>{new} Ibex {mapping['Bratasro']} habitat</text_search>" in swapped[2]
    # Different draws give different names: nothing about one pairing can be memorised.
    draws = {tuple(swap_names(TURNS, pool, random.Random(seed))) for seed in range(10)}
    assert len(draws) > 5


def test_too_small_a_pool_leaves_the_conversation_as_it_was() -> None:
    assert swap_names(TURNS, ["Kalo"], random.Random(0)) == TURNS
    assert swap_names(["no names here"], ["Kalo"], random.Random(0)) == ["no names here"]


def test_the_sft_config_takes_a_share_from_0_to_1() -> None:
    from deepmmsearch.train.config import TrainSFTConfig

    assert TrainSFTConfig(swap_names=0.5).swap_names == 0.5
    for bad in (-0.1, 2):
        with pytest.raises(ValueError, match="swap_names"):
            TrainSFTConfig(swap_names=bad)

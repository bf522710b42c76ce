import random

import pytest

from deepmmsearch.data.augment import PROPER_WORD, final_answer, proper_words, swap_answer, swap_names

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
    for name in ("swap_names", "swap_answers"):
        for bad in (-0.1, 2):
            with pytest.raises(ValueError, match=name):
                TrainSFTConfig(**{name: bad})


# A search conversation whose answer (purple) was read from a result; "8" stands in the instruction around it.
SEARCHED = [
    "You answer questions about an image.",
    "Tool calls left: 10.\nQuestion: What colour are the flowers of this thistle?",
    "<reason>Wanted: flower colour.</reason>\n<text_search>flower colour of Kacormor Thistle</text_search>",
    "Tool calls left: 8.\n<information>\nKacormor Thistle: The flowers of Kacormor Thistle are purple. It is purpled."
    "\nMost relevant: The flowers of Kacormor Thistle are purple.\n</information>",
    "<reason>Most relevant: The flowers of Kacormor Thistle are purple. So the answer is purple.</reason>\n"
    "<answer>purple</answer>",
]
KINDS = ["prompt", "prompt", "generation", "tool_result", "generation"]


def test_answer_swap_replaces_the_read_answer_everywhere_and_nothing_else() -> None:
    swapped = swap_answer(SEARCHED, KINDS, ["pink", "Galmer", "red star", "purple"], random.Random(0))
    assert final_answer(swapped) == "pink"  # the only other one-word lower-case value
    assert swapped[:3] == SEARCHED[:3]
    assert swapped[3] == SEARCHED[3].replace("are purple.", "are pink.")  # "purpled" is another word
    assert "Most relevant: The flowers of Kacormor Thistle are pink. So the answer is pink." in swapped[4]


def test_a_numeric_answer_becomes_another_number_of_as_many_digits_but_not_in_the_instructions() -> None:
    turns = [t.replace("purple", "8") for t in SEARCHED]
    draws = {final_answer(swap_answer(turns, KINDS, [], random.Random(seed))) for seed in range(20)}
    assert "8" not in draws and len(draws) > 3 and all(len(d) == 1 and d.isdigit() for d in draws)
    swapped = swap_answer(turns, KINDS, [], random.Random(0))
    assert swapped[3].startswith("Tool calls left: 8.") and "are 8." not in swapped[3]
    year = [t.replace("purple", "1766") for t in SEARCHED]
    assert all(
        len(d) == 4 and d[0] != "0"
        for s in range(20)
        if (d := final_answer(swap_answer(year, KINDS, [], random.Random(s))))
    )


def test_answers_not_read_from_a_result_are_left_alone() -> None:
    seen = [SEARCHED[0], SEARCHED[1], "<reason>The picture shows it: purple.</reason>\n<answer>purple</answer>"]
    assert swap_answer(seen, ["prompt", "prompt", "generation"], ["pink"], random.Random(0)) == seen
    asked = [SEARCHED[0], SEARCHED[1] + " Is it purple?", *SEARCHED[2:]]
    assert swap_answer(asked, KINDS, ["pink"], random.Random(0)) == asked  # the question names it
    assert swap_answer(SEARCHED, KINDS, ["Galmer", "purple"], random.Random(0)) == SEARCHED  # nothing of its shape
    held = [*SEARCHED[:3], SEARCHED[3].replace("It is purpled.", "Its leaves are green."), SEARCHED[4]]
    assert swap_answer(held, KINDS, ["green"], random.Random(0)) == held  # a value the conversation holds already
    gave_up = [*SEARCHED[:4], "<answer>Unable to answer due to lack of relevant information</answer>"]
    assert final_answer(gave_up) is None and swap_answer(gave_up, KINDS, ["pink"], random.Random(0)) == gave_up

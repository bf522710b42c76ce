"""The judges, including the official scripts' edge cases."""

from __future__ import annotations

import pytest

from deepmmsearch.errors import ConfigError
from deepmmsearch.eval.judges import (
    METRICS,
    aokvqa_direct_answer_accuracy,
    get_judge,
    infoseek_gold_numbers,
    infoseek_numerical_match,
    infoseek_process_numerical_answer,
    judge_answer,
    judge_aokvqa,
    judge_encyclopedic_vqa,
    judge_exact,
    judge_infoseek,
    judge_vqa,
    normalize,
    parse_date,
    vqa_accuracy,
    vqa_process_digit_article,
    vqa_process_punctuation,
)
from deepmmsearch.protocol import GIVE_UP_ANSWER
from deepmmsearch.records import Question


def q(*answers: str, **kw) -> Question:
    return Question("q", "img.png", "question?", list(answers), **kw)


# ---------------------------------------------------------------------------------------------- exact


def test_normalize_drops_case_punctuation_and_articles() -> None:
    assert normalize("  The  Eiffel-Tower! ") == "eiffeltower"
    assert normalize("An apple, a day") == "apple day"


def test_exact_matches_any_answer_or_alias() -> None:
    question = q("Eiffel Tower", answer_eval=["Tour Eiffel"], extra={"aliases": ["La dame de fer"]})
    assert judge_exact("the eiffel tower.", question).correct
    assert judge_exact("Tour Eiffel", question).correct
    assert judge_exact("la dame de fer", question).correct
    assert not judge_exact("Eiffel Tower in Paris", question).correct
    assert not judge_exact(None, question).correct
    assert not judge_exact(GIVE_UP_ANSWER, q(GIVE_UP_ANSWER)).correct  # giving up is never right


# ---------------------------------------------------------------------------------------------- rule


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        ("The Eiffel Tower", "Eiffel Tower"),  # articles, case
        ("Eiffel Tower, in Paris", "Eiffel Tower"),  # an alias inside a short answer
        ("forty two", "42"),  # number words
        ("38 metres", "38 m"),
        ("30-40 m", "38 m"),  # a range that contains the gold
        ("between 30 and 40 metres", "38 m"),
        ("38.4", "38"),  # rounding
        ("38", "38.4"),
        ("125 feet", "38 metres"),  # length
        ("2.2 lb", "1 kg"),  # mass
        ("1 km²", "100 hectares"),  # area
        ("2 litres", "2000 ml"),  # volume
        ("100 °F", "37.8 °C"),  # temperature, affine
        ("2 hours", "120 minutes"),  # duration
        ("1.5 million", "1,500,000"),
        ("3 May 1871", "May 3, 1871"),  # dates in other formats
        ("1871-05-03", "3 May 1871"),
        ("May 3, 1871", "1871"),  # more precise than the gold is fine
        ("in 1871", "1871"),
    ],
)
def test_rule_accepts(prediction: str, gold: str) -> None:
    result = judge_answer(prediction, q(gold))
    assert result.correct and result.score == 1.0, result


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        ("between 40 and 50 metres", "38 m"),  # a range that excludes the gold
        ("40-50", "38"),
        ("1870", "1871"),  # years are not rounded
        ("45 m", "38 m"),
        ("38 kg", "38 m"),  # different dimensions
        ("1871", "3 May 1871"),  # less precise than the gold
        ("4 May 1871", "3 May 1871"),
        ("not Paris", "Paris"),  # negation
        ("Paris or London", "Paris"),  # a hedge between options
        ("London", "Paris"),
        (GIVE_UP_ANSWER, "Paris"),
        ("", "Paris"),
    ],
)
def test_rule_rejects(prediction: str, gold: str) -> None:
    result = judge_answer(prediction, q(gold))
    assert not result.correct and result.score == 0.0, result


def test_rule_is_the_default_metric_and_registry_lists_names() -> None:
    assert METRICS["rule"] is judge_answer
    with pytest.raises(ConfigError, match="known: exact, rule, vqa, aokvqa, infoseek, encyclopedic_vqa, llm"):
        get_judge("bleu")


def test_parse_date_reports_granularity() -> None:
    assert parse_date("3 May 1871") == (1871, 5, 3)
    assert parse_date("May 1871") == (1871, 5, None)
    assert parse_date("1871") == (1871, None, None)
    assert parse_date("red") is None


# ---------------------------------------------------------------------------------------------- vqa


def test_vqa_punctuation_rules_of_the_official_script() -> None:
    assert vqa_process_punctuation("yes.") == "yes"  # a period not followed by a digit goes
    assert vqa_process_punctuation("3.5") == "3.5"  # a decimal point stays
    assert vqa_process_punctuation("t-shirt") == "t shirt"  # punctuation inside a word becomes a space
    assert vqa_process_punctuation("hello , world") == "hello  world"  # next to a space it is dropped
    assert vqa_process_punctuation("1,000 people") == "1000 people"  # a digit comma anywhere: dropped everywhere
    assert vqa_process_punctuation("don't") == "don't"  # the apostrophe is not in the list
    # The official call passes re.UNICODE (32) as the count: only the first 32 periods go.
    assert vqa_process_punctuation("." * 40) == "." * 8


def test_vqa_digits_articles_contractions() -> None:
    assert vqa_process_digit_article("Two Dogs") == "2 dogs"
    assert vqa_process_digit_article("none") == "0"
    assert vqa_process_digit_article("the a an cat") == "cat"
    assert vqa_process_digit_article("dont know") == "don't know"
    assert vqa_process_digit_article("eleven") == "eleven"  # only zero..ten are mapped


def test_vqa_accuracy_is_leave_one_out_min_matches_over_three() -> None:
    assert vqa_accuracy("2", ["2"] * 10) == 1.0
    # 2 of 10 say "2": leaving one of them out leaves 1 match (1/3), leaving another out leaves 2 (2/3).
    assert vqa_accuracy("2", ["2"] * 2 + ["3"] * 8) == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10)
    assert vqa_accuracy("two", ["2"] * 3 + ["3"] * 7) == pytest.approx((3 * (2 / 3) + 7 * 1) / 10)
    assert vqa_accuracy("a Dog.", ["dog"] * 4 + ["cat"] * 6) == 1.0
    assert vqa_accuracy("cow", ["dog"] * 10) == 0.0


def test_vqa_normalizes_answers_and_prediction_only_when_annotators_disagree() -> None:
    # All ten agree on "t-shirt": neither side is processed, so the verbatim prediction matches.
    assert vqa_accuracy("t-shirt", ["t-shirt"] * 10) == 1.0
    assert vqa_accuracy("Yes", ["yes"] * 10) == 0.0  # not even lower-cased
    # Once they disagree, both sides get punctuation and digit/article processing, and "two" meets "2".
    assert vqa_accuracy("t-shirt", ["t-shirt"] * 9 + ["shirt"]) == 1.0
    assert vqa_accuracy("2", ["two"] * 3 + ["3"] * 7) == pytest.approx(0.9)


# (prediction, the ten answers, accuracy): the accuracy is what GT-Vision-Lab/VQA
# PythonEvaluationTools/vqaEvaluation/vqaEval.py at commit a013f00 ("Fixed processing answers bug", 2021-03-11)
# computed for these cases, run unmodified under Python 2.7.
VQA_OFFICIAL_CASES = [
    ("t-shirt", ["t-shirt"] * 10, 1.0),
    ("t shirt", ["t-shirt"] * 10, 0.0),
    ("two", ["2"] * 10, 0.0),
    ("Yes", ["yes"] * 10, 0.0),
    ("dog.", ["dog"] * 10, 0.0),
    (" tennis\n", ["tennis"] * 10, 1.0),
    ("t-shirt", ["t-shirt"] * 9 + ["shirt"], 1.0),
    ("2", ["two"] * 3 + ["3"] * 7, 0.9),
    ("a Dog.", ["the dog"] * 4 + ["cat"] * 6, 1.0),
    ("1000", ["1,000"] * 3 + ["1000"] * 7, 1.0),
    ("dont know", ["don't know"] * 3 + ["dunno"] * 7, 0.9),
    ("zero", ["0"] * 2 + ["none"] * 2 + ["1"] * 6, 1.0),
    ("Tennis", ["tennis"] * 2 + ["golf"] * 8, 0.6),
    ("tennis", ["tennis"] + ["golf"] * 9, 0.3),
    ("3.5", ["3.5"] * 3 + ["3"] * 7, 0.9),
    ("black / white", ["black/white"] * 3 + ["black and white"] * 7, 0.9),
    ("green", ["red"] * 3 + ["blue"] * 7, 0.0),
    ("Hydrant", ["fire hydrant"] * 2 + ["hydrant"] * 2 + ["water"] * 2 + ["fire hydrant"] * 2 + ["hydrant"] * 2, 1.0),
    ("a.\u0663", ["a\u0663"] * 5 + ["b"] * 5, 1.0),  # \d is ASCII-only under Python 2: the period goes
]


@pytest.mark.parametrize(("prediction", "answers", "expected"), VQA_OFFICIAL_CASES)
def test_vqa_accuracy_equals_the_official_script(prediction: str, answers: list[str], expected: float) -> None:
    assert vqa_accuracy(prediction, answers) == pytest.approx(expected, abs=1e-12)


def test_judge_vqa_uses_answers() -> None:
    result = judge_vqa("Tennis", q(*(["tennis"] * 2 + ["badminton"] * 8)))
    assert result.correct and 0 < result.score < 1


# ---------------------------------------------------------------------------------------------- infoseek


def test_infoseek_numerical_parsing_of_the_official_script() -> None:
    assert infoseek_process_numerical_answer("about 1,234.5 m") == 1234.5
    assert infoseek_process_numerical_answer("9-10") == [9.0, 10.0]
    assert infoseek_process_numerical_answer("between 30 and 40") == [30.0, 40.0]
    assert infoseek_process_numerical_answer("40 to 30") == 40.0  # decreasing: the first number
    assert infoseek_process_numerical_answer("no idea") == [0.0, 0.0]


def test_infoseek_tolerance_and_ranges() -> None:
    assert infoseek_numerical_match(38.0, 35.0)  # within +10% of a single gold value
    assert not infoseek_numerical_match(39.0, 35.0)  # 11% off
    assert infoseek_numerical_match(31.5, 35.0)  # -10% inclusive
    assert infoseek_numerical_match([35.0, 40.0], [34.2, 41.8])  # a range inside the gold range
    assert infoseek_numerical_match([33.0, 41.0], [34.2, 41.8])  # sticks out, but IoU 6.8/8.8 >= 0.5
    assert not infoseek_numerical_match([30.0, 40.0], [34.2, 41.8])  # IoU 5.8/11.8 < 0.5


def test_infoseek_judge_by_question_type() -> None:
    numerical = q("38", answer_eval=["34.2", "41.8"], question_type="numerical")
    assert judge_infoseek("about 40 metres", numerical).correct
    assert not judge_infoseek("45", numerical).correct
    native = q("38", answer_eval=[{"wikidata": 38.0, "range": [34.2, 41.8]}], question_type="Numerical")
    assert judge_infoseek("38", native).correct
    string = q("Vellmar", answer_eval=["Vellmar", "Province of Vellmar"], question_type="string")
    assert judge_infoseek("the province of Vellmar", string).correct
    assert not judge_infoseek("Vellmar coast", string).correct  # exact match only, no containment
    time = q("1871", answer_eval=["1871"], question_type="time")
    assert judge_infoseek("1871", time).correct
    assert not judge_infoseek("May 1871", time).correct  # the official time metric is exact match too


@pytest.mark.parametrize("answer_eval", [{"wikidata": 120.0, "range": [108.0, 132.0]}, ["108.0", "132.0"]])
def test_infoseek_numerical_gold_in_every_released_shape(answer_eval) -> None:
    question = q("120", answer_eval=answer_eval, question_type="numerical")
    assert infoseek_gold_numbers(question) == [108.0, 132.0]
    assert judge_infoseek("125", question).correct and not judge_infoseek("150", question).correct
    listed = q("120", answer_eval=[{"wikidata": 120.0, "range": [108.0, 132.0]}, {"range": [1.0, 2.0]}])
    assert infoseek_gold_numbers(listed) == [108.0, 132.0]  # the first item, as the official script reads it
    assert infoseek_gold_numbers(q("38", answer_eval=[{"wikidata": 38.0}])) == 38.0  # no range: +/-10% of the value


def test_infoseek_strings_are_normalized_as_the_official_script() -> None:
    # The official normalization removes ASCII punctuation only: a curly apostrophe stays.
    question = q("Côte d’Ivoire", answer_eval=["Côte d’Ivoire"], question_type="string")
    assert not judge_infoseek("Côte d'Ivoire", question).correct
    assert judge_infoseek("côte d’ivoire.", question).correct


# ---------------------------------------------------------------------------------------------- aokvqa

# (prediction, direct_answers, accuracy): what allenai/aokvqa evaluation/eval_predictions.py (eval_aokvqa, commit
# 83786de) gives for each case alone; a None prediction is a question missing from the predictions file.
AOKVQA_OFFICIAL_CASES = [
    ("dog", ["dog"] * 10, 1.0),
    ("dog", ["dog"] * 2 + ["cat"] * 8, 2 / 3),
    ("dog", ["dog"] + ["cat"] * 9, 1 / 3),
    ("Dog", ["dog"] * 3 + ["cat"] * 7, 0.0),  # compared verbatim
    ("dog ", ["dog"] * 3 + ["cat"] * 7, 0.0),
    (None, ["dog"] * 10, 0.0),
    ("2", ["two"] * 4 + ["2"] * 6, 1.0),
    ("dog", ["the dog"] * 5 + ["dog"] * 5, 1.0),
]


@pytest.mark.parametrize(("prediction", "answers", "expected"), AOKVQA_OFFICIAL_CASES)
def test_aokvqa_equals_the_official_script(prediction: str | None, answers: list[str], expected: float) -> None:
    result = judge_aokvqa(prediction, q(*answers))
    assert result.score == pytest.approx(expected) and result.correct == (expected > 0)
    if prediction is not None:
        assert aokvqa_direct_answer_accuracy(prediction, answers) == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------- encyclopedic_vqa

# (prediction, answers, question_type, score): the exact-match stage (exact_match_scoring_function, the max over the
# answers) of google-research/google-research encyclopedic_vqa/evaluation_utils.py (read at commit 5b09c22d).
EVQA_OFFICIAL_CASES = [
    ("Menger family", ["the Menger family"], "automatic", 1.0),
    ("1872.", ["1871", "1872"], "templated", 1.0),
    ("The answer is Paris", ["Paris"], "templated", 1.0),
    ("three", ["3"], "templated", 1.0),
    ("True", ["yes"], "templated", 1.0),
    ("Cote d'Ivoire", ["Côte d’Ivoire"], "templated", 0.0),
    ("Côte d'Ivoire", ["Côte d’Ivoire"], "templated", 1.0),
    ("William and Mary Menger", ["the Menger family"], "automatic", 0.0),
    ("red and white", ["red&&white"], "multi_answer", 1.0),
    ("red", ["red&&white"], "multi_answer", 1.0),  # IoU 1/2 reaches the official 0.5 threshold
    ("red", ["red&&white&&blue"], "multi_answer", 0.0),
    ("white, blue", ["red&&white&&blue"], "multi_answer", 1.0),
    ("red, white, blue, green, black", ["red&&white"], "multi_answer", 0.0),
    ("Oak & Ash", ["oak&&ash"], "multi_answer", 1.0),
    ("White, red.", ["red&&white"], "multi_answer", 1.0),
    ("c and d", ["a&&b", "c&&d"], "multi_answer", 1.0),
    ("green", ["red&&white"], "multi_answer", 0.0),
    ("in 1871", ["1871"], "2_hop", 0.0),
]


@pytest.mark.parametrize(("prediction", "answers", "qtype", "expected"), EVQA_OFFICIAL_CASES)
def test_encyclopedic_vqa_equals_the_official_exact_match(
    prediction: str, answers: list[str], qtype: str, expected: float
) -> None:
    assert judge_encyclopedic_vqa(prediction, q(*answers, question_type=qtype)).score == expected


def test_encyclopedic_vqa_splits_a_raw_multi_answer_gold_without_its_question_type() -> None:
    assert judge_encyclopedic_vqa("red and white", q("red&&white")).correct
    assert not judge_encyclopedic_vqa("red", q("red&&white&&blue")).correct
    assert not judge_encyclopedic_vqa(None, q("red")).correct


def test_multi_answer_gold_needs_every_part_under_exact_and_rule() -> None:
    question = q("Lake Constance&&Rhine", question_type="multi_answer")
    for judge in (judge_exact, judge_answer):
        assert judge("the Rhine and Lake Constance", question).correct
        assert judge("Lake Constance, Rhine", question).correct
        assert not judge("Lake Constance", question).correct  # one part missing
        assert not judge("Lake Constance&&Rhine".replace("&&", ""), question).correct
    assert judge_answer("It flows through Lake Constance and the Rhine.", question).correct
    assert not judge_exact("It flows through Lake Constance and the Rhine.", question).correct
    assert not judge_exact("Lake Constance, Rhine, Danube", question).correct  # exact: nothing besides the parts
    assert not judge_answer("Lake Constance or the Rhine", question).correct  # a hedge

"""The judges, including the official scripts' edge cases."""

from __future__ import annotations

import pytest

from deepmmsearch.errors import ConfigError
from deepmmsearch.eval.judges import (
    METRICS,
    get_judge,
    infoseek_numerical_match,
    infoseek_process_numerical_answer,
    judge_answer,
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
    with pytest.raises(ConfigError, match="known: exact, rule, vqa, infoseek, llm"):
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


def test_vqa_gold_normalized_only_when_annotators_disagree() -> None:
    # All ten agree on "t-shirt": the gold is left alone, while the prediction becomes "t shirt": no match.
    assert vqa_accuracy("t-shirt", ["t-shirt"] * 10) == 0.0
    # Once they disagree, the gold gets punctuation processing too, and the two meet.
    assert vqa_accuracy("t-shirt", ["t-shirt"] * 9 + ["shirt"]) == 1.0


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

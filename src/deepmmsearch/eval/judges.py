"""Judges: is a predicted answer right? Plain functions ``judge(prediction, question) -> JudgeResult``.

- ``exact``: normalized exact match against any acceptable answer;
- ``rule``: the paper's judging rules without an LLM (aliases, articles/punctuation/case, numeric ranges, rounding,
  unit conversion, dates). It is the reusable default, :func:`judge_answer`: the GRPO reward calls it too;
- ``vqa``: VQA accuracy exactly as the official VQA evaluation script computes it (OK-VQA);
- ``aokvqa``: A-OKVQA's official direct-answer metric (difficult questions are left out in :mod:`.metrics`);
- ``infoseek``: the official InfoSeek metric (per item; the split harmonic mean is in :mod:`.metrics`);
- ``encyclopedic_vqa``: the exact-match stage of Encyclopedic-VQA's official evaluation (its BEM model is not run);
- ``llm``: an OpenAI-compatible model as judge (:mod:`.llm_judge`), falling back to ``rule``.

A gold answer written ``a&&b`` (Encyclopedic-VQA's multi-answer questions) names several things: ``exact`` and
``rule`` count a prediction right only when it gives every part.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from deepmmsearch.errors import ConfigError
from deepmmsearch.protocol import GIVE_UP_ANSWER
from deepmmsearch.records import Question


@dataclass(frozen=True)
class JudgeResult:
    """A verdict: ``correct`` for accuracy, ``score`` in [0, 1] (fractional for VQA accuracy), and why."""

    correct: bool
    score: float
    detail: str = ""


Judge = Callable[[str | None, Question], JudgeResult]


def _wrong(detail: str) -> JudgeResult:
    return JudgeResult(False, 0.0, detail)


def answer_eval_items(question: Question) -> list:
    """``answer_eval`` as a list: InfoSeek releases a numerical one as a list holding a dict or as that bare dict."""
    value = question.answer_eval
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def gold_answers(question: Question) -> list[str]:
    """Every acceptable answer: ``answers``, ``answer_eval`` aliases and any ``aliases`` field, in that order."""
    golds: list[str] = []
    for source in (question.answers, answer_eval_items(question), question.extra.get("aliases") or []):
        for value in source:
            if isinstance(value, (str, int, float)) and str(value).strip() and str(value) not in golds:
                golds.append(str(value))
    return golds


# ---------------------------------------------------------------------------------------------- exact

_PUNCT = set(string.punctuation) | set("‘’“”«»–—…")
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")


def normalize(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the SQuAD/InfoSeek normalization)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES_RE.sub(" ", text).split())


def _is_give_up(prediction: str | None) -> bool:
    return prediction is None or not prediction.strip() or normalize(prediction) == normalize(GIVE_UP_ANSWER)


MULTI_ANSWER_SEP = "&&"  # Encyclopedic-VQA's separator between the parts of one multi-answer gold
_LIST_SPLIT_RE = re.compile(r",|;|&|\s+and\s+")


def answer_parts(gold: str) -> list[str]:
    """The parts of a multi-answer gold ``a&&b``; a plain gold is its own single part."""
    return [part.strip() for part in gold.split(MULTI_ANSWER_SEP) if part.strip()]


def prediction_items(prediction: str) -> list[str]:
    """The things a list answer names, split at commas, semicolons, "&" and "and"."""
    return [item.strip() for item in _LIST_SPLIT_RE.split(prediction) if item.strip()]


def judge_exact(prediction: str | None, question: Question) -> JudgeResult:
    """Normalized exact match against any acceptable answer; a multi-answer gold ``a&&b`` needs exactly its parts,
    in any order."""
    if _is_give_up(prediction):
        return _wrong("no answer")
    golds = gold_answers(question)
    pred = normalize(prediction or "")
    items = {normalize(i) for i in prediction_items(prediction or "")} - {""}
    for gold in golds:
        if MULTI_ANSWER_SEP in gold:
            if items == {normalize(part) for part in answer_parts(gold)}:
                return JudgeResult(True, 1.0, f"gives every part of {gold!r}")
        elif pred == normalize(gold):
            return JudgeResult(True, 1.0, f"matches {gold!r}")
    return _wrong("no exact match")


# ---------------------------------------------------------------------------------------------- rule

_WORD_NUMBERS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
}  # fmt: skip
_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12, "k": 1e3, "m": 1e6, "bn": 1e9}

# unit -> (dimension, factor to the base unit, offset); temperature is affine, the rest linear.
_UNITS: dict[str, tuple[str, float, float]] = {}


def _add_units(dimension: str, factor: float, *names: str, offset: float = 0.0) -> None:
    for name in names:
        _UNITS[name] = (dimension, factor, offset)


_add_units("length", 1.0, "m", "metre", "metres", "meter", "meters")
_add_units("length", 1e3, "km", "kilometre", "kilometres", "kilometer", "kilometers")
_add_units("length", 1e-2, "cm", "centimetre", "centimetres", "centimeter", "centimeters")
_add_units("length", 1e-3, "mm", "millimetre", "millimetres", "millimeter", "millimeters")
_add_units("length", 1609.344, "mi", "mile", "miles")
_add_units("length", 0.3048, "ft", "foot", "feet")
_add_units("length", 0.0254, "in", "inch", "inches")
_add_units("length", 0.9144, "yd", "yard", "yards")
_add_units("mass", 1.0, "kg", "kilogram", "kilograms", "kilo", "kilos")
_add_units("mass", 1e-3, "g", "gram", "grams")
_add_units("mass", 1e-6, "mg", "milligram", "milligrams")
_add_units("mass", 1e3, "t", "tonne", "tonnes", "ton", "tons")
_add_units("mass", 0.45359237, "lb", "lbs", "pound", "pounds")
_add_units("mass", 0.028349523125, "oz", "ounce", "ounces")
_add_units("area", 1.0, "m2", "m²", "square metre", "square metres", "square meter", "square meters", "sq m")
_add_units("area", 1e6, "km2", "km²", "square kilometre", "square kilometres", "square kilometer", "square kilometers")
_add_units("area", 1e6, "sq km")
_add_units("area", 2589988.110336, "mi2", "mi²", "sq mi", "square mile", "square miles")
_add_units("area", 0.09290304, "ft2", "ft²", "sq ft", "square foot", "square feet")
_add_units("area", 1e4, "ha", "hectare", "hectares")
_add_units("area", 4046.8564224, "acre", "acres")
_add_units("volume", 1e-3, "l", "litre", "litres", "liter", "liters")
_add_units("volume", 1e-6, "ml", "millilitre", "millilitres", "milliliter", "milliliters")
_add_units("volume", 1.0, "m3", "m³", "cubic metre", "cubic metres", "cubic meter", "cubic meters")
_add_units("volume", 0.003785411784, "gal", "gallon", "gallons")
_add_units("temperature", 1.0, "k", "kelvin")
_add_units("temperature", 1.0, "°c", "c", "celsius", "degrees celsius", "degree celsius", offset=273.15)
_add_units("temperature", 5 / 9, "°f", "f", "fahrenheit", "degrees fahrenheit", offset=459.67)
_add_units("duration", 1.0, "s", "sec", "second", "seconds")
_add_units("duration", 60.0, "min", "mins", "minute", "minutes")
_add_units("duration", 3600.0, "h", "hr", "hrs", "hour", "hours")
_add_units("duration", 86400.0, "day", "days")
_add_units("duration", 604800.0, "week", "weeks")
_add_units("duration", 31557600.0, "year", "years", "yr", "yrs")  # a Julian year

_UNIT_ALT = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
_NUM = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+"
_SCALE_ALT = "thousand|million|billion|trillion|bn|k|m"
_QUANTITY_RE = re.compile(
    rf"(?<![\w.])(?P<num>{_NUM})\s*(?P<scale>(?:{_SCALE_ALT})\b)?\s*(?P<unit>(?:{_UNIT_ALT})(?![\w²³]))?",
    re.IGNORECASE,
)
_RANGE_RE = re.compile(
    rf"(?:between\s+|from\s+)?(?P<a>{_NUM})\s*(?P<ua>(?:{_UNIT_ALT})(?![\w²³]))?\s*(?:-|–|—|to|and)\s*"
    rf"(?P<b>{_NUM})\s*(?P<ub>(?:{_UNIT_ALT})(?![\w²³]))?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Quantity:
    """A number with an optional unit; ``decimals`` is how precisely it was written (for rounding)."""

    value: float
    unit: str | None = None
    decimals: int = 0

    def base(self) -> tuple[str | None, float]:
        """(dimension, value in the base unit); unitless numbers keep their value and no dimension."""
        if self.unit is None:
            return None, self.value
        dimension, factor, offset = _UNITS[self.unit]
        return dimension, (self.value + offset) * factor


def _words_to_digits(text: str) -> str:
    # "forty two" -> "42", "three" -> "3": enough for how short answers write numbers.
    tokens, out, acc = text.split(), [], None
    for token in [*tokens, ""]:
        word = token.lower().strip(",.;")
        if word in _WORD_NUMBERS and word != "hundred":
            acc = (acc or 0) + _WORD_NUMBERS[word]
            continue
        if word == "hundred" and acc is not None:
            acc *= 100
            continue
        if acc is not None:
            out.append(str(acc))
            acc = None
        if token:
            out.append(token)
    return " ".join(out)


def _unit_key(unit: str | None) -> str | None:
    return " ".join(unit.lower().split()) if unit else None


def _parse_number(num: str, scale: str | None = None) -> tuple[float, int]:
    clean = num.replace(",", "")
    decimals = len(clean.split(".")[1]) if "." in clean else 0
    value = float(clean) * (_SCALES[scale.lower()] if scale else 1.0)
    return value, decimals


def parse_quantities(text: str) -> list[Quantity]:
    """Every number in ``text`` with its unit, number words included ("three metres" -> 3 m)."""
    text = _words_to_digits(text)
    quantities = []
    for m in _QUANTITY_RE.finditer(text):
        scale = m.group("scale")
        if scale and scale.lower() == "m" and not m.group("unit"):
            scale, unit = None, "m"  # "38 m" is metres, not millions
        else:
            unit = _unit_key(m.group("unit"))
        value, decimals = _parse_number(m.group("num"), scale)
        quantities.append(Quantity(value, unit, decimals))
    return quantities


def parse_range(text: str) -> tuple[Quantity, Quantity] | None:
    """A numeric range such as "30-40 m", "between 30 and 40" or "30 to 40 metres", or None."""
    m = _RANGE_RE.search(_words_to_digits(text))
    if m is None:
        return None
    unit = _unit_key(m.group("ub") or m.group("ua"))
    (a, da), (b, db) = _parse_number(m.group("a")), _parse_number(m.group("b"))
    low, high = sorted((Quantity(a, unit, da), Quantity(b, unit, db)), key=lambda q: q.value)
    return low, high


def _looks_like_year(q: Quantity) -> bool:
    return q.unit is None and q.decimals == 0 and 1000 <= q.value <= 2100 and q.value == int(q.value)


def _same_quantity(pred: Quantity, gold: Quantity) -> bool:
    pd, pv = pred.base()
    gd, gv = gold.base()
    if pd is not None and gd is not None:
        if pd != gd:
            return False
    else:  # one side has no unit: compare the numbers as written
        pv, gv = pred.value, gold.value
    if _looks_like_year(pred) and _looks_like_year(gold):
        return pv == gv
    if math.isclose(pv, gv, rel_tol=1e-9, abs_tol=1e-12):
        return True
    # Reasonable rounding: the more precise side, rounded to the other's precision, agrees; or within 1%.
    if pred.unit == gold.unit:
        digits = min(pred.decimals, gold.decimals)
        if round(pred.value, digits) == round(gold.value, digits):
            return True
    return abs(pv - gv) <= 0.01 * max(abs(gv), 1e-12)


_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_DATE_HINT_RE = re.compile(rf"\b({_MONTHS}|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\b|\d{{4}}-\d{{1,2}}", re.I)


def parse_date(text: str) -> tuple[int, int | None, int | None] | None:
    """(year, month, day) from a date in a common format; parts the text does not give are None."""
    from dateutil import parser

    text = text.strip().rstrip(".")
    if not _DATE_HINT_RE.search(text) and not re.fullmatch(r"\d{4}", text):
        return None
    try:
        # Parsing twice with different defaults reveals which parts the text really gave.
        first = parser.parse(text, default=datetime(1, 1, 1), fuzzy=True)
        second = parser.parse(text, default=datetime(2, 2, 2), fuzzy=True)
    except (ValueError, OverflowError):
        return None
    if first.year != second.year:
        return None
    month = first.month if first.month == second.month else None
    day = first.day if first.day == second.day and month is not None else None
    return first.year, month, day


def _dates_agree(pred: tuple[int, int | None, int | None], gold: tuple[int, int | None, int | None]) -> bool:
    # Every part the gold gives must be given and equal; extra precision in the prediction is fine.
    return all(g is None or p == g for p, g in zip(pred, gold, strict=True))


_NEGATION_RE = re.compile(r"\b(not|no|never|neither|nor|except|or)\b")  # negations and hedges


def _rule_one(prediction: str, gold: str) -> str | None:
    """Why ``prediction`` matches ``gold`` under the rules, or None."""
    pred_n, gold_n = normalize(prediction), normalize(gold)
    if not pred_n:
        return None
    if (
        pred_n == gold_n
        or pred_n == normalize(_words_to_digits(gold))
        or normalize(_words_to_digits(prediction)) == gold_n
    ):
        return "normalized match"
    gold_date = parse_date(gold)
    if gold_date is not None:
        pred_date = parse_date(prediction)
        if pred_date is not None:
            return "same date" if _dates_agree(pred_date, gold_date) else None
    gold_quantities = parse_quantities(gold)
    if len(gold_quantities) == 1:
        gold_q = gold_quantities[0]
        pred_range = parse_range(prediction)
        if pred_range is not None:
            low, high = pred_range
            if gold_q.unit and not low.unit:
                low, high = (
                    Quantity(low.value, gold_q.unit, low.decimals),
                    Quantity(high.value, gold_q.unit, high.decimals),
                )
            (ld, lv), (_, hv), (gd, gv) = low.base(), high.base(), gold_q.base()
            if ld is not None and gd is not None and ld != gd:
                return None
            if ld is None or gd is None:
                lv, hv, gv = low.value, high.value, gold_q.value
            return "range contains the gold value" if lv <= gv <= hv else None
        pred_quantities = parse_quantities(prediction)
        if len(pred_quantities) == 1:
            return "same quantity" if _same_quantity(pred_quantities[0], gold_q) else None
        if pred_quantities:
            return None
    # An alias inside a short answer ("the Eiffel Tower in Paris" for "Eiffel Tower"), never under a negation.
    short = gold_n and len(pred_n.split()) <= len(gold_n.split()) + 4 and not _NEGATION_RE.search(pred_n)
    if short and re.search(rf"(?<!\w){re.escape(gold_n)}(?!\w)", pred_n):
        return "contains the answer"
    return None


def judge_answer(prediction: str | None, question: Question) -> JudgeResult:
    """The ``rule`` judge: the paper's judging rules without an LLM. The reusable default (rewards call it).
    A multi-answer gold ``a&&b`` is matched only when the prediction gives every part."""
    if _is_give_up(prediction):
        return _wrong("no answer")
    golds = gold_answers(question)
    if not golds:
        return _wrong("the question has no gold answer")
    for gold in golds:
        why = _rule_multi(prediction or "", gold) if MULTI_ANSWER_SEP in gold else _rule_one(prediction or "", gold)
        if why:
            return JudgeResult(True, 1.0, f"{why}: {gold!r}")
    return _wrong("matches no acceptable answer")


def _rule_multi(prediction: str, gold: str) -> str | None:
    """Why ``prediction`` gives every part of the multi-answer ``gold``, or None (a hedge never does)."""
    if _NEGATION_RE.search(normalize(prediction)):
        return None
    items = prediction_items(prediction)
    for part in answer_parts(gold):
        if not any(_rule_one(item, part) for item in items) and not _rule_one(prediction, part):
            return None
    return "gives every part"


# ---------------------------------------------------------------------------------------------- vqa
# The official VQA evaluation (GT-Vision-Lab/VQA, vqaEval.py as of commit a013f00, "Fixed processing answers bug"),
# reproduced with its quirks: when the annotators' answers disagree, they and the prediction all go through
# punctuation and digit/article processing; when they all agree, none of them does (so "Yes" misses ten "yes"). The
# period regex is the original (a lookahead where a lookbehind was meant), its third argument caps replacements at
# re.UNICODE (32), and \d is ASCII-only as it was under the script's Python 2.

_VQA_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't", "dont": "don't",
    "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't", "havent": "haven't",
    "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd", "howll": "how'll",
    "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd",
    "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't",
    "mustve": "must've", "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've",
    "she'dve": "she'd've", "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've", "somebodyll": "somebody'll",
    "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's", "thered": "there'd",
    "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're", "theres": "there's", "theyd": "they'd",
    "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're",
    "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}  # fmt: skip
_VQA_NUMBERS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_VQA_ARTICLES = ("a", "an", "the")
_VQA_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)", re.ASCII)
_VQA_COMMA_STRIP = re.compile(r"(\d)(,)(\d)", re.ASCII)
_VQA_PUNCT = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]


def vqa_process_punctuation(text: str) -> str:
    """``processPunctuation`` of the official script."""
    out = text
    for p in _VQA_PUNCT:
        if (p + " " in text or " " + p in text) or _VQA_COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _VQA_PERIOD_STRIP.sub("", out, count=int(re.UNICODE))  # the official call passes re.UNICODE as count


def vqa_process_digit_article(text: str) -> str:
    """``processDigitArticle`` of the official script: number words to digits, no articles, contractions."""
    words = [_VQA_NUMBERS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in _VQA_ARTICLES]
    return " ".join(_VQA_CONTRACTIONS.get(w, w) for w in words)


def vqa_accuracy(prediction: str, answers: list[str]) -> float:
    """VQA accuracy of one prediction against the annotators' answers (usually 10): for each annotator left out,
    min(#matches among the others / 3, 1), averaged. Answers and prediction are normalized only when the answers
    disagree, as vqaEval.py does since commit a013f00."""
    if not answers:
        return 0.0
    pred = _vqa_clean(prediction)
    golds = [_vqa_clean(a) for a in answers]
    if len(set(golds)) > 1:
        golds = [vqa_process_digit_article(vqa_process_punctuation(a)) for a in golds]
        pred = vqa_process_digit_article(vqa_process_punctuation(pred))
    accs = []
    for i in range(len(golds)):
        matches = sum(1 for j, g in enumerate(golds) if j != i and g == pred)
        accs.append(min(1.0, matches / 3))
    return sum(accs) / len(accs)


def _vqa_clean(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def judge_vqa(prediction: str | None, question: Question) -> JudgeResult:
    """VQA accuracy over ``answers`` (the 10 annotators' answers, repeats kept); correct when it is positive."""
    if prediction is None:
        return _wrong("no answer")
    score = vqa_accuracy(prediction, [str(a) for a in question.answers])
    return JudgeResult(score > 0, score, f"VQA accuracy {score:.3f}")


# ---------------------------------------------------------------------------------------------- aokvqa
# A-OKVQA's official direct-answer metric (allenai/aokvqa, evaluation/eval_predictions.py): the prediction is compared
# verbatim (no normalization) with each of the ten direct answers, with no annotator left out.


def aokvqa_direct_answer_accuracy(prediction: str, direct_answers: list[str]) -> float:
    """min(1, #direct answers equal to the prediction / 3)."""
    return min(1.0, sum(prediction == answer for answer in direct_answers) / 3.0)


def judge_aokvqa(prediction: str | None, question: Question) -> JudgeResult:
    """A-OKVQA direct-answer accuracy over ``answers`` (the ``direct_answers``); correct when it is positive.
    Questions marked ``difficult_direct_answer`` get a score too; :func:`.metrics.summarize` leaves them out."""
    if prediction is None:
        return _wrong("no answer")
    score = aokvqa_direct_answer_accuracy(prediction, [str(a) for a in question.answers])
    return JudgeResult(score > 0, score, f"A-OKVQA direct-answer accuracy {score:.3f}")


# ---------------------------------------------------------------------------------------------- infoseek
# The official InfoSeek metric (edchengg/infoseek_eval, infoseek_eval.py).

_ASCII_PUNCT = set(string.punctuation)


def infoseek_normalize(text: str) -> str:
    """The official ``normalize_answer``: lower case, no ASCII punctuation (curly quotes stay), no articles."""
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCT)
    return " ".join(_ARTICLES_RE.sub(" ", text).split())


_INFOSEEK_NUM_RE = re.compile(r"[-+]?[.]?[\d]+(?:,\d\d\d)*[\.]?\d*(?:[eE][-+]?\d+)?")


def infoseek_process_numerical_answer(text: str) -> float | list[float]:
    """The official parser: two numbers are a range [low, high] (or the first, if they are in decreasing order),
    one number is itself, none is [0, 0]."""
    text = "".join(" - " if ch == "-" and i >= 1 and text[i - 1].isdigit() else ch for i, ch in enumerate(text))
    numbers = []
    for n in (n.replace(",", "").strip(".") for n in _INFOSEEK_NUM_RE.findall(text)):
        numbers.append(float(n.split(".")[0] if n.count(".") > 1 else n))
    numbers = numbers[:2]
    if len(numbers) == 2:
        return [numbers[0], numbers[1]] if numbers[0] <= numbers[1] else numbers[0]
    if len(numbers) == 1:
        return numbers[0]
    return [0.0, 0.0]


def _range_iou(x: list[float], y: list[float]) -> float:
    min1, max1, min2, max2 = min(x), max(x), min(y), max(y)
    overlap = max(0.0, min(max1, max2) - max(min1, min2))
    union = (max1 - min1 + 1e-12) + (max2 - min2 + 1e-12) - overlap
    return overlap / union if union else 0.0


def infoseek_numerical_match(pred: float | list[float], answer: float | list[float], tolerance: float = 0.1) -> bool:
    """A number must fall in the gold range (a single gold value becomes +/- ``tolerance``); a predicted range
    must lie inside it or overlap it with an interval IoU of at least 0.5."""
    if not isinstance(answer, list):
        answer = [answer * (1 - tolerance), answer * (1 + tolerance)]
    if not isinstance(pred, list):
        return answer[0] <= pred <= answer[1]
    if answer[0] <= pred[0] <= answer[1] and answer[0] <= pred[1] <= answer[1]:
        return True
    return _range_iou(pred, answer) >= 0.5 - 1e-12


def infoseek_gold_numbers(question: Question) -> float | list[float] | None:
    """The numerical gold of an InfoSeek question: the ``range`` of its ``answer_eval`` (a list holding
    ``{"wikidata": v, "range": [lo, hi]}`` or that bare dict; the official script reads the first item's range),
    the two values of an already flattened ``[lo, hi]``, or a single value (which gets the +/-10% tolerance)."""
    raw = answer_eval_items(question) or list(question.answers)
    first = raw[0] if raw else None
    if isinstance(first, dict):
        raw = list(first.get("range") or [first.get("wikidata")])
    values: list[float] = []
    for item in raw:
        try:
            values.append(float(str(item).replace(",", "")))
        except ValueError:
            continue
    if len(values) >= 2:
        return values[:2]
    return values[0] if values else None


def judge_infoseek(prediction: str | None, question: Question) -> JudgeResult:
    """The official InfoSeek metric for one item: exact match over ``answer_eval`` for string and time
    questions, the range rules for numerical ones (``question_type``)."""
    pred = prediction if prediction is not None else ""
    qtype = (question.question_type or "string").lower()
    if qtype == "numerical":
        gold = infoseek_gold_numbers(question)
        if gold is None:
            return _wrong("the question has no numerical gold answer")
        parsed = infoseek_process_numerical_answer(pred)
        ok = infoseek_numerical_match(parsed, gold)
        return JudgeResult(ok, float(ok), f"prediction {parsed} vs gold {gold}")
    golds = [str(a) for a in (answer_eval_items(question) or question.answers)]
    for gold in golds:
        if infoseek_normalize(pred) == infoseek_normalize(gold):
            return JudgeResult(True, 1.0, f"matches {gold!r}")
    return _wrong("no exact match over answer_eval")


# ---------------------------------------------------------------------------------------------- encyclopedic_vqa
# Encyclopedic-VQA's official evaluation (google-research/google-research, encyclopedic_vqa/evaluation_utils.py) is
# exact match, then BEM (a BERT answer-equivalence model on TF Hub) for answers exact match rejects. This is the
# exact-match stage: a lower bound of the official score, since BEM only ever turns a miss into a hit.

_EVQA_PUNCT = set(string.punctuation + "‘’´`_")
_EVQA_ARTICLES_RE = re.compile(r"\b(the answer is|a|an|the)\b")
_EVQA_WORDS = {**_VQA_NUMBERS, "entailment": "yes", "true": "yes", "contradiction": "no", "false": "no"}


def evqa_preprocess_answer(text: str) -> str:
    """The official ``preprocess_answer``: lower case, no punctuation or articles ("the answer is" too), number
    words and yes/no synonyms mapped, contractions restored, single spaces."""
    text = text.lower().replace("\n", " ").replace("\t", " ").strip()
    text = text.replace("<extra_id_0> ", "") if text.startswith("<extra_id_0> ") else text
    text = "".join(ch for ch in text if ch not in _EVQA_PUNCT)
    text = _EVQA_ARTICLES_RE.sub(" ", text)
    words = (_EVQA_WORDS.get(w, w) for w in text.split())
    return " ".join(_VQA_CONTRACTIONS.get(w, w) for w in words)


def evqa_exact_match(prediction: str, reference: str, multi_answer: bool) -> bool:
    """The official exact match against one reference. A multi-answer reference ``a&&b`` matches when the set of
    predicted items (split at ",", " and ", " & ") has an intersection over union of at least 0.5 with its parts."""
    if not multi_answer:
        gold = evqa_preprocess_answer(reference)
        return bool(gold) and evqa_preprocess_answer(prediction) == gold
    parts = {evqa_preprocess_answer(a) for a in reference.split(MULTI_ANSWER_SEP)} - {""}
    # The official splits by replacing in this order, which a regex alternation would not always reproduce.
    listed = prediction.replace(" and ", ",").replace(" & ", ",").split(",")
    items = {evqa_preprocess_answer(a) for a in listed} - {""}
    return bool(parts) and len(parts & items) / len(parts | items) >= 0.5


def judge_encyclopedic_vqa(prediction: str | None, question: Question) -> JudgeResult:
    """Encyclopedic-VQA's official exact match over ``answers`` (the "|" alternatives; a multi-answer one may be the
    raw ``a&&b`` string). Multi-answer rules apply to ``question_type`` multi_answer, or to any gold with ``&&``."""
    if prediction is None:
        return _wrong("no answer")
    multi_type = (question.question_type or "").lower() == "multi_answer"
    for gold in (str(a) for a in question.answers):
        if evqa_exact_match(prediction, gold, multi_type or MULTI_ANSWER_SEP in gold):
            return JudgeResult(True, 1.0, f"exact match with {gold!r} (the official first stage; BEM not run)")
    return _wrong("no exact match (the official first stage; BEM, which may still accept it, is not run)")


# ---------------------------------------------------------------------------------------------- registry

METRICS: dict[str, Judge] = {
    "exact": judge_exact,
    "rule": judge_answer,
    "vqa": judge_vqa,
    "aokvqa": judge_aokvqa,
    "infoseek": judge_infoseek,
    "encyclopedic_vqa": judge_encyclopedic_vqa,
}
ALL_METRICS = (*METRICS, "llm")


def get_judge(name: str) -> Judge:
    """The plain judge function a metric name names (``llm`` is built by :func:`.llm_judge.LLMJudge`)."""
    if name not in METRICS:
        raise ConfigError(f"unknown metric {name!r}; known: {', '.join(ALL_METRICS)}")
    return METRICS[name]

"""The tag protocol: actions, parsing, rendering, the rules of an episode and the prompts.

This is the only module that knows the tag grammar. The agent loop, data building, rewards,
evaluation and serving import it; nothing else parses or writes tags.

An assistant turn is ``<reason>...</reason>`` followed by exactly one action:

- ``<img_search><img></img_search>``: reverse image search on the whole input image;
- ``<img_search>referring expression</img_search>``: ground the expression, crop, search the crop;
- ``<text_search>query</text_search>``: web text search;
- ``<answer>...</answer>``: the final answer (giving up is an answer too).

Tool results come back in the next user turn inside ``<information>...</information>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

import regex

from deepmmsearch.config import check_at_least

GIVE_UP_ANSWER = "Unable to answer due to lack of relevant information"
# The lead lines of search results as the extractive summarizer writes them, "Best match: <top image result's
# title>" and "Most relevant: <the sentence closest to the question>": the oracle teacher quotes them, so a
# model learns to read a result by copying one line.
BEST_MATCH = "Best match:"
MOST_RELEVANT = "Most relevant:"


class ActionKind(StrEnum):
    IMAGE_SEARCH = "image_search"  # whole image
    CROP_SEARCH = "crop_search"  # a region named by a referring expression
    TEXT_SEARCH = "text_search"
    ANSWER = "answer"

    @property
    def is_tool(self) -> bool:
        return self is not ActionKind.ANSWER

    @property
    def is_image(self) -> bool:
        return self in (ActionKind.IMAGE_SEARCH, ActionKind.CROP_SEARCH)


class StopReason(StrEnum):
    """Every way an episode can end."""

    ANSWER = "answer"  # the model answered (a give-up answer included)
    FORMAT_ERROR = "format_error"  # too many invalid replies in a row
    MAX_TURNS = "max_turns"  # the turn limit came before an answer
    TOOL_BUDGET = "tool_budget"  # a tool call after the budget of tool calls was spent
    POLICY_ERROR = "policy_error"  # the model backend failed (unreachable, bad key, timed out)
    CONTEXT_LIMIT = "context_limit"  # the conversation no longer fits the model's context
    TIMEOUT = "timeout"  # the whole episode ran past its time limit
    INPUT_ERROR = "input_error"  # the question's image could not be read; no turn was taken


@dataclass(frozen=True)
class Action:
    """One parsed assistant action. ``query`` is the search query, the referring expression or the answer."""

    kind: ActionKind
    query: str = ""
    reason: str = ""

    def to_dict(self) -> dict:
        return {"kind": self.kind.value, "query": self.query, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict) -> Action:
        return cls(ActionKind(data["kind"]), data.get("query", ""), data.get("reason", ""))


@dataclass(frozen=True)
class FormatError:
    """Why a model reply could not be turned into an action; the message is shown to the model."""

    message: str


@dataclass(frozen=True)
class Rules:
    """The budgets of an episode. The loop enforces them, whatever the model writes."""

    max_image_searches: int = field(default=1, metadata={"help": "image searches (whole or crop) per episode"})
    max_tool_calls: int = field(default=10, metadata={"help": "tool calls of any kind per episode"})
    max_turns: int = field(default=12, metadata={"help": "assistant turns per episode, invalid ones included"})
    max_consecutive_errors: int = field(
        default=3, metadata={"help": "invalid replies in a row before the episode ends with format_error"}
    )
    require_reason: bool = field(default=True, metadata={"help": "every action must follow a <reason> block"})
    max_reply_chars: int = field(default=16_000, metadata={"help": "longer replies are a format error"})
    max_query_chars: int = field(default=500, metadata={"help": "longest search query or referring expression"})

    def __post_init__(self) -> None:
        limits = ("max_tool_calls", "max_turns", "max_consecutive_errors", "max_reply_chars", "max_query_chars")
        check_at_least(self, 1, *limits, section="rules")
        check_at_least(self, 0, "max_image_searches", section="rules")


# ---------------------------------------------------------------------------------------------- rendering

_ACTION_TAG = {
    ActionKind.IMAGE_SEARCH: "img_search",
    ActionKind.CROP_SEARCH: "img_search",
    ActionKind.TEXT_SEARCH: "text_search",
    ActionKind.ANSWER: "answer",
}
_ACTION_TAGS = ("img_search", "text_search", "answer")
STOP_STRINGS = tuple(f"</{tag}>" for tag in _ACTION_TAGS)  # generation may stop right after these


def render_action(action: Action) -> str:
    """The assistant text for an action, in the canonical layout that :func:`parse` reads back."""
    tag = _ACTION_TAG[action.kind]
    body = "<img>" if action.kind is ActionKind.IMAGE_SEARCH else action.query
    reason = f"<reason>{action.reason}</reason>\n" if action.reason else ""
    return f"{reason}<{tag}>{body}</{tag}>"


_TAG_NAMES = ("reason", *_ACTION_TAGS, "information", "img")
# Every tag of the grammar as written: each block's opening and closing tag, then the whole-image marker. A small
# vocabulary holds each as one token.
TAG_TOKENS: tuple[str, ...] = (
    *(f"{mark}{name}>" for name in _TAG_NAMES if name != "img" for mark in ("<", "</")),
    "<img>",
)
# Known tags are matched case-insensitively so that "<ANSWER>" neither slips through as text nor crashes.
_TAG_RE = re.compile(r"<\s*(/?)\s*(" + "|".join(_TAG_NAMES) + r")\s*>", re.IGNORECASE)
_NEUTRALIZE_RE = re.compile(r"<(\s*/?\s*(?:" + "|".join(_TAG_NAMES) + r")\b)", re.IGNORECASE)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """Make any model or tool text safe to store and tokenize: no control bytes, no lone surrogates."""
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")  # lone surrogates -> U+FFFD
    return _CONTROL_RE.sub("", text)


def neutralize(text: str) -> str:
    """Defuse markup in retrieved text that imitates our tags, so tool output can never act as a turn."""
    return _NEUTRALIZE_RE.sub(lambda m: "‹" + m.group(1), text)


# ---------------------------------------------------------------------------------------------- parsing


def parse(text: str, rules: Rules | None = None) -> Action | FormatError:
    """Turn one model reply into exactly one action, or a format error that says precisely what is wrong."""
    rules = rules or Rules()
    if len(text) > rules.max_reply_chars:
        return FormatError(f"the reply is {len(text)} characters long; keep it under {rules.max_reply_chars}")
    text = clean_text(text)
    tags = list(_TAG_RE.finditer(text))
    if not tags:
        return FormatError("no tags found; write <reason>...</reason> and then one action tag")

    blocks: list[tuple[str, str, int, int]] = []  # (name, inner text, start, end)
    open_tag: re.Match | None = None
    img_inside: list[re.Match] = []
    for m in tags:
        closing, name = m.group(1) == "/", m.group(2).lower()
        if open_tag is None:
            if closing:
                return FormatError(f"</{name}> closes a tag that was never opened")
            if name == "information":
                return FormatError("<information> is written by the tools, never by you")
            if name == "img":
                return FormatError("<img> may only appear inside <img_search>")
            open_tag = m
            continue
        open_name = open_tag.group(2).lower()
        if open_name == "img_search" and name == "img":
            img_inside.append(m)
            continue
        if not closing:
            return FormatError(f"<{name}> is nested inside <{open_name}>; tags must not be nested")
        if name != open_name:
            return FormatError(f"</{name}> does not close <{open_name}>")
        inner = text[open_tag.end() : m.start()]
        if name == "img_search" and _is_whole_image_marker(inner):
            inner = "<img>"
        elif img_inside:
            return FormatError("<img_search> holds either exactly <img> or a referring expression")
        blocks.append((name, inner, open_tag.start(), m.end()))
        open_tag, img_inside = None, []
    if open_tag is not None:
        return FormatError(f"<{open_tag.group(2).lower()}> is never closed")

    reasons = [b for b in blocks if b[0] == "reason"]
    actions = [b for b in blocks if b[0] != "reason"]
    if not actions:
        return FormatError("no action; end with one of <img_search>, <text_search> or <answer>")
    if len(actions) > 1:
        return FormatError(f"{len(actions)} actions in one reply; write exactly one action per turn")
    if len(reasons) > 1:
        return FormatError("more than one <reason> block; write one, before the action")
    name, inner, start, end = actions[0]
    if reasons and reasons[0][2] > start:
        return FormatError("<reason> must come before the action")
    if text[end:].strip():
        return FormatError(f"text after </{name}>; the action must end the reply")
    reason = ""
    if reasons:
        reason = reasons[0][1].strip()
        if not reason:
            return FormatError("<reason> is empty")
    elif rules.require_reason:
        return FormatError("missing <reason>...</reason> before the action")

    query = " ".join(inner.split())
    if name == "img_search":
        if query == "<img>":
            return Action(ActionKind.IMAGE_SEARCH, "", reason)
        kind = ActionKind.CROP_SEARCH
    else:
        kind = ActionKind.TEXT_SEARCH if name == "text_search" else ActionKind.ANSWER
    if not query:
        what = {"img_search": "referring expression", "text_search": "search query", "answer": "answer"}[name]
        return FormatError(f"empty {what} in <{name}>")
    if kind is not ActionKind.ANSWER and len(query) > rules.max_query_chars:
        return FormatError(f"the {name} query is {len(query)} characters; keep it under {rules.max_query_chars}")
    return Action(kind, query, reason)


def _is_whole_image_marker(inner: str) -> bool:
    # The paper writes a bare <img>; <img></img> and <img/> are accepted as the same marker.
    return _WHOLE_IMAGE_RE.fullmatch(inner) is not None


_WHOLE_IMAGE_RE = re.compile(r"\s*<\s*img\s*/?\s*>(\s*<\s*/\s*img\s*>)?\s*", re.IGNORECASE)


def complete_stopped_reply(text: str) -> str:
    """Re-append the closing tag that a stop sequence swallowed (servers drop the matched stop string)."""
    opened = [m for m in _TAG_RE.finditer(text) if m.group(2).lower() in _ACTION_TAGS]
    if opened and not opened[-1].group(1):
        return text + f"</{opened[-1].group(2).lower()}>"
    return text


# The canonical reply (a reason, then one action, no stray tags) as one pattern, for guided decoding. It is
# stricter than :func:`parse`, so whatever it lets through parses. ``regex`` rather than ``re``: only it answers
# "can this text still grow into a match?" (partial=True), which a sampler asks after every token.
# Plain regular-expression syntax, so that vLLM's structured-outputs backends (xgrammar, llguidance) take it too.
_FREE_TEXT = r"\s*[^<>\s][^<>]*"
REPLY_PATTERN = (
    rf"\s*<reason>{_FREE_TEXT}</reason>\s*(?:<img_search>(?:<img>|{_FREE_TEXT})</img_search>"
    rf"|<text_search>{_FREE_TEXT}</text_search>|<answer>{_FREE_TEXT}</answer>)"
)
_REPLY_RE = regex.compile(REPLY_PATTERN)
REPLY_TAGS = tuple(t for t in TAG_TOKENS if "information" not in t)  # every tag a reply may hold, for guiding


def is_reply_prefix(text: str) -> bool:
    """Whether ``text`` is a well-formed reply or can still grow into one (what guided decoding keeps true)."""
    return _REPLY_RE.fullmatch(text, partial=True) is not None


def is_complete_reply(text: str) -> bool:
    """Whether ``text`` is a whole well-formed reply in the canonical layout."""
    return _REPLY_RE.fullmatch(text) is not None


# ---------------------------------------------------------------------------------------------- rules


@dataclass
class EpisodeState:
    """What the rules need to know about an episode so far."""

    tool_calls: int = 0
    image_searches: int = 0
    last_action: ActionKind | None = None

    def record(self, kind: ActionKind) -> None:
        if kind.is_tool:
            self.tool_calls += 1
        if kind.is_image:
            self.image_searches += 1
        self.last_action = kind


def allowed_actions(state: EpisodeState, rules: Rules) -> list[ActionKind]:
    """The actions the model may take next, in the order the prompts list them."""
    allowed = []
    if state.tool_calls < rules.max_tool_calls:
        if state.image_searches < rules.max_image_searches:
            allowed += [ActionKind.IMAGE_SEARCH, ActionKind.CROP_SEARCH]
        allowed.append(ActionKind.TEXT_SEARCH)
    allowed.append(ActionKind.ANSWER)
    return allowed


def rule_violation(action: Action, state: EpisodeState, rules: Rules, answer_only: bool = False) -> str | None:
    """Why this action breaks a rule now, or None when it is allowed. ``answer_only``: an episode with no tools for
    the model (the baselines), whose reply must answer."""
    if answer_only and action.kind.is_tool:
        return "no tools in this mode; the reply must end with <answer>...</answer>"
    if action.kind.is_tool and state.tool_calls >= rules.max_tool_calls:
        return f"all {rules.max_tool_calls} tool calls are spent; you must answer now"
    if action.kind.is_image and state.image_searches >= rules.max_image_searches:
        return f"image search may be used at most {rules.max_image_searches} time(s) per question"
    return None


# ---------------------------------------------------------------------------------------------- prompts

SYSTEM_PROMPT = """You answer questions about an image. You may look things up before answering.

Every reply has two parts: first your thinking inside <reason>...</reason>, then exactly one action.
The actions are:
- <img_search><img></img_search> runs a reverse image search on the whole image and tells you what it shows.
- <img_search>a referring expression</img_search> finds the region you describe (for example "the red logo on \
the cap" or "the second building from the left"), crops it, and runs a reverse image search on the crop.
- <text_search>a query</text_search> searches the web and returns a summary of the top results.
- <answer>the answer</answer> ends the task. Keep answers short: a name, a number, a date or a phrase.

Search results come back inside <information>...</information>. Image search may be used only once per question,
whole image or crop. If what you know is enough, answer at once without searching. If search results do not
help, rewrite the query and search again. If nothing helps, answer "{give_up}"."""

_ACTION_HELP = {
    ActionKind.IMAGE_SEARCH: "<img_search><img></img_search> to search with the whole image",
    ActionKind.CROP_SEARCH: "<img_search>referring expression</img_search> to search with one region",
    ActionKind.TEXT_SEARCH: "<text_search>query</text_search> to search the web",
    ActionKind.ANSWER: "<answer>...</answer> to answer",
}


class PromptStyle(StrEnum):
    """How the prompts are worded. A model answers best under the style it was trained with: the data build records
    it beside the data, SFT and GRPO keep it beside the weights, and the code that builds an agent reads it there.

    - ``full``: the system prompt explains the actions and the rules, and every turn spells out what may come next,
      for any model (a prompted one included).
    - ``short``: for a small model trained on the protocol: a one-sentence system prompt, and every tool result
      comes last in its turn, after a one-line note of what may come next, with its lead line last. The reply then
      starts a few tokens after the line it quotes, not some 200: a small model copies better from near than from
      far, and its conversations are a quarter shorter (docs/training.md, "Why these settings").
    """

    FULL = "full"
    SHORT = "short"


SHORT_SYSTEM_PROMPT = """You answer questions about an image, and search when you need to. If nothing helps, answer \
"{give_up}"."""
_SHORT_TAGS = {
    ActionKind.IMAGE_SEARCH: "<img_search>",
    ActionKind.TEXT_SEARCH: "<text_search>",
    ActionKind.ANSWER: "<answer>",
}
_LEADS = (BEST_MATCH, MOST_RELEVANT)


def system_prompt(style: PromptStyle = PromptStyle.FULL) -> str:
    """The agent's system prompt in a style: the actions, the tags and the rules (full), or one sentence (short)."""
    template = SHORT_SYSTEM_PROMPT if style is PromptStyle.SHORT else SYSTEM_PROMPT
    return template.format(give_up=GIVE_UP_ANSWER)


def first_turn_prompt(question: str, state: EpisodeState, rules: Rules, style: PromptStyle = PromptStyle.FULL) -> str:
    """The user turn that opens an episode: what may be done first, then the question.

    The question comes last, right before the reply that has to say what it asks for: a small model copies better
    from a few tokens back."""
    return f"{next_step_instruction(state, rules, style)}\n\nQuestion: {question}"


def next_step_instruction(state: EpisodeState, rules: Rules, style: PromptStyle = PromptStyle.FULL) -> str:
    """What the model may do next, worded for the situation the paper distinguishes (full), or one line (short)."""
    allowed = allowed_actions(state, rules)
    left = rules.max_tool_calls - state.tool_calls
    if style is PromptStyle.SHORT:
        return f"Tool calls left: {left}. Next: {' or '.join(_SHORT_TAGS[k] for k in allowed if k in _SHORT_TAGS)}."
    options = "\n".join(f"- {_ACTION_HELP[k]}" for k in allowed)
    if state.last_action is None:
        lead = "Decide whether you can answer directly or need to search first."
    elif state.last_action.is_image:
        lead = (
            "Above is what the image search found. Answer if it is enough; otherwise search the web for the "
            "missing facts."
        )
    else:
        lead = (
            "Above is what the web search found. Answer if it is enough; if it missed, search again with a "
            f'refined query; if nothing helps, answer "{GIVE_UP_ANSWER}".'
        )
    budget = "You have no tool calls left: answer now." if left <= 0 else f"Tool calls left: {left}."
    return f"{lead} {budget}\nReply with <reason>...</reason> and then one of:\n{options}"


def render_observation(result: str, state: EpisodeState, rules: Rules, style: PromptStyle = PromptStyle.FULL) -> str:
    """The user turn that returns a tool result: the result in <information>, then the next-step instruction
    (full), or the instruction, then the result with its lead lines last (short)."""
    text = neutralize(clean_text(result)).strip()
    instruction = next_step_instruction(state, rules, style)
    if style is PromptStyle.FULL:
        return f"<information>\n{text}\n</information>\n\n{instruction}"
    lines = text.splitlines()
    lines = [line for line in lines if not line.startswith(_LEADS)] + [
        line for line in lines if line.startswith(_LEADS)
    ]
    return f"{instruction}\n<information>\n" + "\n".join(lines) + "\n</information>"


def render_error_feedback(
    message: str, state: EpisodeState, rules: Rules, style: PromptStyle = PromptStyle.FULL
) -> str:
    """The user turn that answers an invalid reply: what was wrong and what may be done."""
    return f"Your last reply could not be used: {message}.\n\n{next_step_instruction(state, rules, style)}"


# ---------------------------------------------------------------------------------------------- evaluation baselines
# The paper's two tool-free baselines: answering directly, and the fixed RAG workflow (one whole-image search and
# one text search on the question, always, then an answer). Their replies are parsed with :func:`parse` like any
# other turn, so the same answer extraction serves every mode.

DIRECT_SYSTEM_PROMPT = f"""You answer questions about an image from what you see and what you know; there are no \
tools. Reply with your thinking inside <reason>...</reason>, then the final answer inside <answer>...</answer>. Keep \
answers short: a name, a number, a date or a phrase. If you cannot tell, answer "{GIVE_UP_ANSWER}"."""

RAG_SYSTEM_PROMPT = f"""You answer questions about an image. Search results about the image and about the question \
are given to you inside <information>...</information>; use them when they help, ignore them when they do not. \
Reply with your thinking inside <reason>...</reason>, then the final answer inside <answer>...</answer>. Keep answers \
short: a name, a number, a date or a phrase. If nothing helps, answer "{GIVE_UP_ANSWER}"."""


def direct_prompt(question: str) -> str:
    """The single user turn of the direct-answer baseline."""
    return f"Question: {question}\n\nReply with <reason>...</reason> and then <answer>...</answer>."


def rag_prompts(question: str, image_info: str, text_info: str) -> tuple[str, str]:
    """The two user turns of the RAG workflow: the question with the image-search result, then the text-search
    result with the instruction to answer. Two turns, so that each carries exactly one tool result."""
    first = f"Question: {question}\n\n<information>\n{neutralize(clean_text(image_info)).strip()}\n</information>"
    second = (
        f"<information>\n{neutralize(clean_text(text_info)).strip()}\n</information>\n\n"
        "Above are what an image search found about the image and what a web search found about the question. "
        "Reply with <reason>...</reason> and then <answer>...</answer>."
    )
    return first, second

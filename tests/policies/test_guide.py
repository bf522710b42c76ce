"""The reply guide on vocabularies that spell tags in pieces.

The released Qwen2.5 vocabulary writes "<reason>" as "<", "reason", ">" and "<text_search>" as "<", "text",
"_search", ">"; one trained here with GPT-2's split (as SmolLM2's) as "<", "text", "_", "search", ">"; one of single
characters (no merges at all) one character a token. A guide must let every such token through where the reply
stays a prefix of the canonical layout, and refuse it where it breaks the layout.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from deepmmsearch.models.build import init_model, load_model
from deepmmsearch.models.chat import EOS_TOKEN, PAD_TOKEN, stop_ids
from deepmmsearch.models.tokenizers import qwen_tokenizer
from deepmmsearch.policies import Conversation, SamplingConfig
from deepmmsearch.policies.hf import HFConfig, HFPolicy, ReplyGuide, _GuidedReply
from deepmmsearch.protocol import Action, is_complete_reply, is_reply_prefix, parse
from deepmmsearch.records import Message

REPLIES = [
    "<reason>I need the height.</reason>\n<text_search>lighthouse height</text_search>",
    "<reason>Look it up.</reason>\n<img_search><img></img_search>",
    "<reason>The red tower.</reason>\n<img_search>the red tower</img_search>",
    "<reason>It is known.</reason>\n<answer>About 30 m</answer>",
]


def trained_tokenizer(vocab_size: int) -> Any:
    """A byte-level BPE trained on the replies with GPT-2's pre-tokenizer, which splits tag names at "_"."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(REPLIES * 10, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN, clean_up_tokenization_spaces=False
    )


def build(tokenizer: Any) -> tuple[Any, ReplyGuide]:
    return tokenizer, ReplyGuide(tokenizer, len(tokenizer), stop_ids(tokenizer))


@pytest.fixture(scope="module")
def qwen() -> tuple[Any, ReplyGuide]:
    return build(qwen_tokenizer())


@pytest.fixture(scope="module", params=["qwen", "split", "chars"])
def vocab(request: pytest.FixtureRequest, qwen) -> tuple[Any, ReplyGuide]:
    if request.param == "qwen":
        return qwen
    return build(trained_tokenizer(400 if request.param == "split" else 258))  # 258: the bytes and two specials


def ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def one(tokenizer: Any, piece: str) -> int:
    """The id of the token that decodes to ``piece``."""
    (token,) = ids(tokenizer, piece)
    assert tokenizer.decode([token]) == piece
    return token


def expected_mask(guide: ReplyGuide, text: str) -> torch.Tensor:
    """The allowed tokens by brute force over the whole vocabulary. Every vocabulary here holds every byte, so any
    tag left open can be finished: a token is allowed exactly where the text it grows is still a prefix."""
    complete = is_complete_reply(text)
    return torch.tensor(
        [complete if i in guide.stop_ids else is_reply_prefix(text + p) for i, p in enumerate(guide.pieces)]
    )


@pytest.mark.parametrize("reply", REPLIES)
def test_every_token_of_a_canonical_reply_is_allowed_in_turn(vocab, reply: str) -> None:
    tokenizer, guide = vocab
    tokens = ids(tokenizer, reply)
    # The vocabulary spells tags in pieces: no token is a whole tag name with its brackets.
    assert not {"<reason>", "</reason>", "<answer>"} & {guide.pieces[t] for t in tokens}
    state = _GuidedReply()
    for k, token in enumerate(tokens):
        assert guide.allows(state.text, state.in_text, token), (state.text, guide.pieces[token])
        assert not any(guide.allows(state.text, state.in_text, stop) for stop in guide.stop_ids), state.text
        guide.advance(state, token)
        assert state.in_text == is_reply_prefix(state.text + "§"), state.text
        assert state.text == tokenizer.decode(tokens[: k + 1])
    assert state.text == reply and isinstance(parse(state.text), Action)
    assert all(guide.allows(state.text, state.in_text, stop) for stop in guide.stop_ids)
    assert bool(guide.allowed(state.text, state.in_text)[list(guide.stop_ids)].all())


def test_the_allowed_mask_is_every_token_that_keeps_a_prefix(vocab) -> None:
    """At each step of the replies the mask, computed over the checked tokens only, is the brute-force answer over
    the whole vocabulary. Qwen's 151k tokens take a while a step: there only the <img_search><img> reply (every tag
    piece Qwen has but "text" and "answer", which the other tests cover), and only between tags or inside one."""
    tokenizer, guide = vocab
    big = len(guide.pieces) > 1000
    seen = set()
    for reply in REPLIES[1:2] if big else REPLIES:
        state = _GuidedReply()
        for token in ids(tokenizer, reply):
            if state.text not in seen and not (big and state.in_text):
                seen.add(state.text)
                mask = guide.allowed(state.text, state.in_text)
                assert torch.equal(mask, expected_mask(guide, state.text)), state.text
            guide.advance(state, token)
    assert len(seen) >= 12


def test_the_first_token_may_open_the_reason_tag(qwen) -> None:
    tokenizer, guide = qwen
    first = guide.allowed("", False)
    bare, reason = one(tokenizer, "<"), one(tokenizer, "reason")
    assert bool(first[bare]) and guide.allows("", False, bare) and guide.closable("<")
    assert not bool(first[reason])
    # Besides blanks: "<", and the tokens that hold it with a space before or the "r" of "reason" after.
    assert {guide.pieces[i] for i in first.nonzero().flatten().tolist() if guide.pieces[i].strip()} == {"<", " <", "<r"}
    assert guide.allows("<", False, reason) and guide.allows("<reason", False, one(tokenizer, ">"))


def test_tokens_that_break_the_layout_are_refused(qwen) -> None:
    tokenizer, guide = qwen
    word = {p: one(tokenizer, p) for p in ("reason", "answer", "text", "img", "_search", "<img", "the", " answer")}
    # The reply must open with <reason>: no action, and no tag name that starts nothing.
    assert not guide.allows("<", False, word["answer"]) and not guide.allows("<", False, word["text"])
    assert not guide.allows("<", False, word["img"]) and not guide.allows("", False, word["<img"])
    assert not guide.allows("", False, word["reason"]) and not guide.allows("<reason", False, word["_search"])
    # Between the reason and the action only blanks and "<" may come; not a word, not a tag name.
    after = "<reason>I need the height.</reason>\n"
    for piece in ("the", "reason", "answer"):
        assert not guide.allows(after, False, word[piece]), piece
    # After "<" the action's name: not a second reason, and no blank inside a tag.
    assert guide.allows(after + "<", False, word["answer"]) and guide.allows(after + "<", False, word["text"])
    assert not guide.allows(after + "<", False, word["reason"]) and not guide.allows(
        after + "<", False, word[" answer"]
    )
    # Inside <img_search>, "<" can only open <img>; after <img> only the closing tag may come.
    assert guide.allows(after + "<img_search><", False, word["img"])
    assert not guide.allows(after + "<img_search><", False, word["answer"])
    assert not guide.allows(after + "<img_search><img>", False, word["img"])
    # A closing tag must close the tag that is open.
    assert guide.allows("<reason>x</", False, word["reason"]) and not guide.allows("<reason>x</", False, word["answer"])
    assert not any(guide.allows(after, False, stop) for stop in guide.stop_ids)


def test_inside_free_text_a_tag_name_is_just_a_word(qwen) -> None:
    tokenizer, guide = qwen
    state = _GuidedReply()
    for token in ids(tokenizer, "<reason>I need the"):
        guide.advance(state, token)
    assert state.in_text
    for piece in ("reason", "answer", "_search", " answer"):
        token = one(tokenizer, piece)
        assert guide.allows(state.text, state.in_text, token) and bool(guide.allowed(state.text, True)[token])
    guide.advance(state, one(tokenizer, "reason"))
    assert state.in_text and state.text == "<reason>I need thereason"


def test_a_tag_spelled_one_character_a_token_can_be_closed() -> None:
    tokenizer, guide = build(trained_tokenizer(258))
    assert guide.pieces[one(tokenizer, "<")] == "<" and len(ids(tokenizer, "</text_search>")) == 14
    # "<t" is 11 tokens away from the ">" of "<text_search>".
    for text in ("<", "<reason>x</reason>\n<t", "<reason>x</reason>\n<text_s", "<reason>x</reason>\n<img_search><i"):
        assert guide.closable(text), text
    assert not guide.closable("<reason>x</reason>\n<tex_")


# ---------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def qwen_model(tmp_path_factory: pytest.TempPathFactory):
    return load_model(init_model(tmp_path_factory.mktemp("qwen") / "tiny", vocab="qwen", size="tiny"), device="cpu")


def test_guided_sampling_on_the_qwen_vocabulary_spells_the_tags(qwen_model, qwen) -> None:
    """A tiny random model with the Qwen vocabulary, nudged toward the tokens of the replies (random weights
    alone draw from all 151k tokens, where the few that spell tags hardly ever come up): with temperature
    sampling and the guide, every reply is a prefix of the layout at every step, and the tags get spelled."""
    model, processor = qwen_model
    tokenizer, guide = qwen
    assert len(processor.tokenizer) == len(tokenizer) == model.get_output_embeddings().weight.shape[0]
    favoured = sorted({t for reply in REPLIES for t in ids(tokenizer, reply)})
    bias = torch.zeros(len(tokenizer))
    bias[favoured] = 10.0
    hook = model.get_output_embeddings().register_forward_hook(lambda module, inputs, output: output + bias)
    try:
        hf = HFPolicy(
            "tiny",
            SamplingConfig(temperature=1.0, max_new_tokens=48),
            HFConfig(seed=0, max_batch_size=4),
            loaded=(model, processor),
            guide=guide,
        )
        conversations = [
            Conversation(f"q{i}", [Message("system", "Answer."), Message("user", question)])
            for i, question in enumerate(["How tall is it?", "What is it called?", "Who built it?", "When?"])
        ]
        generations = hf.generate_sync(conversations)
    finally:
        hook.remove()
    for g in generations:
        grown = ""
        for token in g.token_ids:
            if token not in guide.stop_ids:
                grown += guide.pieces[token]
            assert is_reply_prefix(grown), (grown, g.text)
        assert is_reply_prefix(g.text), g.text
        assert g.text.lstrip().startswith("<reason>"), g.text
    assert any("</reason>" in g.text for g in generations), [g.text for g in generations]
    assert any(g.finish_reason == "stop" and is_complete_reply(g.text) for g in generations)
    assert any(g.redrawn for g in generations)

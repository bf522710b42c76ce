"""The student around a released language model: its text logits equal the source's, for a tiny random Llama and
a tiny random Qwen2 built from configs, and for SmolLM2-135M-Instruct itself when the cache holds it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from deepmmsearch.cli import app
from deepmmsearch.config import cache_dir
from deepmmsearch.errors import ConfigError, InputError
from deepmmsearch.models.build import load_model
from deepmmsearch.models.chat import SPECIAL_TOKENS
from deepmmsearch.models.graft import SMOLLM2, graft, load_lm, mrope_section, resolve_lm

CHAT = [
    {"role": "system", "content": "You answer questions."},
    {"role": "user", "content": "What is the capital of France? <reason>and tags</reason>"},
]


def _assert_same_text_logits(student_dir: Path, lm, lm_tokenizer) -> None:
    student, processor = load_model(student_dir, dtype="float32", device="cpu")
    text = processor.tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    ids = processor.tokenizer(text, return_tensors="pt")["input_ids"]
    assert ids.tolist() == lm_tokenizer(text, return_tensors="pt")["input_ids"].tolist()  # the LM's own ids
    with torch.no_grad():
        ours = student(input_ids=ids).logits[..., : lm.config.vocab_size]
        theirs = lm(input_ids=ids).logits
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_grafted_text_logits_equal_the_source(tmp_path: Path, tiny_lm_factory, family: str) -> None:
    from transformers import AutoTokenizer

    source = tiny_lm_factory(family)
    source_tokenizer = AutoTokenizer.from_pretrained(source)
    out = graft(tmp_path / "student", str(source), vision="tiny", say=lambda _: None)
    lm, lm_tokenizer = load_lm(resolve_lm(str(source)))
    _assert_same_text_logits(out, lm, lm_tokenizer)

    student, processor = load_model(out, dtype="float32", device="cpu")
    tokenizer = processor.tokenizer
    assert tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS[:3])) == source_tokenizer.convert_tokens_to_ids(
        list(SPECIAL_TOKENS[:3])
    )
    added = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS[3:]))
    assert added == list(range(len(source_tokenizer), len(source_tokenizer) + len(SPECIAL_TOKENS) - 3))
    rows = student.get_input_embeddings().weight
    assert torch.allclose(rows[added[0]], lm.get_input_embeddings().weight.mean(0))
    assert student.config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert student.config.vision_config.out_hidden_size == 64
    assert student.config.text_config.rope_parameters["mrope_section"] == mrope_section(16) == [2, 3, 3]


def test_a_grafted_student_sees(tiny_student: Path) -> None:
    from PIL import Image

    from deepmmsearch.models.encoding import encode_conversation
    from deepmmsearch.records import Message

    model, processor = load_model(tiny_student, dtype="float32", device="cpu")
    enc = encode_conversation(processor, [Message("user", "What is this?", image="x")], Image.new("RGB", (64, 64)))
    assert int(enc["mm_token_type_ids"].sum()) > 0
    with torch.no_grad():
        logits = model(**{k: v for k, v in enc.items() if k != "assistant_mask"}).logits
    assert logits.shape[1] == enc["input_ids"].shape[1] and torch.isfinite(logits).all()


def test_sources_and_errors(tmp_path: Path) -> None:
    assert resolve_lm("some-org/some-model").path == "some-org/some-model"  # a hub id passes through
    gguf = tmp_path / "model.gguf"
    with pytest.raises(InputError, match="no such GGUF"):
        resolve_lm(str(gguf))
    gguf.write_bytes(b"")
    assert resolve_lm(str(gguf)).gguf_file == "model.gguf"
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no config\.json"):
        resolve_lm(str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="vision size"):
        graft(tmp_path / "x", str(tmp_path / "empty"), vision="huge")
    result = CliRunner().invoke(app, ["model", "init", "--out", str(tmp_path / "y"), "--lm", str(tmp_path / "empty")])
    assert result.exit_code != 0 and "no config.json" in result.output


def test_the_cli_builds_a_student(tmp_path: Path, tiny_lm_factory) -> None:
    source = tiny_lm_factory("qwen2")
    result = CliRunner().invoke(app, ["model", "init", "--out", str(tmp_path / "s"), "--lm", str(source)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s" / "config.json").is_file() and (tmp_path / "s" / "processor_config.json").is_file()


@pytest.mark.skipif(
    not (cache_dir() / "models" / SMOLLM2).is_dir(), reason="SmolLM2 is not in the cache (dmms model init --lm ...)"
)
def test_smollm2_student_equals_smollm2(tmp_path: Path) -> None:
    out = graft(tmp_path / "student", SMOLLM2, say=lambda _: None)
    lm, tokenizer = load_lm(resolve_lm(SMOLLM2))
    _assert_same_text_logits(out, lm, tokenizer)

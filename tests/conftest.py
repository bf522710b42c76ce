"""Shared fixtures: a fake OpenAI-compatible server on 127.0.0.1 and the shipped example."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deepmmsearch.tools import ToolsConfig

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@dataclass
class FakeOpenAI:
    """A chat-completions server that answers from a script and records every request it receives.

    ``replies`` is consumed in order; an item may be a string (the assistant text) or a tuple
    ``(status, body_dict_or_text, headers)`` to answer with an error.
    """

    replies: list = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    base_url: str = ""
    responder: Callable[[dict], object] | None = None

    def next_reply(self, body: dict) -> object:
        if self.responder is not None:
            return self.responder(body)
        return self.replies.pop(0) if self.replies else (500, {"error": {"message": "script exhausted"}}, {})


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            fake.requests.append(body)
            fake.headers.append({k.lower(): v for k, v in self.headers.items()})
            reply = fake.next_reply(body)
            if isinstance(reply, tuple):
                status, payload, extra = reply
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
            else:
                status, data = 200, json.dumps(_completion(body, str(reply))).encode()
                self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _completion(body: dict, text: str) -> dict:
    # Like real servers, drop the stop string that ended generation.
    finish = "stop"
    for stop in body.get("stop") or []:
        if text.endswith(stop):
            text = text[: -len(stop)]
            break
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory, monkeypatch):
    """Keep every test's caches (tool cache, default indexes) out of the user's ~/.cache."""
    monkeypatch.setenv("DMMS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "dmms-cache"))


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> Path:
    """A small offline world (24 pictured entities) with its knowledge base, built once per test session."""
    from deepmmsearch.world.build import WorldConfig, build_world, index_world

    out = tmp_path_factory.mktemp("world")
    build_world(out, WorldConfig(seed=0, entities=24, captions=48))
    index_world(out, show_progress=False)
    return out


def memory_tools(kb: Path) -> ToolsConfig:
    """The in-memory tools over a small knowledge base: fast, and no cache between tests."""
    return ToolsConfig(
        text_search="memory", image_search="memory", grounder="none", summarizer="list", kb=str(kb), no_cache=True
    )


@pytest.fixture
def example_tools(example_kb: Path) -> ToolsConfig:
    return memory_tools(example_kb)


@pytest.fixture
def example_kb() -> Path:
    return EXAMPLES / "kb"


@pytest.fixture
def example_image() -> Path:
    return EXAMPLES / "lighthouse.png"


# ---------------------------------------------------------------------------------------------- tiny language models


def _tiny_source_tokenizer() -> object:
    """A byte-level BPE that, like SmolLM2's, holds only three of Qwen's special tokens (ids 0-2)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from deepmmsearch.models.chat import SPECIAL_TOKENS
    from deepmmsearch.models.tokenizers import default_corpus

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=list(SPECIAL_TOKENS[:3]), initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(default_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>")


def save_tiny_lm(folder: Path, family: str = "llama") -> Path:
    """A tiny random causal LM of a family that ``dmms model init --lm`` takes, saved with its tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tokenizer = _tiny_source_tokenizer()
    shape = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
    )
    torch.manual_seed(1)
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**shape, rope_theta=100_000.0, tie_word_embeddings=True))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**shape, rope_theta=1_000_000.0, tie_word_embeddings=False))
        with torch.no_grad():  # Qwen2's q/k/v biases are real weights: make them count
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    proj.bias.normal_(0, 0.5)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_lm_factory(tmp_path_factory) -> Callable[[str], Path]:
    """``factory(family)``: the folder of a tiny random ``llama`` or ``qwen2`` LM (built once per family)."""
    built: dict[str, Path] = {}

    def factory(family: str = "llama") -> Path:
        if family not in built:
            built[family] = save_tiny_lm(tmp_path_factory.mktemp(f"lm-{family}"), family)
        return built[family]

    return factory


@pytest.fixture(scope="session")
def tiny_student(tiny_lm_factory, tmp_path_factory) -> Path:
    """A student around a tiny random Llama (`dmms model init --lm`), loadable as hf:DIR."""
    from deepmmsearch.models.graft import graft

    return graft(tmp_path_factory.mktemp("student") / "tiny", str(tiny_lm_factory("llama")), say=lambda _: None)

"""SFT and generation throughput of the grafted student: our trainer and hf: policy against bare PyTorch.

Grafts a student around ``--lm`` (``dmms model init --lm``) in a temporary folder, then:
- SFT: ``--steps`` optimizer steps of 8 conversations (``per_device_batch_size`` 1, LoRA rank 16 on every
  language-model linear, vision frozen, ``--dtype``; bfloat16 on a CPU is float32 weights under bfloat16 autocast)
  through our trainer (``train_sft``), then the same rows, in the order the trainer drew them, through a bare
  PyTorch loop: the PEFT model of ``trainable_model``, our collator, AdamW, gradient clipping, a step every 8
  conversations. ``--bare-head`` picks the bare loop's loss: the model's own over the full logits (``full``), TRL's
  fused LM head as the trainer computes it (``fused``: then the ratio is the trainer's overhead alone), or ``both``.
  Tokens are counted as TRL counts ``num_tokens`` (the attention mask's sum). Model loading, encoding the rows and
  the first optimizer step (warm-up) are left out on both sides: the figure is the tokens of steps 2..N over the
  time from the end of step 1 to the end of step N (the trainer's per-step log times). The goal for the ratio
  trainer/bare is 0.8 or more.
- Generation: the first turns (system prompt, question with its image) of ``--batch`` conversations of the data,
  each given exactly ``--new`` new tokens (stops off), greedy, through transformers' ``model.generate`` (one
  left-padded batch) and through the hf: policy (guided decoding on, then off). Encoding the prompts is timed on
  both sides; each figure is the fastest of ``--repeat`` runs after a warm-up.

Without ``--data`` a small offline world and its SFT data (``dmms world build`` then ``dmms data build --teacher
oracle --prompts short``) are built in the temporary folder first. ``--tiny`` grafts a tiny random Llama instead of
``--lm`` and runs 2 steps of 2 conversations, both bare heads, on one thread (teacher on the in-memory tools): a
smoke test of the script, not a measurement. On a busy machine pass ``--threads 1``: intra-op threads that wait on
each other made every figure 10-20x slower and the ratios noise (2 cores shared with a training job).

    python bench/bench_student.py [--lm smollm2-135m-instruct] [--data DIR] [--steps 4] [--dtype bfloat16]
                                  [--bare-head full|fused|both] [--new 48] [--batch 8] [--repeat 3] [--threads N]
    python bench/bench_student.py --tiny
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

import deepmmsearch.policies.hf as hf_module
import deepmmsearch.train.common as train_common
import deepmmsearch.train.sft as train_sft_module
from deepmmsearch.images import load_image
from deepmmsearch.models.build import load_model
from deepmmsearch.models.chat import PAD_TOKEN, stop_ids
from deepmmsearch.models.encoding import encode_conversation
from deepmmsearch.models.graft import SMOLLM2, graft
from deepmmsearch.policies import Conversation, SamplingConfig
from deepmmsearch.policies.hf import HFConfig, HFPolicy, ReplyGuide
from deepmmsearch.train.common import device_and_precision, read_metrics, trainable_model
from deepmmsearch.train.config import LoraSettings, Schedule, TrainSFTConfig
from deepmmsearch.train.sft import ConversationCollator, load_sft_rows, resolve_image, row_messages, train_sft

PER_STEP = 8  # conversations per optimizer step (the global batch; one conversation per forward pass)
TINY_PER_STEP = 2  # with --tiny, to keep the smoke run short
LORA = LoraSettings(rank=16, alpha=32, dropout=0.0)
LEARNING_RATE = 1e-4  # TrainSFTConfig's default
MAX_GRAD_NORM = 1.0  # transformers' default, so the bare loop clips too
MAX_LENGTH = 4096  # conversations longer than this are left out of both loops (as the demo's SFT does)


# ---------------------------------------------------------------------------------------------- the models


def _tiny_source_tokenizer() -> Any:
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


def save_tiny_lm(folder: Path) -> Path:
    """A tiny random Llama (the tests' ``save_tiny_lm``), saved with its tokenizer: a ``--lm`` for smoke runs."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _tiny_source_tokenizer()
    torch.manual_seed(1)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        rope_theta=100_000.0,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_data(folder: Path, entities: int, size: int, memory_tools: bool) -> Path:
    """``dmms world build`` (no captions) and ``dmms data build --teacher oracle --prompts short --size SIZE`` into
    ``folder``; ``memory_tools`` plays the teacher on the in-memory tools (faster, for smoke runs)."""
    from deepmmsearch.data.build import DataBuildConfig
    from deepmmsearch.data.build import build_data as run_teacher
    from deepmmsearch.records import read_questions
    from deepmmsearch.runner import RunConfig
    from deepmmsearch.tools import ToolsConfig
    from deepmmsearch.world.build import WorldConfig, build_world, index_world

    world, data = folder / "world", folder / "data"
    build_world(world, WorldConfig(seed=0, entities=entities, captions=0))
    index_world(world, show_progress=False)
    tools = ToolsConfig(kb=str(world / "kb"), no_cache=True)
    if memory_tools:
        tools = ToolsConfig(
            text_search="memory", image_search="memory", grounder="none", summarizer="list", kb=tools.kb, no_cache=True
        )
    run_config = RunConfig(tools=tools)
    run_config.agent.prompts = "short"
    questions = read_questions(world / "questions" / "train.jsonl")
    asyncio.run(run_teacher(questions, "oracle", data, DataBuildConfig(size=size), run_config))
    return data


# ---------------------------------------------------------------------------------------------- SFT


@contextlib.contextmanager
def instrumented_trainer(order: list[dict], clocks: dict[int, float]) -> Iterator[None]:
    """While open, ``train_sft`` records the rows it batches, in order, into ``order``, and the time each optimizer
    step's log was written into ``clocks`` (by step). Nothing else of the trainer changes."""
    make_logger, collator_class = train_common.make_metrics_logger, train_sft_module.ConversationCollator

    class RecordingCollator(collator_class):  # type: ignore[misc, valid-type]
        def __call__(self, rows: list[dict]) -> dict[str, Any]:
            order.extend(rows)
            return super().__call__(rows)

    def timed_logger(out: str | Path, extra: Any = None) -> Any:
        logger = make_logger(out, extra)
        on_log = logger.on_log

        def stamped(args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            on_log(args, state, control, logs=logs, **kwargs)
            if logs and "loss" in logs:  # a step's log (the final summary has no loss)
                clocks[state.global_step] = time.perf_counter()

        logger.on_log = stamped
        return logger

    train_common.make_metrics_logger = timed_logger
    train_sft_module.ConversationCollator = RecordingCollator
    try:
        yield
    finally:
        train_common.make_metrics_logger = make_logger
        train_sft_module.ConversationCollator = collator_class


def run_trainer(student: Path, data: Path, out: Path, steps: int, per_step: int, dtype: str) -> dict[str, Any]:
    """``steps`` optimizer steps of ``train_sft`` on the first ``steps`` x ``per_step`` conversations: the rows it
    trained on, in order, and its tokens and times."""
    order: list[dict] = []
    clocks: dict[int, float] = {}
    config = TrainSFTConfig(
        model=str(student),
        data=str(data),
        out=str(out),
        lora=LORA,
        limit=steps * per_step,
        global_batch_size=per_step,
        max_length=MAX_LENGTH,
        schedule=Schedule(
            max_steps=steps,
            learning_rate=LEARNING_RATE,
            per_device_batch_size=1,
            dtype=dtype,
            device="cpu",
            logging_steps=1,
            save_steps=10_000,
        ),
    )
    with instrumented_trainer(order, clocks):
        summary = train_sft(config)
    records = read_metrics(out)
    tokens = {r["step"]: int(r["num_tokens"]) for r in records if "num_tokens" in r}
    runtime = next(r["train_runtime"] for r in reversed(records) if "train_runtime" in r)
    if sorted(tokens) != list(range(1, steps + 1)) or sorted(clocks) != sorted(tokens):
        raise SystemExit(f"the trainer logged steps {sorted(tokens)} (timed {sorted(clocks)}); expected 1..{steps}")
    return {
        "rows": order[: steps * per_step],
        "examples": summary["examples"],
        "steady_tokens": tokens[steps] - tokens[1],
        "steady_s": clocks[steps] - clocks[1],
        "tokens": tokens[steps],
        "runtime_s": runtime,
    }


def run_bare(
    student: Path, data_dir: Path, rows: list[dict], steps: int, per_step: int, dtype: str, fused: bool
) -> dict[str, Any]:
    """The same rows, in the same order, through a bare PyTorch LoRA loop: tokens and times as for the trainer.
    The loss is the model's own (full logits) or, with ``fused``, TRL's fused LM head's, as TRL's SFTTrainer uses."""
    _, bf16, model_dtype = device_and_precision("cpu", dtype)
    model, processor = trainable_model(str(student), model_dtype, LORA)
    if fused:
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(model.get_base_model(), outputs=("log_probs",))
    collator = ConversationCollator(processor, data_dir)
    collator.lengths(rows)  # encode every row once before training, as train_sft does
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=0.0)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    tokens: list[int] = []
    clocks: list[float] = []
    start = time.perf_counter()
    for step in range(steps):
        seen = 0
        for row in rows[step * per_step : (step + 1) * per_step]:
            batch = collator([row])
            seen += int(batch["attention_mask"].sum())
            with autocast:
                if fused:
                    output = model(**batch, fused_lm_head=True)
                    loss = -output.log_probs.sum() / output.label_mask.sum().clamp(min=1)
                else:
                    loss = model(**batch).loss
            (loss / per_step).backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens.append(seen)
        clocks.append(time.perf_counter())
    del model, optimizer
    return {
        "steady_tokens": sum(tokens[1:]),
        "steady_s": clocks[-1] - clocks[0],
        "tokens": sum(tokens),
        "runtime_s": clocks[-1] - start,
    }


# ---------------------------------------------------------------------------------------------- generation


def first_turns(data: Path, count: int) -> list[Conversation]:
    """The first turns (messages up to the first user message, its image loaded) of ``count`` conversations of the
    data, reusing conversations when there are fewer."""
    rows, data_dir = load_sft_rows(str(data), count)
    conversations = []
    for index in range(count):
        row = rows[index % len(rows)]
        image_path = resolve_image(row["image_path"], data_dir)
        messages = row_messages(row, image_path)
        first_user = next(i for i, m in enumerate(messages) if m.role == "user")
        conversations.append(Conversation(f"p{index}", messages[: first_user + 1], load_image(image_path)))
    return conversations


def policy_generate(
    loaded: tuple[Any, Any], guide: ReplyGuide, prompts: list[Conversation], new: int, guided: bool
) -> int:
    """The prompts through the hf: policy, each reply exactly ``new`` tokens; returns the tokens generated."""
    config = HFConfig(prefix_cache=False, guided=guided, max_batch_size=len(prompts))
    policy = HFPolicy("student", SamplingConfig(max_new_tokens=new), config, loaded=loaded, guide=guide)
    policy.stop_ids = set()  # generate exactly `new` tokens per reply
    return sum(len(g.token_ids) for g in policy.generate_sync(prompts))


def hf_generate(loaded: tuple[Any, Any], prompts: list[Conversation], new: int) -> int:
    """The prompts through ``model.generate`` as one left-padded greedy batch, exactly ``new`` new tokens each;
    returns the tokens generated."""
    model, processor = loaded
    pad_id = processor.tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    encoded = [encode_conversation(processor, c.messages, c.image, add_generation_prompt=True) for c in prompts]
    width = max(e["input_ids"].shape[1] for e in encoded)

    def left_padded(key: str, value: int) -> torch.Tensor:
        return torch.cat([torch.nn.functional.pad(e[key], (width - e[key].shape[1], 0), value=value) for e in encoded])

    inputs: dict[str, Any] = {
        "input_ids": left_padded("input_ids", pad_id),
        "attention_mask": left_padded("attention_mask", 0),
        "mm_token_type_ids": left_padded("mm_token_type_ids", 0),
    }
    with_images = [e for e in encoded if "pixel_values" in e]
    if with_images:
        inputs["pixel_values"] = torch.cat([e["pixel_values"] for e in with_images]).to(model.dtype)
        inputs["image_grid_thw"] = torch.cat([e["image_grid_thw"] for e in with_images])
    with torch.inference_mode():
        output = model.generate(
            **{k: v.to(model.device) for k, v in inputs.items()},
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
            pad_token_id=pad_id,
        )
    return (output.shape[1] - width) * output.shape[0]


def fastest_rate(run: Any, repeat: int) -> tuple[float, int]:
    """Generated tokens/s of the fastest of ``repeat`` runs of ``run()`` (which returns its tokens), and its tokens."""
    best, tokens = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        tokens = run()
        best = min(best, time.perf_counter() - start)
    return tokens / best, tokens


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm", default=SMOLLM2, help="language model to graft (dmms model init --lm)")
    parser.add_argument("--data", type=Path, help="a `dmms data build` folder (default: build a small one)")
    parser.add_argument("--steps", type=int, help="SFT optimizer steps of 8 conversations (default 4; --tiny 2)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16")
    parser.add_argument(
        "--bare-head",
        choices=("full", "fused", "both"),
        default="full",
        help="loss of the bare loop: the model's own over full logits, TRL's fused LM head (as the trainer), or both",
    )
    parser.add_argument("--new", type=int, help="tokens generated per reply (default 48; --tiny 8)")
    parser.add_argument("--batch", type=int, help="conversations generated together (default 8; --tiny 4)")
    parser.add_argument("--repeat", type=int, help="generation runs per figure; the fastest counts (default 3)")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's; --tiny 1). On a busy machine more threads spin-wait on each other",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="a tiny random Llama, 2 steps of 2 conversations, both heads: a smoke run"
    )
    args = parser.parse_args()
    tiny = args.tiny
    steps = args.steps or (2 if tiny else 4)
    per_step = TINY_PER_STEP if tiny else PER_STEP
    heads = ("full", "fused") if tiny or args.bare_head == "both" else (args.bare_head,)
    new = args.new or (8 if tiny else 48)
    batch = args.batch or (4 if tiny else 8)
    repeat = args.repeat or (1 if tiny else 3)
    if steps < 2:
        parser.error("--steps must be at least 2: the first step is warm-up and is left out of the figures")
    threads = args.threads or (1 if tiny else 0)
    if threads:
        torch.set_num_threads(threads)
    hf_module.STOP_STRINGS = ()  # a closing tag must not end a reply early: every run generates the same count

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data, source = args.data, str(args.data)
        if data is None:
            start = time.perf_counter()
            size = steps * per_step if tiny else max(40, steps * per_step)
            data = build_data(tmp / "built", entities=12 if tiny else 36, size=size, memory_tools=tiny)
            source = f"a {size}-conversation build of a small world"
            print(f"built a world and {size} SFT conversations in {time.perf_counter() - start:.0f} s")
        lm = str(save_tiny_lm(tmp / "tiny-lm")) if tiny else args.lm
        start = time.perf_counter()
        student = graft(tmp / "student", lm, vision="tiny", seed=0, say=print)
        print(f"grafted {'a tiny random Llama' if tiny else lm} in {time.perf_counter() - start:.0f} s")

        # --- SFT: our trainer, then the rows it trained on, in its order, through the bare loop
        trainer = run_trainer(student, data, tmp / "sft", steps, per_step, args.dtype)
        gc.collect()
        if len(trainer["rows"]) < steps * per_step:
            raise SystemExit(f"the trainer batched {len(trainer['rows'])} rows; expected {steps * per_step}")
        _, data_dir = load_sft_rows(str(data), 1)
        bare = {}
        for head in heads:
            bare[head] = run_bare(student, data_dir, trainer["rows"], steps, per_step, args.dtype, head == "fused")
            gc.collect()

        # --- generation: the same prompts through model.generate and the hf: policy
        loaded = load_model(student, args.dtype, "cpu")
        model, processor = loaded
        params = sum(p.numel() for p in model.parameters())
        prompts = first_turns(data, batch)
        tokenizer = processor.tokenizer
        guide = ReplyGuide(tokenizer, model.get_output_embeddings().weight.shape[0], stop_ids(tokenizer))
        prompt_tokens = [
            encode_conversation(processor, c.messages, c.image, add_generation_prompt=True)["input_ids"].shape[1]
            for c in prompts
        ]
        runs = {
            "model.generate (batched prefill)": lambda: hf_generate(loaded, prompts, new),
            "hf: policy, guided": lambda: policy_generate(loaded, guide, prompts, new, guided=True),
            "hf: policy, unguided": lambda: policy_generate(loaded, guide, prompts, new, guided=False),
        }
        for run in runs.values():  # warm-up
            run()
        rates = {name: fastest_rate(run, repeat) for name, run in runs.items()}

    # --- report
    precision = "float32" if args.dtype == "float32" else "float32 weights under bfloat16 autocast"
    print()
    print(
        f"[student: {'tiny random Llama' if tiny else args.lm}, {params / 1e6:.1f}M params, CPU, "
        f"{torch.get_num_threads()} threads]{'  (--tiny: a smoke run, not a measurement)' if tiny else ''}"
    )
    print(
        f"SFT on {source}: {steps} steps x {per_step} conversations ({trainer['examples']} trained), one per "
        f"forward pass, LoRA r{LORA.rank} on the LM linears, vision frozen, {precision}"
    )
    print(f"  tokens/s over steps 2-{steps}: model loading, encoding and the first step (warm-up) left out of both")
    rows = [("trainer (train_sft)", trainer, "whole train(), with step 1 and the final checkpoint save")]
    rows += [(f"bare loop, {head} head", bare[head], "whole loop, with step 1") for head in heads]
    for name, figures, whole in rows:
        rate = figures["steady_tokens"] / figures["steady_s"]
        print(
            f"  {name:24s} {rate:9.1f} tokens/s  ({figures['steady_tokens']} tokens in {figures['steady_s']:.2f} s; "
            f"{whole}: {figures['tokens'] / figures['runtime_s']:.1f} tokens/s)"
        )
    trainer_rate = trainer["steady_tokens"] / trainer["steady_s"]
    for head in heads:
        ratio = trainer_rate / (bare[head]["steady_tokens"] / bare[head]["steady_s"])
        print(f"  ratio trainer/bare ({head} head): {ratio:.2f}  (goal >= 0.8)")
    print(
        f"generation: {batch} first turns of the data ({min(prompt_tokens)}-{max(prompt_tokens)} prompt tokens), "
        f"{new} new tokens each, greedy, stops off, {str(model.dtype).removeprefix('torch.')} weights; "
        f"encoding and prefill timed, fastest of {repeat} after a warm-up"
    )
    baseline = rates["model.generate (batched prefill)"][0]
    for name, (rate, tokens) in rates.items():
        print(f"  {name:32s} {rate:9.1f} tokens/s  ({tokens} tokens)  = {rate / baseline:.2f}x model.generate")


if __name__ == "__main__":
    main()

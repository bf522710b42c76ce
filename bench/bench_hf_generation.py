"""Cost of a multi-turn episode on the hf: policy, relative to generating the same tokens in one pass.

Builds a model of ``--size`` with each vocabulary (small, qwen) in a temporary folder, then for each:
- episode: ``--turns`` turns of ``--new`` generated tokens each, a tool observation between turns, prefix reuse on;
- the same episode with prefix reuse off (every turn prefills the whole history);
- one pass: every non-generated token of the episode (system, question, observations) prefilled at once, then
  as many tokens decoded as the episode generated: the floor that an ideal multi-turn engine would reach;
and generation tokens/s at batch sizes 1 and 8. Stops are disabled so that every run generates the same count;
each figure is the fastest of ``--repeat`` runs.

    python bench/bench_hf_generation.py [--new 32] [--turns 4] [--size tiny] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

import deepmmsearch.policies.hf as hf_module
from deepmmsearch.models.build import init_model, load_model
from deepmmsearch.policies import Conversation, SamplingConfig
from deepmmsearch.policies.hf import HFConfig, HFPolicy
from deepmmsearch.protocol import EpisodeState, Rules, first_turn_prompt, render_observation, system_prompt
from deepmmsearch.records import Message

IMAGE = Path(__file__).resolve().parents[1] / "examples" / "lighthouse.png"
OBSERVATION = "Korvath Point Lighthouse is a 38-metre granite tower built in 1872 at the mouth of the harbour."


def make_policy(loaded, new: int, reuse: bool) -> HFPolicy:
    policy = HFPolicy("bench", SamplingConfig(max_new_tokens=new), HFConfig(prefix_cache=reuse), loaded=loaded)
    policy.stop_ids = set()  # generate exactly `new` tokens per turn
    return policy


def episode(policy: HFPolicy, image: Image.Image, turns: int) -> tuple[float, Conversation, HFPolicy]:
    rules, state = Rules(), EpisodeState()
    messages = [Message("system", system_prompt()), Message("user", first_turn_prompt("How tall?", state, rules), "x")]
    conversation = Conversation("e", messages, image)
    start = time.perf_counter()
    for turn in range(turns):
        reply = policy.generate_sync([conversation])[0]
        conversation.messages.append(Message("assistant", reply.text, token_ids=reply.token_ids))
        if turn < turns - 1:
            conversation.messages.append(Message("user", render_observation(OBSERVATION, state, rules)))
    return time.perf_counter() - start, conversation, policy


def one_pass(loaded, image: Image.Image, final: Conversation, generated: int) -> tuple[float, int]:
    """Prefill every non-generated token of the episode at once, then decode as many tokens as it generated."""
    prompt = "\n".join(m.text for m in final.messages[1:] if m.role == "user")
    messages = [final.messages[0], Message("user", prompt, "x")]
    policy = make_policy(loaded, generated, reuse=False)
    start = time.perf_counter()
    policy.generate_sync([Conversation("p", messages, image)])
    return time.perf_counter() - start, policy.stats["prompt_tokens"]


def throughput(loaded, image: Image.Image, batch: int, new: int) -> float:
    policy = make_policy(loaded, new, reuse=False)
    conversations = [
        Conversation(f"t{i}", [Message("system", "S"), Message("user", f"Question {i}?", "x")], image)
        for i in range(batch)
    ]
    start = time.perf_counter()
    policy.generate_sync(conversations)
    return batch * new / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new", type=int, default=32, help="tokens generated per turn")
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--size", default="tiny", help="model size to build (tiny, small, ...)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--dtype", default="auto", help="auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement; the fastest counts")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (more threads slow a busy machine)")
    args = parser.parse_args()
    hf_module.STOP_STRINGS = ()  # random weights may emit a closing tag; keep the token count fixed
    torch.set_num_threads(args.threads)
    image = Image.open(IMAGE).convert("RGB")
    with tempfile.TemporaryDirectory() as tmp:
        for vocab in ("small", "qwen"):
            built = init_model(Path(tmp) / vocab, vocab=vocab, size=args.size)
            loaded = load_model(built, dtype=args.dtype, device=args.device)
            make_policy(loaded, 4, reuse=False).generate_sync(  # warm-up
                [Conversation("w", [Message("user", "hi", "x")], image)]
            )
            runs = [episode(make_policy(loaded, args.new, reuse=True), image, args.turns) for _ in range(args.repeat)]
            t_reuse = min(t for t, _, _ in runs)
            _, final, reuse = runs[0]
            t_fresh = min(
                episode(make_policy(loaded, args.new, reuse=False), image, args.turns)[0] for _ in range(args.repeat)
            )
            generated = reuse.stats["generated_tokens"]
            passes = [one_pass(loaded, image, final, generated) for _ in range(args.repeat)]
            t_pass, pass_prompt = min(t for t, _ in passes), passes[0][1]
            params = sum(p.numel() for p in loaded[0].parameters())
            where = f"{loaded[0].device}, {loaded[0].dtype}"
            print(f"[{vocab} vocab, {args.size}, {params / 1e6:.2f}M params, {where}] {args.turns}-turn episode")
            print(f"  one pass (prefill {pass_prompt} + decode {generated}): {t_pass * 1000:8.1f} ms")
            print(f"  episode, prefix reuse:    {t_reuse * 1000:8.1f} ms  = {t_reuse / t_pass:.2f}x one pass")
            print(f"  episode, no reuse:        {t_fresh * 1000:8.1f} ms  = {t_fresh / t_pass:.2f}x one pass")
            print(f"  prefilled tokens with reuse: {reuse.stats['prefilled_tokens']} of {reuse.stats['prompt_tokens']}")
            for batch in (1, 8):
                rate = max(throughput(loaded, image, batch, 64) for _ in range(args.repeat))
                print(f"  generation, batch {batch}: {rate:8.1f} tokens/s")


if __name__ == "__main__":
    main()

"""``vllm:PATH_OR_ID``: a model of a Qwen-VL family run by an in-process vLLM engine, on a GPU.

The prompt is built exactly as the ``hf:`` policy builds it (:func:`encode_conversation`: image placeholders
expanded, earlier replies as the ids that were sampled) and handed to vLLM as token ids with the image as
multi-modal data, so both backends read the same tokens; vLLM's automatic prefix caching does what the ``hf:``
policy's per-episode KV cache does. Guided decoding is vLLM's structured outputs with the protocol's reply
pattern. GRPO's rollouts use this policy on the engine TRL colocates with the trainer (``use_vllm: true``), whose
weights TRL syncs before each step's rollouts.

vLLM needs a CUDA machine and is not a dependency: ``pip install -e ".[gpu]"`` installs vLLM 0.30.0, the newest
release in TRL 1.16's supported range that takes our transformers, built on torch 2.13.0 as this project is.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from deepmmsearch.devices import to_thread
from deepmmsearch.errors import ConfigError, ContextLimitError, PolicyError
from deepmmsearch.models.chat import never_sampled_ids, stop_ids
from deepmmsearch.models.encoding import encode_conversation
from deepmmsearch.policies.base import Conversation, Generation, Policy, SamplingConfig, reply_text
from deepmmsearch.protocol import REPLY_PATTERN, STOP_STRINGS

INSTALL_HINT = 'vLLM is not installed: pip install -e ".[gpu]" (vLLM 0.30.0, which TRL 1.16 supports) on a GPU machine'


@dataclass
class VLLMConfig:
    """How the vLLM engine is built and sampled."""

    gpu_memory_utilization: float = field(default=0.9, metadata={"help": "share of GPU memory vLLM may take"})
    max_model_len: int | None = field(default=None, metadata={"help": "longest context; None: the model's own"})
    tensor_parallel_size: int = field(default=1, metadata={"help": "GPUs one engine spans"})
    max_batch_size: int = field(default=64, metadata={"help": "conversations sent to the engine together"})
    guided: bool = field(default=True, metadata={"help": "structured outputs: only replies in the tag layout"})
    seed: int | None = field(default=None, metadata={"help": "seed of the per-request sampling seeds"})


def sampling_params(regex: str | None = None, **settings: Any) -> Any:
    """vLLM's ``SamplingParams`` for ``settings``, guided by ``regex`` when given."""
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    if regex is not None:
        settings["structured_outputs"] = StructuredOutputsParams(regex=regex)
    return SamplingParams(**settings)


class VLLMPolicy(Policy):
    """A vLLM engine as a policy (see the module docstring)."""

    marks_start = True  # batches wait on a lock: the reply timeout starts when one holds it

    def __init__(
        self,
        path: str,
        sampling: SamplingConfig | None = None,
        config: VLLMConfig | None = None,
        loaded: tuple[Any, Any] | None = None,
        params: Callable[..., Any] = sampling_params,
    ) -> None:
        """Start an engine for the model at ``path``, or use ``loaded`` = (engine, processor) as given (the engine
        TRL colocates with the trainer, say). ``params`` builds each request's sampling parameters."""
        self.config = config or VLLMConfig()
        self.sampling = sampling or SamplingConfig()
        self.name = f"vllm:{path}"
        self.max_batch_size = self.config.max_batch_size
        self.engine, self.processor = loaded if loaded is not None else _start_engine(path, self.config)
        self.params = params
        tokenizer = self.processor.tokenizer
        self.stop_ids = stop_ids(tokenizer)
        self.logit_bias = dict.fromkeys(never_sampled_ids(tokenizer), -100.0)
        self.max_context = int(self.engine.llm_engine.model_config.max_model_len)
        # Each request gets its own seed: one shared seed would give every member of a GRPO group the same reply.
        self._seeds = random.Random(self.config.seed)
        self._lock = threading.Lock()  # one batch on the engine at a time; the event loop stays free

    async def generate(self, conversations: Sequence[Conversation]) -> list[Generation]:
        try:
            return await to_thread(self.generate_sync, list(conversations))  # on this rank's GPU, not GPU 0
        except (RuntimeError, ValueError) as error:  # vLLM reports engine failures as these
            raise PolicyError(f"{self.name}: {error}") from error

    def generate_sync(self, conversations: list[Conversation]) -> list[Generation]:
        """The blocking body of :meth:`generate`: one engine call for the whole batch."""
        with self._lock:
            started = time.monotonic()
            for conversation in conversations:
                conversation.started_at = started  # the reply timeout counts from here, not from the queue
            prompts, settings, rows = [], [], []
            out = [Generation(text="", token_ids=[], logprobs=[], finish_reason="context_limit") for _ in conversations]
            for row, conversation in enumerate(conversations):
                prompt = self._prompt(conversation)
                room = conversation.reply_room(
                    len(prompt["prompt_token_ids"]), self.sampling.max_new_tokens, self.max_context
                )
                if room < 1 or len(prompt["prompt_token_ids"]) >= self.max_context - 1:
                    continue  # no room for a reply: stays a context_limit generation
                prompts.append(prompt)
                settings.append(self._settings(room))
                rows.append(row)
            if not prompts:
                raise ContextLimitError(
                    f"no room for a reply: the conversation is at the model's context ({self.max_context}) or at "
                    "the episode's token budget"
                )
            results = self.engine.generate(prompts, sampling_params=settings, use_tqdm=False)
            for row, prompt, result in zip(rows, prompts, results, strict=True):
                out[row] = self._generation(prompt, result.outputs[0])
            return out

    def _prompt(self, conversation: Conversation) -> dict[str, Any]:
        enc = encode_conversation(self.processor, conversation.messages, conversation.image, add_generation_prompt=True)
        prompt: dict[str, Any] = {"prompt_token_ids": enc["input_ids"][0].tolist()}
        if enc.get("image_grid_thw") is not None:
            prompt["multi_modal_data"] = {"image": conversation.image}
        return prompt

    def _settings(self, max_tokens: int) -> Any:
        greedy = self.sampling.temperature == 0
        return self.params(
            regex=REPLY_PATTERN if self.config.guided else None,
            n=1,
            temperature=self.sampling.temperature,
            top_p=1.0 if greedy else self.sampling.top_p,
            max_tokens=max_tokens,
            stop=list(STOP_STRINGS),
            include_stop_str_in_output=True,
            stop_token_ids=sorted(self.stop_ids),
            logprobs=0,
            logit_bias=self.logit_bias,
            seed=None if greedy else self._seeds.randrange(2**31),
        )

    def _generation(self, prompt: dict[str, Any], output: Any) -> Generation:
        ids = list(output.token_ids)
        # logprobs=0 returns one entry per step: the sampled token's own log-probability.
        logprobs = [float(step[token].logprob) for step, token in zip(output.logprobs or [], ids, strict=False)]
        return Generation(
            text=reply_text(self.processor.tokenizer, ids, self.stop_ids),
            token_ids=ids,
            logprobs=logprobs if len(logprobs) == len(ids) else None,
            prompt_tokens=len(prompt["prompt_token_ids"]),
            completion_tokens=len(ids),
            finish_reason="length" if output.finish_reason == "length" else "stop",
        )


def _start_engine(path: str, config: VLLMConfig) -> tuple[Any, Any]:
    """A vLLM engine and our processor for the model at ``path``."""
    try:
        from vllm import LLM
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    from deepmmsearch.models.build import model_family
    from deepmmsearch.models.processor import load_processor

    processor = load_processor(path, model_family(path).name)
    engine = LLM(
        model=path,
        gpu_memory_utilization=config.gpu_memory_utilization,
        max_model_len=config.max_model_len,
        tensor_parallel_size=config.tensor_parallel_size,
        seed=config.seed or 0,
    )
    return engine, processor

"""``hf:PATH_OR_ID``: a local model of a Qwen-VL family run with transformers, with per-episode prefix caching.

Each episode keeps the KV cache of what the model has already read (image, history, its own reply), so the
next turn only prefills the new tokens. Prompts are built by :func:`encode_conversation`, the same function
training uses, and previous replies are re-inserted as the exact ids that were sampled, so the cached prefix
always matches. A batch prefills each conversation on its own (no padding inside a prompt), then decodes all
of them together over left-padded caches.

Qwen3.5 is hybrid: most of its layers are linear attention, whose cache is a state after the whole prefix (a
convolution window and a recurrent matrix), not one key and value a token. Such a state cannot be cut short, so a
cached episode is reused only when the new prompt extends all of it, and in a batch these states are stacked, not
padded.
"""

from __future__ import annotations

import inspect
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from deepmmsearch.devices import to_thread
from deepmmsearch.errors import ContextLimitError, PolicyError
from deepmmsearch.models.chat import PAD_TOKEN, never_sampled_ids, stop_ids
from deepmmsearch.models.encoding import encode_conversation, image_inputs
from deepmmsearch.policies.base import Conversation, Generation, Policy, SamplingConfig, reply_text
from deepmmsearch.protocol import REPLY_TAGS, STOP_STRINGS, is_complete_reply, is_reply_prefix


@dataclass
class HFConfig:
    """How a local model is loaded and run."""

    dtype: str = field(default="auto", metadata={"help": "auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N"})
    max_batch_size: int = field(default=8, metadata={"help": "conversations decoded together"})
    prefix_cache: bool = field(default=True, metadata={"help": "reuse each episode's KV cache across turns"})
    guided: bool = field(
        default=True, metadata={"help": "sample only tokens that keep the reply in the protocol's tag layout"}
    )
    max_cached_episodes: int = field(default=256, metadata={"help": "episodes whose cache is kept (LRU)"})
    seed: int | None = field(default=None, metadata={"help": "sampling seed; None draws one"})


@dataclass
class _Entry:
    """An episode's cache: the ids it has read and per layer their keys/values, each (1, heads, len, dim), or for a
    linear-attention layer its convolution and recurrent states after them."""

    ids: list[int]
    kv: list[tuple[Any, Any]]
    image: Any = None  # the PIL image the ids' image tokens stand for; another image cannot reuse the cache


@dataclass
class _Prepared:
    ids: list[int]
    room: int = 0  # tokens the reply may take
    next_position: int = 0
    kv: list[tuple[Any, Any]] = field(default_factory=list)
    first_logits: Any = None
    too_long: bool = False


@dataclass
class _GuidedReply:
    """What guided decoding knows of one reply so far."""

    text: str = ""  # as the guide reads it: each token decoded on its own
    in_text: bool = False  # inside a reason or an action, where any ordinary word may come next
    length: int = 0  # tokens so far
    redrawn: list[int] = field(default_factory=list)  # positions of the tokens the guide drew again


class ReplyGuide:
    """Guided decoding: every sampled token keeps the reply a prefix of the protocol's canonical layout.

    A token is checked only where it can matter: one carrying "<" or ">", or only blanks, or a piece of a tag
    ("reason", "_search", "img") where the vocabulary spells tags in pieces ("<", "reason", ">"), anywhere; any
    other token only outside free text (between tags), where it is refused. Inside free text every token without
    "<" or ">" is text, so only those are looked at there. Where the vocabulary holds every tag as one token (our
    small one), a tag is written as that token, as the model learned it, and pieces of tag names are plain words.
    The sampled token is tried first; only when it breaks the layout is the allowed set computed (over the checked
    tokens) and the token drawn again from it, so a model that keeps the format pays nothing.
    Written by hand because transformers' constrained generation does not run inside our cached decoding loop.
    """

    def __init__(self, tokenizer: Any, vocab_size: int, stop_ids: set[int]) -> None:
        import torch

        known = len(tokenizer)
        self.pieces = tokenizer.batch_decode([[i] for i in range(known)])
        self.stop_ids = stop_ids
        # Every piece a tag can be spelled with: a stretch of a tag, never a blank (no tag holds one).
        spelled = not set(REPLY_TAGS) <= set(self.pieces)
        parts = {tag[i:j] for tag in REPLY_TAGS for i in range(len(tag)) for j in range(i + 1, len(tag) + 1)}
        parts = parts if spelled else set()
        self.checked = [i for i, p in enumerate(self.pieces) if "<" in p or ">" in p or not p.strip() or p in parts]
        # Checked tokens that are text wherever free text may go on (blanks, pieces of tag names).
        self.textual = {i for i in self.checked if "<" not in self.pieces[i] and ">" not in self.pieces[i]}
        self.plain = torch.zeros(vocab_size, dtype=torch.bool)  # ids beyond the tokenizer are never drawn
        self.plain[:known] = True
        self.plain[self.checked] = False
        self.plain[list(stop_ids)] = False
        # The tokens that may go on with an open tag: pieces of tags, and those carrying ">" to close it.
        self._closers = [
            i for i in self.checked if self.pieces[i].strip() and (i in self.textual or ">" in self.pieces[i])
        ]
        self._closable: dict[str, bool] = {}

    def allows(self, text: str, in_text: bool, token: int) -> bool:
        """Whether ``token`` may follow ``text``; ``in_text`` says the reply is inside free text."""
        if token in self.stop_ids:
            return is_complete_reply(text)
        if token >= len(self.pieces):
            return False
        if self.plain[token]:
            return in_text
        if in_text and token in self.textual:  # free text takes any text without "<" or ">"
            return True
        grown = text + self.pieces[token]
        return is_reply_prefix(grown) and self.closable(grown)

    def allowed(self, text: str, in_text: bool) -> Any:
        """The mask of every token that may follow ``text``; the stop tokens when nothing else may (a dead end
        ends the reply rather than leave nothing to draw)."""
        import torch

        mask = self.plain.clone() if in_text else torch.zeros_like(self.plain)
        for token in self.checked:
            if in_text and token in self.textual:
                mask[token] = True
                continue
            grown = text + self.pieces[token]
            mask[token] = is_reply_prefix(grown) and self.closable(grown)
        for token in self.stop_ids:
            mask[token] = is_complete_reply(text)
        if not bool(mask.any()):
            mask[list(self.stop_ids)] = True
        return mask

    def closable(self, text: str) -> bool:
        """Whether a tag left open at the end of ``text`` ("<", "</ans") can still be finished with tokens that
        may follow it (plain words are refused between tags: only pieces of tags and tokens with ">" may)."""
        start = text.rfind("<")
        if start < 0 or ">" in text[start:]:
            return True
        return self._can_close(text[start:])

    def _can_close(self, fragment: str) -> bool:
        if fragment not in self._closable:
            self._closable[fragment] = False  # guards the recursion; set for real below
            ok = False
            if any(tag.startswith(fragment) for tag in REPLY_TAGS):
                # Each step makes the fragment longer (no closer is empty) and it must stay the start of a tag,
                # so the recursion ends within the longest tag, however short the pieces.
                for token in self._closers:
                    grown = fragment + self.pieces[token]
                    closed = ">" in grown
                    ok = grown[: grown.index(">") + 1] in REPLY_TAGS if closed else self._can_close(grown)
                    if ok:
                        break
            self._closable[fragment] = ok
        return self._closable[fragment]

    def advance(self, reply: _GuidedReply, token: int) -> None:
        """Take ``token`` into ``reply``'s state."""
        reply.length += 1
        if token < len(self.pieces) and token not in self.stop_ids:
            reply.text += self.pieces[token]
            # Only a tag, a blank or a piece of a tag can move the reply into or out of free text, and text without
            # "<" or ">" never moves it out.
            if not self.plain[token] and not (reply.in_text and token in self.textual):
                # Probed with a character no tag name holds: after "<", "a" would read as the start of "<answer>".
                reply.in_text = is_reply_prefix(reply.text + "§")


class HFPolicy(Policy):
    """A transformers VLM of a Qwen-VL family as a policy (see the module docstring)."""

    marks_start = True  # batches wait on a lock: the reply timeout starts when one holds it

    def __init__(
        self,
        path: str,
        sampling: SamplingConfig | None = None,
        config: HFConfig | None = None,
        loaded: tuple[Any, Any] | None = None,
        guide: ReplyGuide | None = None,
    ) -> None:
        """Load the model at ``path`` (a folder or hub id), or use ``loaded`` = (model, processor) as given.
        ``guide``: one built for this tokenizer before (building one decodes every token of the vocabulary)."""
        import torch

        from deepmmsearch.models.build import load_model

        self.config = config or HFConfig()
        self.sampling = sampling or SamplingConfig()
        self.name = f"hf:{path}"
        self.max_batch_size = self.config.max_batch_size
        if loaded is None:
            self.model, self.processor = load_model(path, self.config.dtype, self.config.device)
        else:
            self.model, self.processor = loaded
        self.device = next(self.model.parameters()).device
        tokenizer = self.processor.tokenizer
        self.stop_ids = stop_ids(tokenizer)
        self.pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
        self.banned_ids = never_sampled_ids(tokenizer)
        self.max_context = int(self.model.config.text_config.max_position_embeddings)
        # From the config: under ZeRO-3 the output embedding of an unwrapped model is an empty shard.
        vocab_size = int(self.model.config.get_text_config().vocab_size)
        if self.config.guided and guide is None:
            guide = ReplyGuide(tokenizer, vocab_size, self.stop_ids)
        self.guide = guide if self.config.guided else None
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._images: dict[str, tuple[Any, dict[str, Any]]] = {}  # per episode: (image, its processed inputs)
        self._lock = threading.Lock()  # one batch on the model at a time; the event loop stays free
        # Batches queue on a thread of their own: waiting in the loop's few default threads, they starve the tools.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf-generate")
        weakref.finalize(self, self._thread.shutdown, wait=False)  # GRPO makes a policy a step
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(self.config.seed if self.config.seed is not None else torch.seed())
        self.stats = {"prompt_tokens": 0, "prefilled_tokens": 0, "generated_tokens": 0}
        # transformers renamed ``past_key_values`` to ``cache`` (5.2x); the old name still works but warns. A PEFT
        # model's forward takes **kwargs: its base model's says which name.
        forward = getattr(self.model, "get_base_model", lambda: self.model)().forward
        self._cache_kwarg = "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"
        self._linear = linear_attention_layers(self.model.config)

    async def generate(self, conversations: Sequence[Conversation]) -> list[Generation]:
        import torch

        try:
            # on this rank's GPU, not GPU 0
            return await to_thread(self.generate_sync, list(conversations), executor=self._thread)
        except torch.OutOfMemoryError:
            raise PolicyError(
                f"{self.name} ran out of memory on {self.device} with {len(conversations)} conversation(s): "
                "lower max_batch_size or max_new_tokens"
            ) from None

    def end_episode(self, conversation_id: str) -> None:
        self._cache.pop(conversation_id, None)
        self._images.pop(conversation_id, None)

    # ------------------------------------------------------------------------------------------ generation

    def generate_sync(self, conversations: list[Conversation]) -> list[Generation]:
        """The blocking body of :meth:`generate`: prefill each conversation, then decode them together."""
        import torch

        with self._lock, torch.inference_mode():
            started = time.monotonic()
            for conversation in conversations:
                conversation.started_at = started  # the reply timeout counts from here, not from the queue
            prepared = [self._prefill(c) for c in conversations]
            live = [i for i, p in enumerate(prepared) if not p.too_long]
            if not live:
                raise ContextLimitError(
                    f"no room for a reply: the conversation is at the model's context ({self.max_context}) or at "
                    "the episode's token budget"
                )
            results = self._decode([prepared[i] for i in live])
            out = [Generation(text="", token_ids=[], logprobs=[], finish_reason="context_limit") for _ in prepared]
            for i, (generation, entry) in zip(live, results, strict=True):
                generation.prompt_tokens = len(prepared[i].ids)
                out[i] = generation
                if self.config.prefix_cache:
                    entry.image = conversations[i].image
                    self._remember(conversations[i].id, entry)
            return out

    def _prefill(self, conversation: Conversation) -> _Prepared:

        images = None
        if conversation.image is not None and any(m.image is not None for m in conversation.messages):
            seen, images = self._images.get(conversation.id, (None, None))
            if seen is not conversation.image:  # image tokens look alike for any image: key on the image itself
                images = image_inputs(self.processor, conversation.image)
                self._images[conversation.id] = (conversation.image, images)
        enc = encode_conversation(
            self.processor, conversation.messages, conversation.image, add_generation_prompt=True, images=images
        )
        ids = enc["input_ids"][0].tolist()
        prepared = _Prepared(
            ids, room=conversation.reply_room(len(ids), self.sampling.max_new_tokens, self.max_context)
        )
        if prepared.room < 1 or len(ids) >= self.max_context - 1:
            prepared.too_long = True
            return prepared
        grid = enc.get("image_grid_thw")
        positions, _ = self.model.model.get_rope_index(enc["input_ids"], enc["mm_token_type_ids"], image_grid_thw=grid)
        reuse, kv = self._reusable(conversation, ids, enc["mm_token_type_ids"][0])
        cache = self._new_cache(kv)
        kwargs: dict[str, Any] = {}
        if grid is not None and bool(enc["mm_token_type_ids"][0, reuse:].any()):
            pixel_values = enc["pixel_values"].to(self.device, self.model.dtype)
            kwargs.update(pixel_values=pixel_values, image_grid_thw=grid.to(self.device))
        output = self.model(
            input_ids=enc["input_ids"][:, reuse:].to(self.device),
            position_ids=positions[:, :, reuse:].to(self.device),
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kwarg: cache},
            **kwargs,
        )
        prepared.first_logits = output.logits[0, -1].float()
        prepared.kv = self._states(getattr(output, self._cache_kwarg))
        prepared.next_position = int(positions[:, 0, -1].max()) + 1
        self.stats["prompt_tokens"] += len(ids)
        self.stats["prefilled_tokens"] += len(ids) - reuse
        return prepared

    def _reusable(self, conversation: Conversation, ids: list[int], image_mask: Any) -> tuple[int, list]:
        """How many leading tokens of ``ids`` the episode's cache already holds, and that part of the cache."""
        entry = self._cache.get(conversation.id) if self.config.prefix_cache else None
        if entry is None or entry.image is not conversation.image:
            return 0, []
        common = 0
        for a, b in zip(entry.ids, ids, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(ids) - 1)  # at least one token must be fed to get the next logits
        image_at = image_mask.nonzero()
        if len(image_at) and int(image_at[0]) < common <= int(image_at[-1]):
            common = int(image_at[0])  # never split an image: its features are computed whole
        if common == 0 or (self._linear and common != len(entry.ids)):
            return 0, []  # a linear-attention state holds the whole cached prefix or nothing
        self._cache.move_to_end(conversation.id)
        return common, [
            (a, b) if i in self._linear else (a[:, :, :common], b[:, :, :common]) for i, (a, b) in enumerate(entry.kv)
        ]

    def _states(self, cache: Any) -> list[tuple[Any, Any]]:
        """What a cache holds, layer by layer: keys and values, or a linear-attention layer's two states."""
        return [
            (layer.conv_states[0], layer.recurrent_states[0]) if i in self._linear else (layer.keys, layer.values)
            for i, layer in enumerate(cache.layers)
        ]

    def _new_cache(self, states: list[tuple[Any, Any]]) -> Any:
        """A cache holding ``states`` (from :meth:`_states`), or an empty one."""
        from transformers import DynamicCache

        if not states or not self._linear:
            return DynamicCache(ddp_cache_data=states) if states else DynamicCache(config=self.model.config)
        cache = DynamicCache(config=self.model.config)
        length = next(k.shape[2] for i, (k, _) in enumerate(states) if i not in self._linear)
        for i, (a, b) in enumerate(states):
            layer = cache.layers[i]
            if i not in self._linear:
                layer.update(a, b)
                continue
            layer.lazy_initialization(conv_states=a, recurrent_states=b)
            layer.conv_states[0].copy_(a)  # copied: decoding updates the states in place
            layer.recurrent_states[0].copy_(b)
            layer.has_previous_state[0] = True
            layer.cumulative_length_linear.fill_(length)  # what the masks take as the cached length
        return cache

    def _decode(self, batch: list[_Prepared]) -> list[tuple[Generation, _Entry]]:
        import torch

        n_layers = len(batch[0].kv)
        attention_layer = next(i for i in range(n_layers) if i not in self._linear)
        lengths = [p.kv[attention_layer][0].shape[2] for p in batch]
        width = max(lengths)
        pads = [width - length for length in lengths]
        # Left-pad every cache to the same length; the padded slots are masked out of attention. A linear-attention
        # layer's states have no length: they are stacked as they are.
        kv = []
        for layer in range(n_layers):
            if layer in self._linear:
                kv.append(tuple(torch.cat([p.kv[layer][part] for p in batch]) for part in (0, 1)))
                continue
            keys, values = [], []
            for p, pad in zip(batch, pads, strict=True):
                k, v = p.kv[layer]
                keys.append(torch.nn.functional.pad(k, (0, 0, pad, 0)))
                values.append(torch.nn.functional.pad(v, (0, 0, pad, 0)))
            kv.append((torch.cat(keys), torch.cat(values)))
        cache = self._new_cache(kv)
        # A row that has finished is still fed (its last token again) while others go on: its linear-attention
        # states are taken when it finishes, before they read tokens that are not its own.
        finished_states: dict[int, list[tuple[Any, Any]]] = {}
        attention = torch.zeros(len(batch), width, dtype=torch.long, device=self.device)
        for row, pad in enumerate(pads):
            attention[row, pad:] = 1
        positions = torch.tensor([p.next_position for p in batch], device=self.device)
        logits = torch.stack([p.first_logits for p in batch])

        max_new = [p.room for p in batch]
        tokens: list[list[int]] = [[] for _ in batch]
        logprobs: list[list[float]] = [[] for _ in batch]
        finish: list[str | None] = [None] * len(batch)
        tokenizer = self.processor.tokenizer
        replies = [_GuidedReply() for _ in batch]
        while True:
            chosen, chosen_logprobs = self._sample(logits)
            if self.guide is not None:
                live = [row for row in range(len(batch)) if finish[row] is None]
                self._keep_layout(logits, chosen, chosen_logprobs, [(row, replies[row]) for row in live])
            for row in range(len(batch)):
                if finish[row] is not None:
                    continue
                token = int(chosen[row])
                tokens[row].append(token)
                logprobs[row].append(float(chosen_logprobs[row]))
                if token in self.stop_ids:
                    finish[row] = "stop"
                    continue
                # Every stop string ends with ">": decode the reply only when a token carries one.
                if ">" in tokenizer.convert_ids_to_tokens(token):
                    text = tokenizer.decode(tokens[row])
                    if any(stop in text for stop in STOP_STRINGS):
                        finish[row] = "stop"
                        continue
                if len(tokens[row]) >= max_new[row]:
                    finish[row] = "length"
            if self._linear:
                for row in range(len(batch)):
                    if finish[row] is not None and row not in finished_states:
                        finished_states[row] = [
                            (a[row : row + 1].clone(), b[row : row + 1].clone()) if i in self._linear else (a, b)
                            for i, (a, b) in enumerate(self._states(cache))
                        ]
            if all(f is not None for f in finish):
                break
            feed = torch.tensor([[t[-1]] for t in tokens], device=self.device)
            attention = torch.cat([attention, attention.new_ones(len(batch), 1)], dim=1)
            output = self.model(
                input_ids=feed,
                position_ids=positions.view(1, -1, 1).expand(3, -1, -1),
                attention_mask=attention,
                use_cache=True,
                **{self._cache_kwarg: cache},
            )
            positions = positions + 1
            logits = output.logits[:, -1].float()

        results = []
        for row, p in enumerate(batch):
            generated = tokens[row]
            self.stats["generated_tokens"] += len(generated)
            # The cache holds the prompt and every reply token but the last (which was never fed).
            end = pads[row] + len(p.ids) + len(generated) - 1
            final = self._states(cache)
            entry = _Entry(
                p.ids + generated[:-1],
                [
                    finished_states[row][i]
                    if i in self._linear
                    else (a[row : row + 1, :, pads[row] : end].clone(), b[row : row + 1, :, pads[row] : end].clone())
                    for i, (a, b) in enumerate(final)
                ],
            )
            generation = Generation(
                text=reply_text(tokenizer, generated, self.stop_ids),
                token_ids=generated,
                logprobs=logprobs[row],
                completion_tokens=len(generated),
                finish_reason=finish[row],
                redrawn=replies[row].redrawn,
            )
            results.append((generation, entry))
        return results

    def _keep_layout(self, logits: Any, chosen: Any, logprobs: Any, live: list[tuple[int, _GuidedReply]]) -> None:
        """Guided decoding, in place: draw again, among allowed tokens, each chosen token that breaks the layout."""
        import torch

        guide = self.guide
        assert guide is not None
        redraw = [(row, reply) for row, reply in live if not guide.allows(reply.text, reply.in_text, int(chosen[row]))]
        if redraw:
            rows = [row for row, _ in redraw]
            allowed = torch.stack([guide.allowed(reply.text, reply.in_text) for _, reply in redraw])
            chosen[rows], logprobs[rows] = self._sample(logits[rows], allowed.to(logits.device))
            for _, reply in redraw:
                reply.redrawn.append(reply.length)
        for row, reply in live:
            guide.advance(reply, int(chosen[row]))

    def _sample(self, logits: Any, allowed: Any = None) -> tuple[Any, Any]:
        """The next token of each row, drawn among ``allowed`` ones if given, and its log-probability under the
        model (before the mask, temperature and top-p)."""
        import torch
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        logprobs = torch.log_softmax(logits, dim=-1)
        logits = logits.clone()
        logits[:, self.banned_ids] = float("-inf")
        if allowed is not None:
            logits = logits.masked_fill(~allowed, float("-inf"))
        if self.sampling.temperature == 0:
            chosen = logits.argmax(dim=-1)
        else:
            scores = TemperatureLogitsWarper(self.sampling.temperature)(None, logits)
            if self.sampling.top_p < 1:
                scores = TopPLogitsWarper(self.sampling.top_p)(None, scores)
            probs = torch.softmax(scores, dim=-1)
            chosen = torch.multinomial(probs, 1, generator=self._generator).squeeze(1)
        return chosen, logprobs.gather(1, chosen.unsqueeze(1)).squeeze(1)

    def _remember(self, conversation_id: str, entry: _Entry) -> None:
        self._cache[conversation_id] = entry
        self._cache.move_to_end(conversation_id)
        while len(self._cache) > self.config.max_cached_episodes:
            evicted, _ = self._cache.popitem(last=False)
            self._images.pop(evicted, None)


def linear_attention_layers(config: Any) -> frozenset[int]:
    """The layers of a model whose cache is a linear-attention state (Qwen3.5's gated delta nets), by index."""
    from transformers import DynamicCache
    from transformers.cache_utils import LinearAttentionCacheLayerMixin

    layers = DynamicCache(config=config).layers
    return frozenset(i for i, layer in enumerate(layers) if isinstance(layer, LinearAttentionCacheLayerMixin))

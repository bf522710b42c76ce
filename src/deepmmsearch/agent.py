"""The agent loop: question -> (policy turn, tool call)* -> answer, recorded as a trajectory.

Many episodes run at once on one event loop: their generation requests are gathered into batches for the
policy, and their tool calls overlap. The loop, not the model, enforces the rules of the protocol. It is the only
episode loop: the evaluation baselines (direct answer, RAG workflow) are plans of it that open differently and take
one answering reply (:class:`EpisodePlan`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from PIL import Image

from deepmmsearch.config import check_at_least
from deepmmsearch.errors import ConfigError, ContextLimitError, InputError, PolicyError
from deepmmsearch.images import load_image
from deepmmsearch.policies.base import Conversation, Generation, Policy, episode_id
from deepmmsearch.protocol import (
    Action,
    ActionKind,
    EpisodeState,
    FormatError,
    PromptStyle,
    Rules,
    StopReason,
    clean_text,
    first_turn_prompt,
    parse,
    render_error_feedback,
    render_observation,
    rule_violation,
    system_prompt,
)
from deepmmsearch.records import Message, Question, ToolResult, Trajectory
from deepmmsearch.tools.toolbox import Toolbox


@dataclass
class AgentConfig:
    rules: Rules = field(default_factory=Rules)
    policy_timeout_s: float = field(
        default=300.0,
        metadata={"help": "per generation request, from when the policy starts on it (time queued not counted)"},
    )
    episode_timeout_s: float = field(default=1800.0, metadata={"help": "per episode, all turns included"})
    max_concurrent_episodes: int = field(
        default=64, metadata={"help": "episodes in flight at once", "aliases": ("--workers",)}
    )
    max_episode_tokens: int | None = field(
        default=None,
        metadata={"help": "tokens an episode may add after its opening prompt: replies and tool results (None: any)"},
    )
    batch_window_s: float = field(
        default=0.005, metadata={"help": "how long a generation request waits for others to share its batch"}
    )
    prompts: str = field(
        default="",
        metadata={
            "help": "prompt style, full or short; empty: the one the model was trained with, else full",
            "aliases": ("--prompts",),
        },
    )

    def __post_init__(self) -> None:
        check_at_least(self, 1, "max_concurrent_episodes", "max_episode_tokens", section="agent")
        if self.prompts and self.prompts not in set(PromptStyle):
            raise ConfigError(f"agent.prompts must be one of {', '.join(PromptStyle)} (or empty), got {self.prompts!r}")

    def prompt_style(self, trained: PromptStyle | None = None) -> PromptStyle:
        """The style episodes are prompted in: the configured one, else the one the model was ``trained`` in, else
        full. The code that builds an agent reads ``trained`` where the model records it, once, and sets ``prompts``
        (:func:`deepmmsearch.runner.resolve_agent_config`): the agent and the policy never look for it."""
        return PromptStyle(self.prompts) if self.prompts else trained or PromptStyle.FULL


MessageHook = Callable[[Trajectory, Message], None]


def assistant_message(
    text: str, parsed: Action | FormatError, error: str | None, generation: Generation, latency: float
) -> Message:
    """The trajectory's record of one reply: its text, what it parsed to, why it was refused, and its cost."""
    return Message(
        "assistant",
        text,
        action=None if isinstance(parsed, FormatError) else parsed,
        error=error,
        latency_s=latency,
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        token_ids=generation.token_ids,
        logprobs=generation.logprobs,
        finish_reason=generation.finish_reason,
        redrawn=generation.redrawn or None,
    )


class _ObservedList(list):
    """A message list that reports each appended message; the loop only ever appends."""

    def __init__(self, hook: Callable[[Message], None]) -> None:
        super().__init__()
        self._hook = hook

    def append(self, message: Message) -> None:
        super().append(message)
        self._hook(message)


class GenerationBatcher:
    """Gathers generation requests of concurrent episodes into batches of up to ``policy.max_batch_size``.

    A request waits at most ``window_s`` for company, so a lone episode is never held back for long.
    """

    def __init__(self, policy: Policy, window_s: float) -> None:
        self.policy = policy
        self.window_s = window_s
        self._pending: list[tuple[Conversation, asyncio.Future[Generation]]] = []
        self._flusher: asyncio.Task | None = None
        self._batches: set[asyncio.Task] = set()

    async def generate(self, conversation: Conversation) -> Generation:
        future: asyncio.Future[Generation] = asyncio.get_running_loop().create_future()
        self._pending.append((conversation, future))
        if len(self._pending) >= self.policy.max_batch_size:
            self._flush()
        elif self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later())
        return await future

    async def reply(self, conversation: Conversation, timeout_s: float) -> Generation:
        """:meth:`generate`, raising TimeoutError when no reply came ``timeout_s`` after the policy started on the
        conversation (``Conversation.started_at``). Time spent queued, here or behind the policy's lock, does not
        count: with 64 episodes on a batch of 8, a request may wait for several batches of long replies."""
        request = asyncio.ensure_future(self.generate(conversation))
        try:
            while True:
                started = conversation.started_at
                left = timeout_s - (time.monotonic() - started) if started is not None else timeout_s
                if left <= 0:
                    raise TimeoutError
                # Not started yet: look again within a second (or the timeout, if shorter).
                done, _ = await asyncio.wait({request}, timeout=left if started is not None else min(left, 1.0))
                if done:
                    return request.result()
        finally:
            if not request.done():
                request.cancel()

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.window_s)
        self._flusher = None
        self._flush()

    def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self.policy.max_batch_size]
            del self._pending[: len(batch)]
            task = asyncio.create_task(self._run(batch))
            self._batches.add(task)  # keep a reference until done, or the task may be collected mid-run
            task.add_done_callback(self._batches.discard)

    async def _run(self, batch: list[tuple[Conversation, asyncio.Future[Generation]]]) -> None:
        live = [(c, f) for c, f in batch if not f.done()]  # an episode that timed out no longer waits
        if not live:
            return
        if not self.policy.marks_start:  # a policy that may hold the batch back marks the start itself
            now = time.monotonic()
            for conversation, _ in live:
                conversation.started_at = now
        try:
            generations = await self.policy.generate([c for c, _ in live])
            if len(generations) != len(live):
                raise RuntimeError(f"{self.policy.name} returned {len(generations)} replies for {len(live)}")
        except BaseException as e:  # every waiting episode must hear of the failure, whatever it is
            for _, future in live:
                if not future.done():
                    future.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        for (_, future), generation in zip(live, generations, strict=True):
            if not future.done():
                future.set_result(generation)


@dataclass
class Episode:
    """An episode in progress: what its opening and its turns read and write."""

    trajectory: Trajectory
    image: Image.Image
    toolbox: Toolbox | None
    rules: Rules
    style: PromptStyle
    state: EpisodeState = field(default_factory=EpisodeState)

    @property
    def question(self) -> Question:
        return self.trajectory.question

    @property
    def messages(self) -> list[Message]:
        return self.trajectory.messages

    async def call_tools(self, actions: Sequence[Action]) -> list[ToolResult]:
        """Run tool calls concurrently, then book each in the trajectory (time, count, cache) in the order given."""
        if self.toolbox is None:
            raise RuntimeError("this episode has no toolbox")
        question, toolbox = self.question, self.toolbox
        results = await asyncio.gather(
            *(toolbox.run(a, question.question, self.image, question.image) for a in actions)
        )
        trajectory = self.trajectory
        for action, result in zip(actions, results, strict=True):
            trajectory.timings["tools_s"] += result.latency_s
            trajectory.tool_calls[action.kind.value] = trajectory.tool_calls.get(action.kind.value, 0) + 1
            cache_key = "hits" if result.cached else "misses"
            trajectory.cache[cache_key] = trajectory.cache.get(cache_key, 0) + 1
        return list(results)


Opening = Callable[[Episode], Awaitable[None]]


async def protocol_opening(episode: Episode) -> None:
    """The agent protocol's opening: the system prompt, then what may be done first and the question."""
    question, style = episode.question, episode.style
    episode.messages.append(Message("system", system_prompt(style)))
    first = first_turn_prompt(question.question, episode.state, episode.rules, style)
    episode.messages.append(Message("user", first, image=question.image))


@dataclass(frozen=True)
class EpisodePlan:
    """What kind of episode the loop runs: how it opens, and what the model may do after the opening.

    The agent protocol (:data:`AGENT_PLAN`) lets the model call tools until it answers; the paper's baselines
    (``deepmmsearch.eval.modes``) open their own way and take a single reply, which must answer.
    """

    name: str
    opening: Opening
    uses_tools: bool = True  # the episode calls tools (in its opening or its turns): it needs a toolbox
    answer_only: bool = False  # one reply, which must answer; an invalid one ends the episode, no second try


AGENT_PLAN = EpisodePlan("agent", protocol_opening)


class Agent:
    """Runs episodes of a policy with a toolbox under the protocol's rules, as the plan says (the agent protocol by
    default)."""

    def __init__(
        self,
        policy: Policy,
        toolbox: Toolbox | None,
        config: AgentConfig | None = None,
        plan: EpisodePlan = AGENT_PLAN,
    ) -> None:
        if plan.uses_tools and toolbox is None:
            raise ValueError(f"{plan.name} episodes call tools: give the agent a toolbox")
        self.policy = policy
        self.toolbox = toolbox
        self.config = config or AgentConfig()
        self.plan = plan
        self._batcher: tuple[asyncio.AbstractEventLoop, GenerationBatcher] | None = None

    def batcher(self) -> GenerationBatcher:
        """The generation batcher of the running event loop, shared by every run on it: concurrent calls (the
        server's requests) have their turns batched together, not each in a batcher of its own."""
        loop = asyncio.get_running_loop()
        if self._batcher is None or self._batcher[0] is not loop:  # futures belong to one loop: a new loop, anew
            self._batcher = (loop, GenerationBatcher(self.policy, self.config.batch_window_s))
        return self._batcher[1]

    async def run(
        self, question: Question, image: Image.Image | None = None, on_message: MessageHook | None = None
    ) -> Trajectory:
        """Run one episode. ``image`` may be given already loaded; otherwise ``question.image`` is loaded."""
        return (await self.run_many([question], images=[image], on_message=on_message))[0]

    async def run_many(
        self,
        questions: Sequence[Question],
        images: Sequence[Image.Image | None] | None = None,
        on_done: Callable[[Trajectory], None] | None = None,
        on_message: MessageHook | None = None,
    ) -> list[Trajectory]:
        """Run many episodes concurrently; ``on_done`` sees each trajectory as soon as it ends, and
        ``on_message`` each message as soon as it is added (for streaming)."""
        batcher = self.batcher()
        limit = asyncio.Semaphore(self.config.max_concurrent_episodes)
        images = list(images) if images is not None else [None] * len(questions)

        async def one(index: int, question: Question) -> Trajectory:
            async with limit:
                trajectory = await self._episode(
                    question, images[index], batcher, episode_id(question.id, index), on_message
                )
            if on_done is not None:
                on_done(trajectory)
            return trajectory

        return list(await asyncio.gather(*(one(i, q) for i, q in enumerate(questions))))

    async def _episode(
        self,
        question: Question,
        image: Image.Image | None,
        batcher: GenerationBatcher,
        episode_id: str,
        on_message: MessageHook | None,
    ) -> Trajectory:
        trajectory = Trajectory(question=question, model=self.policy.name)
        if on_message is not None:
            trajectory.messages = _ObservedList(lambda m: on_message(trajectory, m))
        start = time.perf_counter()
        try:
            if image is None:
                image = await asyncio.to_thread(load_image, question.image)
        except InputError as e:
            trajectory.stop_reason, trajectory.error = StopReason.INPUT_ERROR.value, str(e)
        else:
            rules = self.config.rules
            if self.plan.answer_only:
                rules = replace(rules, max_turns=1, max_consecutive_errors=1)
            style = self.config.prompt_style()
            episode = Episode(trajectory, image, self.toolbox, rules, style)
            trajectory.timings.update(policy_s=0.0, tools_s=0.0)
            trajectory.tokens.update(prompt=0, completion=0)
            try:
                async with asyncio.timeout(self.config.episode_timeout_s):
                    await self.plan.opening(episode)
                    await self._turns(episode, batcher, episode_id)
            except TimeoutError:
                trajectory.stop_reason = StopReason.TIMEOUT.value
                trajectory.error = f"the episode ran past {self.config.episode_timeout_s:g} s"
            finally:
                self.policy.end_episode(episode_id)
        trajectory.timings["total_s"] = time.perf_counter() - start
        return trajectory

    async def _turns(self, episode: Episode, batcher: GenerationBatcher, episode_id: str) -> None:
        rules, state, style = episode.rules, episode.state, episode.style
        trajectory = episode.trajectory
        messages = trajectory.messages
        answer_only = self.plan.answer_only
        timings, tokens = trajectory.timings, trajectory.tokens
        consecutive_errors = 0
        budget = self.config.max_episode_tokens
        opening: int | None = None  # tokens of the opening prompt, told by the first reply's prompt count

        def stop(reason: StopReason, error: str | None = None) -> None:
            trajectory.stop_reason = reason.value
            trajectory.error = error

        while True:
            if trajectory.turns >= rules.max_turns:
                return stop(StopReason.MAX_TURNS)
            t0 = time.perf_counter()
            conversation = Conversation(episode_id, list(messages), episode.image, answer_only=answer_only)
            if budget is not None:  # the episode's token budget bounds this reply
                if opening is None:
                    conversation.max_new_tokens = budget
                else:
                    conversation.max_length = opening + budget
            try:
                generation = await batcher.reply(conversation, self.config.policy_timeout_s)
            except TimeoutError:
                return stop(StopReason.POLICY_ERROR, f"no reply within {self.config.policy_timeout_s:g} s")
            except ContextLimitError as e:
                return stop(StopReason.CONTEXT_LIMIT, str(e))
            except PolicyError as e:
                return stop(StopReason.POLICY_ERROR, str(e))
            latency = time.perf_counter() - t0
            if generation.finish_reason == "context_limit":  # batched with others, this one had no room left
                return stop(StopReason.CONTEXT_LIMIT, "no room for a reply: the model's context or the token budget")
            if opening is None:
                opening = generation.prompt_tokens
            timings["policy_s"] += latency
            trajectory.turns += 1
            tokens["prompt"] += generation.prompt_tokens or 0
            tokens["completion"] += generation.completion_tokens or 0
            text = clean_text(generation.text)
            parsed = parse(text, rules)
            violation = (
                rule_violation(parsed, state, rules, answer_only) if not isinstance(parsed, FormatError) else None
            )
            reply = assistant_message(
                text, parsed, parsed.message if isinstance(parsed, FormatError) else violation, generation, latency
            )
            messages.append(reply)

            if isinstance(parsed, FormatError) or violation is not None:
                if isinstance(parsed, FormatError):
                    trajectory.format_errors += 1
                else:
                    if parsed.kind.is_tool and state.tool_calls >= rules.max_tool_calls:
                        return stop(StopReason.TOOL_BUDGET, violation)
                    trajectory.rule_errors += 1
                consecutive_errors += 1
                if consecutive_errors >= rules.max_consecutive_errors:
                    return stop(StopReason.FORMAT_ERROR, reply.error)
                messages.append(Message("user", render_error_feedback(reply.error or "", state, rules, style)))
                continue
            consecutive_errors = 0

            action = parsed
            if action.kind is ActionKind.ANSWER:
                trajectory.answer = action.query
                return stop(StopReason.ANSWER)
            if budget is not None and opening is not None and generation.prompt_tokens is not None:
                used = generation.prompt_tokens - opening + (generation.completion_tokens or 0)
                if used >= budget:  # no reply could follow the tool's result
                    return stop(StopReason.CONTEXT_LIMIT, f"the episode used its budget of {budget} tokens")

            (result,) = await episode.call_tools([action])
            state.record(action.kind)
            messages.append(Message("user", render_observation(result.observation, state, rules, style), tool=result))

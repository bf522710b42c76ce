"""The ``llm`` judge: any OpenAI-compatible model applies the paper's judging rules; verdicts are cached.

The cache is a JSON Lines file keyed by model, question, gold answers and prediction, so a re-run costs nothing.
When the model cannot be reached or answers nonsense, the verdict comes from the ``rule`` judge and says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from deepmmsearch.eval.judges import JudgeResult, gold_answers, judge_answer
from deepmmsearch.records import Question, append_jsonl, read_jsonl

JUDGE_PROMPT = """You grade answers to questions about images. Decide whether the predicted answer means the same \
as any of the gold answers.
Rules: synonyms, aliases and other names of the same thing count; articles, punctuation and letter case do not \
matter; a predicted numeric range that contains the gold value counts, one that excludes it does not; reasonable \
rounding and conversion between units count; a date in another format counts if it is the same date; a gold \
answer written "x && y" lists several things, all of which the prediction must give; an answer that hedges between \
several options, or that refuses to answer, does not count.

Question: {question}
Gold answers: {golds}
Predicted answer: {prediction}

Reply with exactly one word: CORRECT or INCORRECT."""


class LLMJudge:
    """Judges with a chat model; ``await judge(prediction, question)``. Falls back to ``rule`` on failure."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        cache_path: str | Path | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.cache_path = Path(cache_path) if cache_path else None
        self._cache: dict[str, dict] = {}
        if self.cache_path and self.cache_path.is_file():
            self._cache = {d["key"]: d for d in read_jsonl(self.cache_path) if "key" in d}
        self._client = None

    @classmethod
    def from_spec(cls, spec: str, cache_path: str | Path | None = None) -> LLMJudge:
        """``MODEL[@BASE_URL]`` or ``openai:MODEL[@BASE_URL]``, as model specs are written."""
        spec = spec.removeprefix("openai:")
        model, _, base_url = spec.partition("@")
        return cls(model, base_url or None, cache_path)

    def key(self, prediction: str, question: Question) -> str:
        payload = json.dumps([self.model, question.question, gold_answers(question), prediction], ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()

    async def judge(self, prediction: str | None, question: Question) -> JudgeResult:
        """The model's verdict (cached), or the rule judge's with the reason it was used."""
        rule = judge_answer(prediction, question)
        if prediction is None or not prediction.strip():
            return rule
        key = self.key(prediction, question)
        if key in self._cache:
            cached = self._cache[key]
            return JudgeResult(cached["correct"], float(cached["correct"]), f"llm {self.model} (cached)")
        try:
            verdict = await self._ask(prediction, question)
        except Exception as e:  # any failure of the judge model means: fall back, and say so
            return JudgeResult(rule.correct, rule.score, f"llm judge failed ({type(e).__name__}); rule: {rule.detail}")
        if verdict is None:
            return JudgeResult(rule.correct, rule.score, f"llm judge gave no verdict; rule: {rule.detail}")
        record = {"key": key, "model": self.model, "correct": verdict}
        self._cache[key] = record
        if self.cache_path:
            append_jsonl(self.cache_path, [record])
        return JudgeResult(verdict, float(verdict), f"llm {self.model}")

    async def _ask(self, prediction: str, question: Question) -> bool | None:
        if self._client is None:
            from openai import AsyncOpenAI

            key = os.environ.get(self.api_key_env) or "EMPTY"
            self._client = AsyncOpenAI(
                api_key=key, base_url=self.base_url, timeout=self.timeout_s, max_retries=self.max_retries
            )
        prompt = JUDGE_PROMPT.format(
            question=question.question, golds="; ".join(gold_answers(question)), prediction=prediction
        )
        response = await self._client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": prompt}], temperature=0.0, max_tokens=8
        )
        text = (response.choices[0].message.content or "").strip().upper() if response.choices else ""
        match = re.search(r"\b(INCORRECT|CORRECT)\b", text)
        return None if match is None else match.group(1) == "CORRECT"

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

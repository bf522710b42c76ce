"""Policies are chosen by name from a registry, as tools are; only the oracle is told the questions' plans."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from deepmmsearch.errors import ConfigError, PolicyError
from deepmmsearch.policies import POLICIES, Conversation, load_policy, model_folder
from deepmmsearch.policies.oracle import OraclePolicy
from deepmmsearch.policies.scripted import ScriptedPolicy
from deepmmsearch.protocol import ActionKind, parse
from deepmmsearch.records import Message, Question

PLAN = {"skill": "search_free", "answer": "red"}


def test_every_kind_resolves_to_its_factory_and_bad_specs_are_refused(tmp_path) -> None:
    script = tmp_path / "s.json"
    script.write_text('["<reason>r</reason><answer>a</answer>"]')
    assert isinstance(load_policy(f"script:{script}"), ScriptedPolicy)
    assert model_folder("hf:/models/sft") == "/models/sft" and model_folder(f"script:{script}") is None
    assert [k for k, kind in POLICIES.items() if kind.local_model] == ["hf", "vllm"]
    for bad in ("nope:x", "hf", "hf:", "oracle:x", "script"):
        with pytest.raises(ConfigError, match=f"unknown model spec {bad!r}; use one of: openai:MODEL"):
            load_policy(bad)


def test_the_oracle_gets_its_plans_when_built_and_no_conversation_carries_the_question() -> None:
    questions = [Question("w1", "x.png", "What colour is it?", ["red"], extra={"plan": PLAN}), Question("o", "y", "?")]
    oracle = load_policy("oracle", questions=questions)
    assert isinstance(oracle, OraclePolicy) and oracle.plans == {"w1": PLAN}
    assert "question" not in {f.name for f in dataclasses.fields(Conversation)}  # no gold answers to any policy
    seen = [Message("system", "s"), Message("user", "What colour is it?")]
    (reply,) = asyncio.run(oracle.generate([Conversation("w1#0", seen)]))
    assert parse(reply.text).kind is ActionKind.ANSWER and parse(reply.text).query == "red"
    with pytest.raises(PolicyError, match="no plan for question 'o'"):
        asyncio.run(oracle.generate([Conversation("o#1", seen)]))

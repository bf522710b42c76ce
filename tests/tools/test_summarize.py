"""Summarizers: the extractive one keeps what answers the question; the LLM one talks to a chat server."""

from __future__ import annotations

import asyncio

import pytest

from deepmmsearch.errors import ConfigError, ToolError
from deepmmsearch.tools import SUMMARIZERS, ToolsConfig
from deepmmsearch.tools.base import ImageHit, TextHit
from deepmmsearch.tools.summarize import ExtractiveSummarizer, LLMSummarizer, LLMSummarizerConfig, llm_summarizer

HITS = [
    TextHit("Korvath Point Lighthouse", "https://example.org/korvath",
            "Korvath Point Lighthouse is a white tower on a rocky islet. It was first lit in 1871. "
            "The tower is 38 metres tall. Its keepers left in 1962. Seals rest on the rocks nearby."),
    TextHit("Vellmar", "https://example.org/vellmar",
            "Vellmar is a coastal province. It is known for its fishing harbours. Its capital has a cathedral."),
    TextHit("Elmbrook Mill", "https://example.org/elmbrook",
            "Elmbrook Mill is a brown post windmill. It was built in 1790. It has four white sails."),
]  # fmt: skip


def test_extractive_keeps_the_answering_sentence_with_its_source() -> None:
    summary = asyncio.run(
        ExtractiveSummarizer(text_sentences=2).summarize_text("How tall is the lighthouse?", "lighthouse height", HITS)
    )
    lead, *lines = summary.splitlines()
    assert lead == "Most relevant: The tower is 38 metres tall."  # the featured sentence, on a line of its own
    assert "Korvath Point Lighthouse (https://example.org/korvath):" in lines[0] and "38 metres" in lines[0]
    sentences = [s for line in lines for s in line.split("): ", 1)[1].split(". ")]
    assert len(sentences) <= 2
    assert "cathedral" not in summary


def test_extractive_keeps_everything_when_it_is_short() -> None:
    summary = asyncio.run(ExtractiveSummarizer(text_sentences=20).summarize_text("the harbours", "q", HITS[1:2]))
    lead = "Most relevant: It is known for its fishing harbours."
    assert summary == f"{lead}\nVellmar (https://example.org/vellmar): {HITS[1].text}"


def test_extractive_image_summary_names_the_entity() -> None:
    hits = [
        ImageHit("Elmbrook Mill", "https://example.org/elmbrook", "Elmbrook Mill, a brown post windmill."),
        ImageHit("Korvath Point Lighthouse", "https://example.org/korvath", "A white tower with red bands."),
    ]
    summary = asyncio.run(ExtractiveSummarizer(image_sentences=1).summarize_images("What windmill is this?", hits))
    assert summary == (
        "Best match: Elmbrook Mill\nElmbrook Mill (https://example.org/elmbrook): Elmbrook Mill, a brown post windmill."
    )


def test_llm_summarizer_sends_results_and_instructions(fake_openai) -> None:
    fake_openai.replies = ["The lighthouse is 38 metres tall (Korvath Point Lighthouse)."]
    summarizer = LLMSummarizer(LLMSummarizerConfig(model="tiny", base_url=fake_openai.base_url))
    summary = asyncio.run(summarizer.summarize_text("How tall is it?", "Korvath height", HITS))
    assert summary == "The lighthouse is 38 metres tall (Korvath Point Lighthouse)."
    request = fake_openai.requests[0]
    assert request["model"] == "tiny"
    assert "10 to 12 sentences" in request["messages"][0]["content"]
    user = request["messages"][1]["content"]
    assert "How tall is it?" in user and "https://example.org/korvath" in user and "38 metres" in user


def test_llm_image_summaries_ask_for_four_to_five_sentences(fake_openai) -> None:
    fake_openai.replies = ["A windmill."]
    summarizer = LLMSummarizer(LLMSummarizerConfig(model="tiny", base_url=fake_openai.base_url))
    hits = [ImageHit("Elmbrook Mill", "https://example.org/elmbrook", "a windmill")]
    assert asyncio.run(summarizer.summarize_images("What is it?", hits)) == "A windmill."
    assert "4 to 5 sentences" in fake_openai.requests[0]["messages"][0]["content"]


def test_llm_server_errors_become_tool_errors(fake_openai) -> None:
    fake_openai.replies = [(400, {"error": {"message": "bad model"}}, {}), ""]
    config = LLMSummarizerConfig(model="tiny", base_url=fake_openai.base_url, max_retries=0)
    summarizer = LLMSummarizer(config)
    with pytest.raises(ToolError, match="summarizer tiny"):
        asyncio.run(summarizer.summarize_text("q", "q", HITS))
    with pytest.raises(ToolError, match="empty reply"):
        asyncio.run(summarizer.summarize_text("q", "q", HITS))


def test_llm_summarizer_without_key_or_server_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        LLMSummarizer()


def test_registry_names_and_spec(fake_openai) -> None:
    assert {"extractive", "llm", "list"} <= set(SUMMARIZERS)
    assert ToolsConfig().summarizer == "extractive"
    assert SUMMARIZERS["llm"] == "deepmmsearch.tools.summarize:llm_summarizer"
    summarizer = llm_summarizer(ToolsConfig(summarizer="llm", summarizer_model=f"tiny@{fake_openai.base_url}"))
    assert isinstance(summarizer, LLMSummarizer)
    assert summarizer.config.model == "tiny" and summarizer.config.base_url == fake_openai.base_url

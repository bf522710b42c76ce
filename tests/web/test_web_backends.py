"""Each web backend against a fake of its provider on 127.0.0.1, in the provider's documented format."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from deepmmsearch.errors import ConfigError, ToolError
from deepmmsearch.protocol import Action, ActionKind
from deepmmsearch.tools import ToolsConfig, build_toolbox
from deepmmsearch.tools.memory import MemoryGrounder, MemoryImageSearch
from deepmmsearch.tools.toolbox import Toolbox
from deepmmsearch.tools.web_search import (
    BraveSearch,
    DuckDuckGoSearch,
    SearxngSearch,
    SerpApiImageSearch,
    SerpApiSearch,
    TavilySearch,
)
from deepmmsearch.web.config import WebConfig

KEYS = {"serpapi": "serp-key-1234567890", "brave": "brave-key-0987654321", "tavily": "tvly-key-5555555555"}

# Response bodies in each provider's documented shape (fields we do not read are kept to stay realistic).
SERPAPI = {
    "search_metadata": {"status": "Success"},
    "organic_results": [
        {"position": 1, "title": "Korvath Point Lighthouse", "link": "https://a.example/k", "snippet": "38 m tall"},
        {"position": 2, "title": "Lighthouses &amp; capes", "link": "https://b.example/l", "snippet": "A list."},
    ],
}
BRAVE = {
    "type": "search",
    "web": {
        "type": "search",
        "results": [
            {"title": "Korvath <strong>Point</strong>", "url": "https://a.example/k", "description": "38 m tall"},
            {"title": "Capes", "url": "https://b.example/l", "description": "A <strong>list</strong>."},
        ],
    },
}
SEARXNG = {
    "query": "korvath",
    "number_of_results": 2,
    "results": [
        {"url": "https://a.example/k", "title": "Korvath Point Lighthouse", "content": "38 m tall", "score": 2.5},
        {"url": "https://b.example/l", "title": "Capes", "content": "A list.", "engine": "bing", "score": 1.0},
    ],
    "answers": [],
    "infoboxes": [],
}
TAVILY = {
    "query": "korvath",
    "answer": None,
    "results": [
        {"title": "Korvath Point Lighthouse", "url": "https://a.example/k", "content": "38 m tall", "score": 0.9},
        {"title": "Capes", "url": "https://b.example/l", "content": "A list.", "score": 0.4, "raw_content": None},
    ],
    "response_time": 1.2,
}
BODIES = {"serpapi": SERPAPI, "brave": BRAVE, "searxng": SEARXNG, "tavily": TAVILY}
PATHS = {"serpapi": "/search.json", "brave": "/res/v1/web/search", "searxng": "/search", "tavily": "/search"}
CLASSES = {"serpapi": SerpApiSearch, "brave": BraveSearch, "searxng": SearxngSearch, "tavily": TavilySearch}


@pytest.fixture
def keys(monkeypatch) -> dict[str, str]:
    monkeypatch.setenv("SERPAPI_API_KEY", KEYS["serpapi"])
    monkeypatch.setenv("BRAVE_API_KEY", KEYS["brave"])
    monkeypatch.setenv("TAVILY_API_KEY", KEYS["tavily"])
    return KEYS


def point(monkeypatch, web, name: str) -> None:
    base = web.url(PATHS[name]) if name != "searxng" else web.url("/")
    monkeypatch.setenv(f"DMMS_{name.upper()}_URL", base)


def backend(name: str, config: WebConfig) -> Any:
    return CLASSES[name](config)


@pytest.mark.parametrize("name", ["serpapi", "brave", "searxng", "tavily"])
def test_backend_parses_its_provider_format(name, web, keys, monkeypatch, fast_config) -> None:
    point(monkeypatch, web, name)
    web.route(PATHS[name], web.Reply(BODIES[name]))
    hits = asyncio.run(backend(name, fast_config).search("korvath lighthouse height", 5))
    assert [h.url for h in hits] == ["https://a.example/k", "https://b.example/l"]
    assert hits[0].text == "38 m tall"
    assert "<strong>" not in hits[0].title + hits[1].text and "&amp;" not in hits[1].title
    assert hits[0].title.startswith("Korvath")


def test_requests_carry_query_limit_and_key_as_each_provider_documents(web, keys, monkeypatch, fast_config) -> None:
    for name in ("serpapi", "brave", "searxng", "tavily"):
        point(monkeypatch, web, name)
        web.route(PATHS[name], web.Reply(BODIES[name]))
        asyncio.run(backend(name, fast_config).search("q1", 3))
    serp, brave = web.seen("/search.json")[0], web.seen("/res/v1/web/search")[0]
    assert serp.query == {"engine": "google", "q": "q1", "num": "3", "api_key": KEYS["serpapi"]}
    assert brave.query == {"q": "q1", "count": "3"} and brave.headers["x-subscription-token"] == KEYS["brave"]
    searx, tavily = web.seen("/search")
    assert searx.method == "GET" and searx.query == {"q": "q1", "format": "json"}
    assert tavily.method == "POST" and tavily.headers["authorization"] == f"Bearer {KEYS['tavily']}"
    assert tavily.json()["query"] == "q1" and tavily.json()["max_results"] == 3


def test_results_are_cut_to_k(web, keys, monkeypatch, fast_config) -> None:
    point(monkeypatch, web, "searxng")
    web.route("/search", web.Reply(SEARXNG))
    assert len(asyncio.run(SearxngSearch(fast_config).search("q", 1))) == 1


def test_serpapi_empty_result_page_is_no_hits_not_an_error(web, keys, monkeypatch, fast_config) -> None:
    point(monkeypatch, web, "serpapi")
    web.route("/search.json", web.Reply({"error": "Google hasn't returned any results for this query."}))
    assert asyncio.run(SerpApiSearch(fast_config).search("zzqx", 5)) == []


ERROR_CASES = [
    # (replies, expected: a substring of the failure, or None when the retry must succeed)
    ([{"body": {"error": "Invalid API key."}, "status": 401}], "HTTP 401: Invalid API key."),
    ([{"body": {"error": "busy"}, "status": 429, "headers": {"Retry-After": "0"}}, {"body": "OK"}], None),
    ([{"body": {"error": "boom"}, "status": 500}], "HTTP 500: boom (gave up after 3 attempts)"),
    ([{"body": "OK", "delay_s": 0.5}], "timed out after 0.2 s (gave up after 3 attempts)"),
    ([{"body": '{"results": [{"url": "https://a.exa', "content_type": "application/json"}], "not valid JSON"),
]


@pytest.mark.parametrize("name", ["serpapi", "brave", "searxng", "tavily"])
@pytest.mark.parametrize(("replies", "expected"), ERROR_CASES, ids=["401", "429", "500", "timeout", "truncated"])
def test_errors_end_in_a_result_or_a_tool_failure_observation(
    name, replies, expected, web, keys, monkeypatch, fast_config
) -> None:
    point(monkeypatch, web, name)
    built = [web.Reply(**{**r, "body": BODIES[name] if r["body"] == "OK" else r["body"]}) for r in replies]
    web.route(PATHS[name], *built)
    config = WebConfig(**{**fast_config.__dict__, "max_retries": 2, "timeout_s": 0.2})
    toolbox = Toolbox(backend(name, config), MemoryImageSearch([]), MemoryGrounder())
    action = Action(ActionKind.TEXT_SEARCH, "korvath lighthouse")
    result = asyncio.run(toolbox.run(action, "How tall?", Image.new("RGB", (8, 8)), None))
    if expected is None:
        assert result.error is None and len(result.sources) == 2
        assert "Korvath" in result.observation
    else:
        assert result.error is not None and expected in result.error
        assert result.observation.startswith("text search failed: ")
        assert result.error.startswith(name)
        if expected.startswith("HTTP 401") and name != "searxng":  # keyed backends say which key to check
            assert f"API key was rejected (HTTP 401: Invalid API key.); check {name.upper()}" in result.error
        for key in KEYS.values():
            assert key not in result.observation


def test_missing_key_is_a_config_error_naming_the_variable(monkeypatch) -> None:
    for name, env in [("serpapi", "SERPAPI_API_KEY"), ("brave", "BRAVE_API_KEY"), ("tavily", "TAVILY_API_KEY")]:
        monkeypatch.delenv(env, raising=False)
        with pytest.raises(ConfigError, match=f"set the environment variable {env}"):
            build_toolbox(ToolsConfig(text_search=name, image_search="serpapi-lens"))
    monkeypatch.delenv("SERPAPI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="SERPAPI_API_KEY"):
        SerpApiImageSearch(WebConfig())


def test_searxng_needs_an_instance_url(monkeypatch) -> None:
    monkeypatch.delenv("DMMS_SEARXNG_URL", raising=False)
    with pytest.raises(ConfigError, match="DMMS_SEARXNG_URL"):
        SearxngSearch(WebConfig())
    assert SearxngSearch(WebConfig(endpoints={"searxng": "http://127.0.0.1:8888/"})).endpoint.endswith(":8888/search")


def test_searxng_403_explains_the_json_format_setting(web, monkeypatch, fast_config) -> None:
    point(monkeypatch, web, "searxng")
    web.route("/search", web.Reply("Forbidden", 403))
    with pytest.raises(ToolError, match=r"enable 'json' under search\.formats"):
        asyncio.run(SearxngSearch(fast_config).search("q", 3))


def test_endpoint_from_config_file_and_env(monkeypatch, keys) -> None:
    monkeypatch.delenv("DMMS_BRAVE_URL", raising=False)
    config = WebConfig(endpoints={"brave": "http://127.0.0.1:9/b"})
    assert BraveSearch(config).endpoint == "http://127.0.0.1:9/b"
    monkeypatch.setenv("DMMS_BRAVE_URL", "http://127.0.0.1:10/b")
    assert BraveSearch(config).endpoint == "http://127.0.0.1:10/b"  # the environment wins
    assert BraveSearch(WebConfig()).endpoint == "http://127.0.0.1:10/b"
    monkeypatch.setenv("DMMS_BRAVE_URL", "ftp://x")
    with pytest.raises(ConfigError, match="must be an http"):
        BraveSearch(WebConfig())


def test_registry_builds_web_backends_and_lists_names(monkeypatch, keys) -> None:
    monkeypatch.setenv("DMMS_SEARXNG_URL", "http://127.0.0.1:9")
    for name in ("serpapi", "brave", "searxng", "duckduckgo", "tavily"):
        toolbox = build_toolbox(ToolsConfig(text_search=name, image_search="serpapi-lens"))
        assert toolbox.text_search.name == name and toolbox.image_search.name == "serpapi-lens"
    plain = build_toolbox(
        ToolsConfig(text_search="brave", image_search="serpapi-lens", web=WebConfig(fetch_pages=False), no_cache=True)
    )
    assert isinstance(plain.text_search, BraveSearch)
    assert plain.text_search.cache_id == "brave@https://api.search.brave.com/res/v1/web/search"
    reading = build_toolbox(ToolsConfig(text_search="brave", image_search="serpapi-lens", no_cache=True)).text_search
    assert reading.cache_id.startswith("brave@https://api.search.brave.com") and "pages:top=3" in reading.cache_id
    with pytest.raises(ConfigError, match=r"known: .*brave.*duckduckgo.*memory.*searxng.*serpapi.*tavily"):
        build_toolbox(ToolsConfig(text_search="bing"))
    for key in keys.values():
        assert key not in repr(plain.text_search)


def test_web_config_loads_from_yaml(tmp_path: Path) -> None:
    from deepmmsearch.config import load_config
    from deepmmsearch.runner import RunConfig

    path = tmp_path / "run.yaml"
    path.write_text(
        "tools:\n  text_search: brave\n  web:\n    allow_private: true\n    endpoints: {brave: http://127.0.0.1:1/x}\n"
    )
    config = load_config(RunConfig, path)
    assert config.tools.web.allow_private is True and config.tools.web.endpoints == {"brave": "http://127.0.0.1:1/x"}
    path.write_text("tools:\n  web:\n    fetch_top: 0\n")
    with pytest.raises(ConfigError, match="fetch_top must be at least 1"):
        load_config(RunConfig, path)
    path.write_text("tools:\n  web:\n    fetch_tpo: 2\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(RunConfig, path)


# ---------------------------------------------------------------------------------------------- DuckDuckGo


class FakeDDGS:
    """Stands in for ddgs.DDGS: ddgs hard-codes its search URLs, so the adapter takes an injected client."""

    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes
        self.calls: list[tuple[str, dict]] = []

    def text(self, query: str, **kwargs: Any) -> list[dict]:
        self.calls.append((query, kwargs))
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def test_duckduckgo_adapter_maps_ddgs_rows(fast_config) -> None:
    rows = [{"title": "Korvath &amp; co", "href": "https://a.example/k", "body": "38 m tall"}, {"title": "no link"}]
    fake = FakeDDGS([rows])
    hits = asyncio.run(DuckDuckGoSearch(fast_config, client_factory=lambda: fake).search("korvath", 4))
    assert [(h.title, h.url, h.text) for h in hits] == [("Korvath & co", "https://a.example/k", "38 m tall")]
    assert fake.calls == [("korvath", {"max_results": 4, "backend": "duckduckgo"})]


def test_duckduckgo_retries_rate_limits_and_translates_errors(fast_config) -> None:
    from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

    def run(fake: FakeDDGS) -> list:
        return asyncio.run(DuckDuckGoSearch(fast_config, client_factory=lambda: fake).search("q", 3))

    fake = FakeDDGS([RatelimitException("202 Ratelimit"), [{"title": "t", "href": "https://a.example/", "body": "b"}]])
    assert len(run(fake)) == 1 and len(fake.calls) == 2
    with pytest.raises(ToolError, match=r"duckduckgo: timed out .*gave up after 3 attempts"):
        run(FakeDDGS([TimeoutException("t")]))
    assert run(FakeDDGS([DDGSException("No results found.")])) == []
    with pytest.raises(ToolError, match="duckduckgo: engine broke"):
        run(FakeDDGS([DDGSException("engine broke")]))


def test_duckduckgo_endpoint_is_its_proxy(monkeypatch) -> None:
    monkeypatch.setenv("DMMS_DUCKDUCKGO_URL", "http://127.0.0.1:3128")
    search = DuckDuckGoSearch(WebConfig())
    assert search._ddgs()._proxy == "http://127.0.0.1:3128"


# ---------------------------------------------------------------------------------------------- images

LENS = {
    "search_metadata": {"status": "Success"},
    "visual_matches": [
        {
            "position": 1,
            "title": "Korvath Point Lighthouse at dusk",
            "link": "https://photos.example/korvath",
            "source": "Coastal Photos",
            "thumbnail": "https://t.example/1.jpg",
            "image": "https://i.example/1.jpg",
        },
        {"position": 2, "title": "White tower", "link": "https://b.example/t", "source": "Blog"},
    ],
}
REVERSE = {
    "image_results": [{"position": 1, "title": "Korvath Point", "link": "https://a.example/k", "snippet": "38 m"}],
    "inline_images": [],
}


def test_lens_passes_http_images_through_and_parses_visual_matches(web, keys, monkeypatch, fast_config) -> None:
    monkeypatch.setenv("DMMS_SERPAPI_URL", web.url("/search.json"))
    web.route("/search.json", web.Reply(LENS))
    hits = asyncio.run(SerpApiImageSearch(fast_config).search(Image.new("RGB", (8, 8)), 5, "https://img.example/l.jpg"))
    assert [(h.title, h.url, h.description, h.image) for h in hits] == [
        (
            "Korvath Point Lighthouse at dusk",
            "https://photos.example/korvath",
            "Coastal Photos",
            "https://i.example/1.jpg",
        ),
        ("White tower", "https://b.example/t", "Blog", None),
    ]
    sent = web.seen("/search.json")[0].query
    assert sent["engine"] == "google_lens" and sent["url"] == "https://img.example/l.jpg"


def test_reverse_image_engine(web, keys, monkeypatch, fast_config) -> None:
    monkeypatch.setenv("DMMS_SERPAPI_URL", web.url("/search.json"))
    web.route("/search.json", web.Reply(REVERSE))
    search = SerpApiImageSearch(fast_config, "serpapi-reverse-image")
    hits = asyncio.run(search.search(Image.new("RGB", (8, 8)), 5, "https://img.example/l.jpg"))
    assert [(h.title, h.url, h.description) for h in hits] == [("Korvath Point", "https://a.example/k", "38 m")]
    sent = web.seen("/search.json")[0].query
    assert sent["engine"] == "google_reverse_image" and sent["image_url"] == "https://img.example/l.jpg"


def test_local_images_and_crops_need_an_image_host(web, keys, monkeypatch, fast_config, tmp_path) -> None:
    monkeypatch.setenv("DMMS_SERPAPI_URL", web.url("/search.json"))
    web.route("/search.json", web.Reply(LENS))
    image = Image.new("RGB", (16, 16), (200, 30, 30))
    for ref, what in [("photos/local.png", "a local image"), (None, "a crop of the image")]:
        with pytest.raises(ToolError, match=f"cannot search {what}: .*image_host_dir and tools.web.image_url_base"):
            asyncio.run(SerpApiImageSearch(fast_config).search(image, 5, ref))
    assert web.requests == []
    hosted = WebConfig(
        **{
            **fast_config.__dict__,
            "image_host_dir": str(tmp_path / "pub"),
            "image_url_base": "https://cdn.example/dmms/",
        }
    )
    asyncio.run(SerpApiImageSearch(hosted).search(image, 5, None))
    sent_url = web.seen("/search.json")[0].query["url"]
    files = list((tmp_path / "pub").iterdir())
    assert len(files) == 1 and sent_url == "https://cdn.example/dmms/" + files[0].name
    assert Image.open(files[0]).getpixel((3, 3)) == (200, 30, 30)

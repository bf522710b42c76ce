"""The settings of the web backends and of page fetching, as one config dataclass (no heavy imports)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from deepmmsearch.config import check_at_least, check_positive
from deepmmsearch.errors import ConfigError


@dataclass
class WebConfig:
    """Endpoints, limits and safety switches shared by every web backend and by page fetching."""

    endpoints: dict[str, str] = field(
        default_factory=dict,
        metadata={
            "help": "per-backend API endpoint overrides, e.g. {serpapi: https://proxy.example/search.json}; "
            "the environment variable DMMS_<BACKEND>_URL wins over this (duckduckgo: a proxy URL for ddgs)"
        },
    )
    fetch_pages: bool = field(
        default=True, metadata={"help": "text search reads the top results' pages instead of only their snippets"}
    )
    fetch_top: int = field(default=3, metadata={"help": "pages read per text search"})
    page_chars: int = field(default=4000, metadata={"help": "characters of main text kept per page"})
    fetch_budget_s: float = field(
        default=12.0, metadata={"help": "time for reading pages per search; slower pages keep their snippet"}
    )
    allow_private: bool = field(
        default=False,
        metadata={
            "help": "let page fetching reach loopback and private addresses (local development only)",
            "aliases": ("--allow-private",),
        },
    )
    max_page_bytes: int = field(default=2 * 2**20, metadata={"help": "bytes read per page; the rest is dropped"})
    max_api_bytes: int = field(default=8 * 2**20, metadata={"help": "bytes read per search API response"})
    max_redirects: int = field(default=5, metadata={"help": "redirect hops followed per page"})
    timeout_s: float = field(default=15.0, metadata={"help": "per HTTP request (connect, read, write, pool)"})
    max_retries: int = field(default=3, metadata={"help": "retries on 429, 5xx, timeouts and connection errors"})
    backoff_s: float = field(default=0.5, metadata={"help": "first retry delay; doubles per retry, with jitter"})
    max_backoff_s: float = field(
        default=20.0, metadata={"help": "longest wait between retries; a longer Retry-After gives up instead"}
    )
    per_host_rps: float = field(default=5.0, metadata={"help": "requests per second to any one host"})
    max_in_flight: int = field(default=16, metadata={"help": "HTTP requests in flight at once, all hosts together"})
    user_agent: str = field(
        default="deepmmsearch/0.1 (+https://github.com/deepmmsearch)", metadata={"help": "User-Agent header"}
    )
    image_url_base: str | None = field(
        default=None,
        metadata={
            "help": "public URL prefix under which image_host_dir is served; reverse image search of local "
            "files and crops needs it (web APIs only accept public image URLs)"
        },
    )
    image_host_dir: str | None = field(
        default=None, metadata={"help": "folder that local images and crops are copied to, served at image_url_base"}
    )

    def __post_init__(self) -> None:
        check_at_least(
            self, 1, "fetch_top", "page_chars", "max_page_bytes", "max_api_bytes", "max_in_flight", section="web"
        )
        check_at_least(self, 0, "max_retries", "max_redirects", "backoff_s", section="web")
        check_positive(self, "timeout_s", "per_host_rps", "fetch_budget_s", section="web")
        if not isinstance(self.endpoints, dict):
            raise ConfigError(f"web.endpoints must be a mapping of backend name to URL, got {self.endpoints!r}")

    def endpoint(self, backend: str, default: str | None) -> str | None:
        """The API endpoint of ``backend``: ``DMMS_<BACKEND>_URL``, else the config file, else ``default``."""
        env = "DMMS_" + backend.upper().replace("-", "_") + "_URL"
        url = os.environ.get(env) or self.endpoints.get(backend) or default
        if url is not None and not url.startswith(("http://", "https://")):
            raise ConfigError(f"the {backend} endpoint must be an http(s) URL, got {url!r} (from {env} or config)")
        return url

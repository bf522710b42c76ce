"""How the server listens, whom it lets in and how much it takes on: a config with no heavy imports, so that the CLI
reads its fields (for ``dmms serve``'s flags) without loading FastAPI."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from deepmmsearch.config import check_at_least, check_positive
from deepmmsearch.errors import ConfigError


@dataclass
class ServeConfig:
    """How the server listens, whom it lets in, and how much work it takes on."""

    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on (0.0.0.0: every interface)"})
    port: int = field(default=8000, metadata={"help": "port to listen on"})
    api_key_env: str | None = field(
        default=None, metadata={"help": "environment variable holding the bearer key /v1 requires; unset: no auth"}
    )
    model_name: str | None = field(default=None, metadata={"help": "model id reported to clients; default: policy"})
    max_active: int = field(default=16, metadata={"help": "episodes running at once"})
    max_queue: int = field(default=64, metadata={"help": "requests waiting for a slot; one more gets 429"})
    queue_timeout_s: float = field(default=30.0, metadata={"help": "longest wait for a slot before 503"})
    request_timeout_s: float = field(default=300.0, metadata={"help": "longest episode per request before 504"})
    max_body_bytes: int = field(default=24 * 2**20, metadata={"help": "largest request body (413 above)"})
    max_image_bytes: int = field(default=16 * 2**20, metadata={"help": "largest image, decoded from its URL"})
    max_image_pixels: int = field(default=40_000_000, metadata={"help": "largest image area in pixels"})
    allow_image_urls: bool = field(default=True, metadata={"help": "fetch http(s) image URLs (else: data URLs only)"})
    allow_private_image_urls: bool = field(
        default=False, metadata={"help": "fetch image URLs on loopback and private hosts (local development)"}
    )
    image_timeout_s: float = field(default=15.0, metadata={"help": "longest download of an image URL"})

    def __post_init__(self) -> None:
        check_at_least(self, 1, "max_active", "max_body_bytes", "max_image_bytes", "max_image_pixels", section="serve")
        check_at_least(self, 0, "max_queue", section="serve")
        check_positive(self, "queue_timeout_s", "request_timeout_s", "image_timeout_s", section="serve")

    def api_key(self) -> str | None:
        """The key clients must send, read from ``api_key_env``; None when auth is off."""
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise ConfigError(f"--api-key-env {self.api_key_env}: that environment variable is not set or empty")
        return key

"""Web search backends and safe page fetching.

Importing this package is cheap: httpx, trafilatura and ddgs are imported by the modules that use them
(:mod:`.http`, :mod:`.fetch`, :mod:`.backends`), which the tool registry loads only when a web backend is
chosen. :class:`WebConfig` is the one setting object they share.
"""

from deepmmsearch.web.config import WebConfig

__all__ = ["WebConfig"]

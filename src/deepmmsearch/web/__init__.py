"""The web client beneath the web tools: HTTP with limits, retries and redaction, address safety, page fetching.

Importing this package is cheap: httpx and trafilatura are imported by the modules that use them (:mod:`.http`,
:mod:`.fetch`). The search providers that speak through this client are tools (``deepmmsearch.tools.web_search``).
:class:`WebConfig` is the one setting object they share.
"""

from deepmmsearch.web.config import WebConfig

__all__ = ["WebConfig"]

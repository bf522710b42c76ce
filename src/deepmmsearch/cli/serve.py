"""``dmms serve``: the agent behind an OpenAI-compatible API, with a web page at ``/``."""

from __future__ import annotations

import typer

from deepmmsearch.cli.app import ModelOpt, app, stderr_console, user_errors
from deepmmsearch.cli.flags import config_flags
from deepmmsearch.runner import RunConfig
from deepmmsearch.serve.config import ServeConfig


@app.command()
@user_errors
@config_flags(RunConfig, "run", yaml=True)
@config_flags(ServeConfig, "serving")
def serve(serving: ServeConfig, run: RunConfig, model: ModelOpt = None) -> None:
    """Serve the agent: POST /v1/chat/completions (OpenAI-compatible, streaming too), GET /v1/models, /health, /."""
    import uvicorn

    from deepmmsearch.runner import build_agent
    from deepmmsearch.serve.app import create_app

    if not model:
        raise typer.BadParameter("give a model SPEC, e.g. --model openai:gpt-4o", param_hint="--model")
    serving.api_key()  # a missing key is a one-line error now, before any model is built
    agent = build_agent(model, run)
    web_app = create_app(agent, serving)
    auth = f", key from ${serving.api_key_env}" if serving.api_key_env else ", no auth"
    stderr_console().print(f"serving {agent.policy.name} on http://{serving.host}:{serving.port}/ (API at /v1{auth})")
    uvicorn.run(web_app, host=serving.host, port=serving.port, log_level="info", timeout_graceful_shutdown=5)

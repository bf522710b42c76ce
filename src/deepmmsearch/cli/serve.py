"""``dmms serve``: the agent behind an OpenAI-compatible API, with a web page at ``/``."""

from __future__ import annotations

from typing import Annotated

import typer

from deepmmsearch.cli.app import (
    ConfigOpt,
    GrounderOpt,
    ImageSearchOpt,
    KbOpt,
    ModelOpt,
    TextSearchOpt,
    app,
    run_config_from,
    stderr_console,
    tool_overrides,
    user_errors,
)


@app.command()
@user_errors
def serve(
    model: ModelOpt = None,
    config: ConfigOpt = None,
    text_search: TextSearchOpt = None,
    image_search: ImageSearchOpt = None,
    grounder: GrounderOpt = None,
    kb: KbOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the bearer key that /v1 requires.")
    ] = None,
    max_active: Annotated[int, typer.Option(help="Episodes running at once.")] = 16,
    max_queue: Annotated[int, typer.Option(help="Requests waiting for a slot; one more gets HTTP 429.")] = 64,
    request_timeout: Annotated[float, typer.Option(help="Seconds per episode before HTTP 504.")] = 300.0,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body in MiB (HTTP 413 above).")] = 24.0,
    max_image_mb: Annotated[float, typer.Option(help="Largest image in MiB.")] = 16.0,
    image_urls: Annotated[bool, typer.Option(help="Fetch http(s) image URLs; --no-image-urls: data URLs only.")] = True,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Call every search backend afresh.")] = False,
) -> None:
    """Serve the agent: POST /v1/chat/completions (OpenAI-compatible, streaming too), GET /v1/models, /health, /."""
    import uvicorn

    from deepmmsearch.runner import build_agent
    from deepmmsearch.serve import ServeConfig, create_app

    if not model:
        raise typer.BadParameter("give a model SPEC, e.g. --model openai:gpt-4o", param_hint="--model")
    serve_config = ServeConfig(
        host=host,
        port=port,
        api_key_env=api_key_env,
        max_active=max_active,
        max_queue=max_queue,
        request_timeout_s=request_timeout,
        max_body_bytes=int(max_body_mb * 2**20),
        max_image_bytes=int(max_image_mb * 2**20),
        allow_image_urls=image_urls,
    )
    serve_config.api_key()  # a missing key is a one-line error now, before any model is built
    run_config = run_config_from(
        config,
        **tool_overrides(
            text_search=text_search, image_search=image_search, grounder=grounder, kb=kb, no_cache=no_cache
        ),
    )
    agent = build_agent(model, run_config)
    web_app = create_app(agent, serve_config)
    auth = f", key from ${api_key_env}" if api_key_env else ", no auth"
    stderr_console().print(f"serving {agent.policy.name} on http://{host}:{port}/ (API at /v1{auth})")
    uvicorn.run(web_app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)

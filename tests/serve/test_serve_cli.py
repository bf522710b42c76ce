"""`dmms serve` as a user runs it: a subprocess on 127.0.0.1, answering the shipped example."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SCRIPT = "script:examples/lighthouse.script.json"


def dmms(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deepmmsearch", *args], capture_output=True, text=True, env=env, timeout=60
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_runs_the_example_and_requires_the_key(example_image: Path, example_kb: Path, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "DMMS_SERVE_KEY": "k-123", "DMMS_CACHE_DIR": str(tmp_path)}
    args = ["serve", "--model", SCRIPT, "--kb", str(example_kb), "--text-search", "memory", "--no-cache"]
    args += ["--port", str(port), "--api-key-env", "DMMS_SERVE_KEY"]
    process = subprocess.Popen(
        [sys.executable, "-m", "deepmmsearch", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "dmms serve did not come up"
            time.sleep(0.1)
        url = "data:image/png;base64," + base64.b64encode(example_image.read_bytes()).decode()
        parts = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "How tall?"}]
        body = {"model": "x", "messages": [{"role": "user", "content": parts}]}
        assert httpx.post(f"{base}/v1/chat/completions", json=body, timeout=20).status_code == 401
        headers = {"Authorization": "Bearer k-123"}
        response = httpx.post(f"{base}/v1/chat/completions", json=body, headers=headers, timeout=20)
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == "38 metres"
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_a_missing_key_variable_is_one_line_and_exit_1(example_kb: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DMMS_UNSET_KEY"}
    out = dmms("serve", "--model", SCRIPT, "--kb", str(example_kb), "--api-key-env", "DMMS_UNSET_KEY", env=env)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "error: --api-key-env DMMS_UNSET_KEY: that environment variable is not set or empty"
    ]


def test_an_unknown_model_is_one_line_and_exit_1(example_kb: Path) -> None:
    out = dmms("serve", "--model", "nope:x", "--kb", str(example_kb))
    assert out.returncode == 1
    assert out.stderr.startswith("error: unknown model spec 'nope:x'") and len(out.stderr.strip().splitlines()) == 1


def test_cli_import_loads_no_web_framework() -> None:
    code = "import sys, deepmmsearch.cli; print(sorted({'fastapi', 'uvicorn', 'starlette'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

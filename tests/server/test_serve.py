"""``m0rank serve`` as users run it, and graceful shutdown under a real uvicorn server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from server_helpers import make_app

from m0rank import Reranker
from m0rank.cli.main import main
from m0rank.server.lifecycle import draining_server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, alive, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready")


@pytest.mark.slow  # a second process loads torch and the model (part 2's client tests also do)
def test_serve_command_serves_authenticates_and_stops_on_sigterm(m0_checkpoint, tmp_path):
    port = free_port()
    keys = tmp_path / "keys"
    keys.write_text("file-key\n")
    command = [sys.executable, "-m", "m0rank.cli.main", "-v", "serve", "--model",
               str(m0_checkpoint), "--device", "cpu", "--port", str(port),
               "--api-key", "flag-key", "--api-keys-file", str(keys),
               "--served-model-name", "jina-reranker-m0"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "M0RANK_RPM_LIMIT": "100"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=env, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, lambda: process.poll() is None)
        payload = {"query": "markdown", "documents": ["a", "b"]}
        ok = httpx.post(url + "/v1/rerank", json=payload,
                        headers={"Authorization": "Bearer file-key"})
        denied = httpx.post(url + "/v1/rerank", json=payload)
        models = httpx.get(url + "/v1/models", headers={"Authorization": "Bearer flag-key"})
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert ok.status_code == 200, output
    assert ok.json()["model"] == "jina-reranker-m0"
    assert denied.status_code == 401
    assert models.json()["data"][0]["id"] == "jina-reranker-m0"
    assert process.returncode in (0, -signal.SIGTERM), output  # uvicorn re-raises the signal
    assert "server draining" in output
    assert "server stopped" in output


def test_serve_with_a_missing_model_fails_cleanly(tmp_path, capsys, no_network):
    assert main(["serve", "--model", str(tmp_path / "no-such-model"), "--device", "cpu",
                 "--local-files-only"]) == 1
    assert "m0rank: error:" in capsys.readouterr().err


def test_bad_settings_fail_before_loading(capsys, monkeypatch):
    monkeypatch.setenv("M0RANK_PORT", "not-a-port")
    assert main(["serve", "--model", "never-loaded"]) == 2
    assert "M0RANK_PORT has an invalid value 'not-a-port'" in capsys.readouterr().err


def test_sigterm_lets_in_flight_requests_finish(reranker):
    own = Reranker(reranker.model)
    entered, release = threading.Event(), threading.Event()
    original = own.engine.launch

    def held(batch):
        entered.set()
        release.wait(30)
        return original(batch)

    own.engine.launch = held
    app = make_app(own)
    import uvicorn

    port = free_port()
    server = draining_server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None),
                             app.state.m0rank.lifecycle)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, thread.is_alive)
    result: dict[str, httpx.Response] = {}
    request = threading.Thread(target=lambda: result.update(r=httpx.post(
        url + "/v1/rerank", json={"query": "q", "documents": ["a"]}, timeout=60)))
    request.start()
    assert entered.wait(30)
    server.handle_exit(signal.SIGTERM, None)  # what uvicorn's signal handler calls
    assert app.state.m0rank.lifecycle.state.value == "draining"
    threading.Timer(0.5, release.set).start()
    request.join(60)
    thread.join(60)
    assert result["r"].status_code == 200
    assert not thread.is_alive()
    assert app.state.m0rank.lifecycle.state.value == "stopped"
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/health", timeout=2)

"""Real servers on 127.0.0.1 for client and browser tests.

:func:`serve_cli` runs ``m0rank serve`` as a subprocess: what users run, covering the CLI,
uvicorn, the lifespan and the network stack (it loads the model again, so it costs a start-up).
:func:`serve_app` runs a uvicorn server for an app in a thread of this process, reusing an
already loaded model.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_cli(checkpoint: Path, *args: str, ready_timeout: float = 180.0) -> Iterator[str]:
    """Start ``m0rank serve --model checkpoint`` and yield its root URL once ``/ready``."""
    port = free_port()
    command = [sys.executable, "-m", "m0rank.cli.main", "serve", "--model", str(checkpoint),
               "--device", "cpu", "--host", "127.0.0.1", "--port", str(port), *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, process, log, ready_timeout)
            yield url
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(url: str, process: subprocess.Popen, log: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)  # type: ignore[attr-defined]
            output = log.read().decode(errors="replace")  # type: ignore[attr-defined]
            raise RuntimeError(f"m0rank serve exited with {process.returncode}:\n{output}")
        if _is_ready(url):
            return
        time.sleep(0.2)
    raise TimeoutError(f"m0rank serve at {url} was not ready after {timeout} s")


@contextmanager
def serve_app(app: Any, ready_timeout: float = 60.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yield its root URL once ``/ready``."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while not _is_ready(url):
            if time.monotonic() > deadline or not thread.is_alive():
                raise TimeoutError(f"app at {url} was not ready after {ready_timeout} s")
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _is_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False

"""Hostile and impatient clients against a real ``m0rank serve`` process over loopback.

The model is the weight-free dummy with a known cost per pair (``seconds_per_pair``), so the
timings below are the server's, not a model's. Every loop is bounded in count and time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from cli_server import free_port

COST_S = 0.02  # simulated model time per pair


def dummy_model(folder: Path, seconds_per_pair: float = COST_S) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(
        {"architectures": ["M0RankDummyReranker"], "seconds_per_pair": seconds_per_pair}))
    return folder


@contextmanager
def serve(model: Path, *flags: str) -> Iterator[tuple[str, subprocess.Popen, int]]:
    """``m0rank serve`` on a free port; yields (url, process, port) once ready."""
    port = free_port()
    command = [sys.executable, "-m", "m0rank.cli.main", "serve", "--model", str(model),
               "--device", "cpu", "--host", "127.0.0.1", "--port", str(port),
               "--max-batch-size", "4", *flags]
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, _output(log)
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise TimeoutError(_output(log))
        yield url, process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        log.close()


def _output(log: object) -> str:
    log.seek(0)  # type: ignore[attr-defined]
    return log.read().decode(errors="replace")  # type: ignore[attr-defined]


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def read_all(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def error_body(raw: bytes) -> dict:
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


def metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def rerank_body(documents: int) -> bytes:
    return json.dumps({"query": "red apple", "documents": [f"red apple {i}" for i in
                                                           range(documents)]}).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, subprocess.Popen, int]]:
    model = dummy_model(tmp_path_factory.mktemp("dummy"))
    with serve(model, "--header-timeout", "1.5", "--body-timeout", "1.5",
               "--max-connections", "400") as running:
        yield running


def test_half_open_connections_time_out_with_408_while_health_answers(server) -> None:
    url, _, port = server
    held = []
    try:
        for _ in range(300):
            sock = connect(port)
            sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\n")  # never finished
            held.append(sock)
        started = time.monotonic()
        assert httpx.get(url + "/health", timeout=5).status_code == 200
        assert time.monotonic() - started < 1.0
        answer = read_all(held[0], timeout=5)
    finally:
        for sock in held:
            sock.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    body = error_body(answer)
    assert body["error"]["type"] == "timeout"
    assert body["detail"] == "the request head did not arrive within 1.5 s"


def test_a_stalled_body_closes_the_connection(server) -> None:
    _, _, port = server
    sock = connect(port)
    try:
        sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"query\":")
        started = time.monotonic()
        rest = read_all(sock, timeout=8)
        waited = time.monotonic() - started
    finally:
        sock.close()
    assert b"200 OK" not in rest
    assert 1.0 < waited < 6.0  # closed by the 1.5 s body-idle timeout, not held forever


def test_connections_over_the_cap_get_503_json(tmp_path) -> None:
    with serve(dummy_model(tmp_path / "dummy"), "--max-connections", "5",
               "--header-timeout", "20") as (_, _, port):
        held = [connect(port) for _ in range(5)]
        try:
            time.sleep(0.3)  # let the server register them
            refused = read_all(connect(port), timeout=5)
        finally:
            for sock in held:
                sock.close()
    assert refused.startswith(b"HTTP/1.1 503 ")
    assert error_body(refused)["error"]["type"] == "service_unavailable"


def test_work_of_a_disconnected_client_is_dropped(server) -> None:
    url, _, port = server
    body = rerank_body(400)  # 400 pairs x 20 ms = 8 s of model time
    sock = connect(port)
    sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    time.sleep(0.5)
    abandoned = metric(url, "m0rank_requests_abandoned_total")
    sock.close()  # the client gives up
    started = time.monotonic()
    small = httpx.post(url + "/v1/rerank", content=rerank_body(2),
                       headers={"Content-Type": "application/json"}, timeout=30)
    assert small.status_code == 200
    assert time.monotonic() - started < 2.0  # not behind the abandoned 7 s
    deadline = time.monotonic() + 5
    while metric(url, "m0rank_requests_abandoned_total") < abandoned + 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert metric(url, "m0rank_queue_depth") == 0


def test_a_small_request_does_not_wait_behind_a_large_one(server) -> None:
    url, _, _ = server
    with httpx.Client(timeout=30) as client:
        import threading

        large: dict[str, object] = {}

        def send_large() -> None:
            large["response"] = client.post(url + "/v1/rerank", content=rerank_body(200),
                                            headers={"Content-Type": "application/json"})

        thread = threading.Thread(target=send_large)
        thread.start()
        time.sleep(0.5)  # the large request (4 s of model time) is running
        started = time.monotonic()
        small = httpx.post(url + "/v1/rerank", content=rerank_body(2),
                           headers={"Content-Type": "application/json"}, timeout=30)
        small_latency = time.monotonic() - started
        thread.join(30)
    assert small.status_code == 200 and large["response"].status_code == 200
    assert small_latency < 1.5  # round-robin: one micro-batch, not the 3.5 s left of the large


def test_sigterm_answers_long_work_with_503_json_and_refuses_new_connections(tmp_path) -> None:
    with serve(dummy_model(tmp_path / "dummy"), "--drain-timeout", "1") as (url, process, port):
        import threading

        answers: dict[str, httpx.Response] = {}

        def post(name: str, documents: int) -> None:
            answers[name] = httpx.post(url + "/v1/rerank", content=rerank_body(documents),
                                       headers={"Content-Type": "application/json"}, timeout=30)

        long = threading.Thread(target=post, args=("long", 400))  # 8 s of model time
        long.start()
        time.sleep(0.5)
        short = threading.Thread(target=post, args=("short", 2))
        short.start()
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        long.join(30)
        short.join(30)
        deadline = time.monotonic() + 5
        refused = False
        while time.monotonic() < deadline and not refused:
            try:
                httpx.get(url + "/health", timeout=1)
                time.sleep(0.1)
            except httpx.TransportError:
                refused = True
        process.wait(timeout=30)
    assert answers["short"].status_code == 200
    assert answers["long"].status_code == 503
    assert answers["long"].json()["error"]["type"] == "service_unavailable"
    assert answers["long"].json()["detail"] == ("the server is shutting down and could not "
                                                "finish this request; retry")
    assert refused

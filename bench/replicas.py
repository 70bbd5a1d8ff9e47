"""Replicas in ``m0rank serve``: throughput with 1 and 2 replicas, and a replica killed under load.

Starts the real server (``python -m m0rank.cli.main serve``) on 127.0.0.1 and drives it with N
concurrent httpx clients sending ``POST /v1/rerank`` back to back for ``--duration`` seconds.

Models:

- ``dummy``: the weight-free dummy family with a simulated device cost (``seconds_per_pair``,
  a sleep: the "device" is busy while the CPU is free, as with a GPU). It shows what the
  replica machinery itself delivers: spreading over replicas, and its own overhead.
- ``m0-tiny``: the tiny random jina-reranker-m0 checkpoint (``m0rank.testing``): real CPU
  compute. On this 2-core machine, replicas share the same two cores, so expect no gain: CPU
  replicas only pay off when each gets its own cores (or its own GPU).

Scenarios per model: ``--replicas 1`` (the in-process path) and ``--replicas 2``; for the dummy
also ``kill``: 2 replicas, replica 0 killed with SIGKILL a third of the way through, reporting
answers by status (every one must be 200), the restart time and the retried micro-batches.

Usage: ``python bench/replicas.py [--clients 8] [--duration 15]``; writes
``bench/results/replicas_cpu.json``. Client and server share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

RESULTS = Path(__file__).resolve().parent / "results"
WORDS = ("markdown html model reranker image table chart invoice bread tower paris language "
         "small large vision text page layout query document score neural search").split()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--docs", type=int, default=8, help="documents per request")
    parser.add_argument("--seconds-per-pair", type=float, default=0.005,
                        help="the dummy model's simulated device time per pair")
    parser.add_argument("--output", type=Path, default=RESULTS / "replicas_cpu.json")
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``m0rank serve`` as a subprocess, ready when ``/ready`` answers 200."""

    def __init__(self, model: Path, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "m0rank.cli.main", "serve", "--model", str(model),
                   "--device", "cpu", "--port", str(self.port), "--max-batch-size", "8",
                   "--rpm-limit", "0", "--tpm-limit", "0", *flags]
        self.log = tempfile.TemporaryFile()
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        started = time.monotonic()
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        env=env)
        deadline = started + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(self.log.read().decode(errors="replace"))
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise TimeoutError("server not ready")
        self.start_s = time.monotonic() - started

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=10).text

    def close(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def sample(text: str, name: str) -> dict[str, float]:
    """Every labelled sample of one metric: label text -> value."""
    return {m.group(1): float(m.group(2))
            for m in re.finditer(rf"^{re.escape(name)}{{([^}}]*)}} (\S+)$", text, re.MULTILINE)}


def replica_pid(text: str, replica: int) -> int:
    match = re.search(rf'm0rank_replica_info{{device="[^"]+",pid="(\d+)",replica="{replica}"}}',
                      text)
    assert match
    return int(match.group(1))


async def load(url: str, clients: int, duration: float, docs: int,
               during: float | None = None, action=None) -> dict:  # noqa: ANN001
    """Clients back to back for ``duration`` s; ``action()`` once, ``during`` s in."""
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    samples: list[str] = []
    stop = time.monotonic() + duration

    async def client(seed: int) -> None:
        rng = __import__("random").Random(seed)
        async with httpx.AsyncClient(timeout=120) as http:
            while time.monotonic() < stop:
                body = {"query": " ".join(rng.sample(WORDS, 3)),
                        "documents": [" ".join(rng.sample(WORDS, 12)) for _ in range(docs)]}
                started = time.monotonic()
                response = await http.post(url + "/v1/rerank", json=body)
                latencies.append(time.monotonic() - started)
                statuses[str(response.status_code)] = statuses.get(str(response.status_code),
                                                                   0) + 1
                if response.status_code != 200 and len(samples) < 3:
                    samples.append(response.text[:300])

    async def trigger() -> None:
        await asyncio.sleep(during or 0)
        await asyncio.to_thread(action)

    started = time.monotonic()
    tasks = [client(i) for i in range(clients)]
    if action is not None:
        tasks.append(trigger())
    await asyncio.gather(*tasks)
    seconds = time.monotonic() - started
    ok = statuses.get("200", 0)
    ordered = sorted(latencies)
    return {
        "seconds": round(seconds, 2), "answers": statuses, "non_200_samples": samples,
        "requests_per_s": round(ok / seconds, 2), "pairs_per_s": round(ok * docs / seconds, 1),
        "latency_ms": {"p50": round(1000 * statistics.median(ordered), 1),
                       "p99": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 1),
                       "max": round(1000 * ordered[-1], 1)},
    }


def run_scenario(model: Path, replicas: int, args: argparse.Namespace,
                 kill: bool = False) -> dict:
    server = Server(model, "--replicas", str(replicas))
    try:
        asyncio.run(load(server.url, args.clients, 2.0, args.docs))  # warm-up
        killed: dict = {}

        def kill_replica_0() -> None:
            killed["pid"] = replica_pid(server.metrics(), 0)
            killed["at"] = time.monotonic()
            os.kill(killed["pid"], signal.SIGKILL)

        result = asyncio.run(load(server.url, args.clients, args.duration, args.docs,
                                  during=args.duration / 3 if kill else None,
                                  action=kill_replica_0 if kill else None))
        result["server_start_s"] = round(server.start_s, 1)
        text = server.metrics()
        if replicas > 1:
            result["pairs_by_replica"] = sample(text, "m0rank_replica_pairs_total")
        if kill:
            deadline = time.monotonic() + 120
            while sample(text, "m0rank_replica_up").get('replica="0"') != 1.0:
                assert time.monotonic() < deadline, "replica 0 never came back"
                time.sleep(0.1)
                text = server.metrics()
            result["restart_s"] = round(time.monotonic() - killed["at"], 1)
            result["restart_note"] = "upper bound: from the kill until /metrics showed it up"
            result["restarts"] = sample(text, "m0rank_replica_restarts_total")
            result["lost_batches"] = sample(text, "m0rank_replica_lost_batches_total")
            result["retried_batches"] = float(re.search(
                r"^m0rank_replica_retried_batches_total (\S+)$", text, re.MULTILINE).group(1))
            result["failed_batches"] = float(re.search(
                r"^m0rank_replica_failed_batches_total (\S+)$", text, re.MULTILINE).group(1))
        return result
    finally:
        server.close()


def main() -> None:
    args = parse_args()
    from m0rank.testing.checkpoints import write_m0_checkpoint

    work = Path(tempfile.mkdtemp(prefix="m0rank-replicas-"))
    dummy = work / "dummy"
    dummy.mkdir()
    (dummy / "config.json").write_text(json.dumps(
        {"architectures": ["M0RankDummyReranker"], "seconds_per_pair": args.seconds_per_pair}))
    tiny = write_m0_checkpoint(work / "m0-tiny", seed=0)
    results: dict = {
        "benchmark": "replicas",
        "machine": "2-core AMD EPYC CPU shared with other jobs, no GPU (every replica on cpu)",
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
        "clients": args.clients, "duration_s": args.duration, "documents_per_request": args.docs,
        "max_batch_size": 8,
        "models": {"dummy": f"weight-free dummy, simulated device time "
                            f"{args.seconds_per_pair * 1000:g} ms per pair (a sleep)",
                   "m0-tiny": "tiny random jina-reranker-m0 (m0rank.testing), CPU compute"},
        "scenarios": {},
    }
    plan = [("dummy", dummy, 1, False), ("dummy", dummy, 2, False), ("dummy", dummy, 2, True),
            ("m0-tiny", tiny, 1, False), ("m0-tiny", tiny, 2, False)]
    for name, model, replicas, kill in plan:
        key = f"{name}_replicas{replicas}" + ("_kill" if kill else "")
        print(f"running {key}", file=sys.stderr)
        results["scenarios"][key] = run_scenario(model, replicas, args, kill=kill)
        print(json.dumps(results["scenarios"][key]), file=sys.stderr)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()

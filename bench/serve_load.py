"""Load test of ``m0rank serve``: N concurrent clients on loopback for a bounded time.

Starts the real server (``python -m m0rank.cli.main serve``) as a subprocess on 127.0.0.1 over
a tiny random jina-reranker-m0 checkpoint (``m0rank.testing.checkpoints``; the same layout and
tokenizer as the released model, so the HTTP, batching and preprocessing paths are the real
ones, while the forward pass is tiny). Then, per scenario, N async httpx clients send
``POST /v1/rerank`` back to back for ``--duration`` seconds after a short warm-up and we report
requests/s, documents/s, p50/p95/p99 latency, errors (must be 0) and the server's peak RSS
(``VmHWM`` from ``/proc``).

Scenarios:
- ``text``: a text query and ``--docs`` text documents, different words per request.
- ``images``: the same with two of the documents base64 PNGs that repeat across requests, so
  the image cache turns every repeat into a hash lookup instead of a decode.

Fault mode (``--scenarios faults``, written to ``bench/results/serve_load_faults_cpu.json``): the
same well-behaved clients run while hostile ones misbehave at the same time:

- ``disconnect``: send a 200-document request and hang up after 0.3 s, again and again (their
  work must be dropped, not finished);
- ``stall``: open connections that send half a request head and then nothing (the header
  timeout must close them; ``/health`` must keep answering);
- ``oversized``: post a 62-megapixel PNG of a few hundred KB (must get 413 without decoding).

It reports answers by status for every client class, p50/p99 latency of the well-behaved
clients, and the server's RSS at start, peak and end.

Usage: ``python bench/serve_load.py [--clients 8] [--duration 20] [--model PATH]``; writes
``bench/results/serve_load_cpu.json``. Client and server share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

RESULTS = Path(__file__).resolve().parent / "results"
WORDS = ("markdown html model reranker image table chart invoice bread tower paris language "
         "small large vision text page layout query document score neural search").split()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="checkpoint folder (default: tiny random)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per scenario")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--docs", type=int, default=8, help="documents per request")
    parser.add_argument("--scenarios", default="text,images",
                        help="comma-separated: text, images, faults")
    parser.add_argument("--out", type=Path, help="JSON report (default by scenarios)")
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(model: Path, port: int, log: object) -> subprocess.Popen:
    """``m0rank serve`` with rate limits off (no API keys), waiting until ``/ready``."""
    command = [sys.executable, "-m", "m0rank.cli.main", "serve", "--model", str(model),
               "--device", "cpu", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise TimeoutError("server was not ready within 300 s")


def peak_rss_mib(pid: int, field: str = "VmHWM") -> float:
    """Peak (``VmHWM``) or current (``VmRSS``) resident set size of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bomb_base64() -> str:
    """A 9000 x 6900 PNG of one colour: 62 MP decoded, a few hundred KB encoded."""
    buffer = io.BytesIO()
    Image.new("RGB", (9000, 6900), (250, 250, 250)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


async def disconnecting_client(port: int, stop_at: float, record: dict) -> None:
    """Sends a large request and hangs up after 0.3 s, until ``stop_at``."""
    rng = random.Random(99)
    while time.monotonic() < stop_at:
        body = json.dumps(make_body(rng, 200, [])).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.close()
        record["statuses"]["hung up"] = record["statuses"].get("hung up", 0) + 1


async def stalling_client(port: int, stop_at: float, record: dict, held: int = 200) -> None:
    """Keeps ``held`` connections with half a request head open, replacing closed ones."""
    open_ = []
    while time.monotonic() < stop_at:
        while len(open_) < held:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                record["statuses"]["connect failed"] = record["statuses"].get(
                    "connect failed", 0) + 1
                break
            writer.write(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\n")
            open_.append((reader, writer))
        await asyncio.sleep(0.5)
        still = []
        for reader, writer in open_:
            if reader.at_eof() or writer.is_closing():
                record["statuses"]["closed by server"] = record["statuses"].get(
                    "closed by server", 0) + 1
                writer.close()
            else:
                try:
                    data = await asyncio.wait_for(reader.read(64), 0.001)
                except asyncio.TimeoutError:
                    still.append((reader, writer))
                    continue
                status = data.split(b" ")[1].decode() if data.startswith(b"HTTP/") else "closed"
                record["statuses"][status] = record["statuses"].get(status, 0) + 1
                writer.close()
        open_ = still
    for _, writer in open_:
        writer.close()


async def oversized_client(http: httpx.AsyncClient, url: str, stop_at: float,
                           record: dict) -> None:
    body = {"query": "q", "documents": [{"image": bomb_base64()}]}
    while time.monotonic() < stop_at:
        try:
            status = str((await http.post(url, json=body)).status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        record["statuses"][status] = record["statuses"].get(status, 0) + 1


async def run_faults(url: str, port: int, args: argparse.Namespace) -> dict:
    """Well-behaved clients measured while the three hostile kinds run alongside."""
    good: dict[str, list] = {"latencies": [], "errors": []}
    hostile = {kind: {"statuses": {}} for kind in ("disconnect", "stall", "oversized")}
    limits = httpx.Limits(max_connections=args.clients + 2)
    start = time.monotonic()
    measure_from, stop_at = start + args.warmup, start + args.warmup + args.duration
    health: list[float] = []

    async def probe_health(http: httpx.AsyncClient) -> None:
        while time.monotonic() < stop_at:
            began = time.monotonic()
            try:
                ok = (await http.get(f"{url}/health", timeout=5)).status_code == 200
            except httpx.HTTPError:
                ok = False
            health.append(time.monotonic() - began if ok else float("inf"))
            await asyncio.sleep(0.5)

    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        await asyncio.gather(
            *[client_loop(http, f"{url}/v1/rerank", stop_at, measure_from, seed, args.docs, [],
                          good) for seed in range(args.clients)],
            disconnecting_client(port, stop_at, hostile["disconnect"]),
            stalling_client(port, stop_at, hostile["stall"]),
            oversized_client(http, f"{url}/v1/rerank", stop_at, hostile["oversized"]),
            probe_health(http))
    summary = summarise(good, time.monotonic() - measure_from, args.docs)
    finite = sorted(h for h in health if h != float("inf"))
    return {"well_behaved": summary, "hostile": hostile,
            "health_probes": {"answered": len(finite), "failed": len(health) - len(finite),
                              "max_ms": round(finite[-1] * 1000, 1) if finite else None}}


def png_base64(color: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (224, 224), color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def make_body(rng: random.Random, docs: int, images: list[str]) -> dict:
    """One request: a random query and documents (the last ones images, if any)."""
    def text(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    documents: list[object] = [text(rng.randint(20, 60)) for _ in range(docs - len(images))]
    documents += [{"image": image} for image in images]
    return {"model": "m0", "query": text(6), "documents": documents, "return_documents": False}


async def client_loop(http: httpx.AsyncClient, url: str, stop_at: float, measure_from: float,
                      seed: int, docs: int, images: list[str], record: dict) -> None:
    rng = random.Random(seed)
    while (now := time.monotonic()) < stop_at:
        body = make_body(rng, docs, images)
        try:
            response = await http.post(url, json=body)
            ok, detail = response.status_code == 200, response.text[:200]
        except httpx.HTTPError as exc:
            ok, detail = False, repr(exc)
        if now < measure_from:
            continue
        record["latencies"].append(time.monotonic() - now)
        if not ok:
            record["errors"].append(detail)


async def run_scenario(url: str, args: argparse.Namespace, images: list[str]) -> dict:
    """N clients for warm-up + duration; statistics over the measured part."""
    record: dict[str, list] = {"latencies": [], "errors": []}
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    start = time.monotonic()
    measure_from, stop_at = start + args.warmup, start + args.warmup + args.duration
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        await asyncio.gather(*[
            client_loop(http, f"{url}/v1/rerank", stop_at, measure_from, seed, args.docs, images,
                        record) for seed in range(args.clients)])
    elapsed = time.monotonic() - measure_from
    return summarise(record, elapsed, args.docs)


def summarise(record: dict, elapsed: float, docs: int) -> dict:
    latencies = sorted(record["latencies"])
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "documents_per_s": round(len(latencies) * docs / elapsed, 1),
        "latency_ms": {"p50": round(cuts[49] * 1000, 1), "p95": round(cuts[94] * 1000, 1),
                       "p99": round(cuts[98] * 1000, 1),
                       "mean": round(statistics.fmean(latencies) * 1000, 1),
                       "max": round(latencies[-1] * 1000, 1)},
        "errors": len(record["errors"]),
        "error_samples": record["errors"][:3],
    }


def cache_counters(url: str) -> dict[str, float]:
    """The server's image-cache counters from ``/metrics`` (``cache="image"`` samples)."""
    counters = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("m0rank_cache_") and 'cache="image"' in line:
            name = line.split("{")[0].removeprefix("m0rank_cache_").removesuffix("_total")
            counters[name] = float(line.rsplit(" ", 1)[1])
    return counters


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    return {"machine": f"{os.cpu_count()}-core {cpu} CPU, no GPU (server runs --device cpu)",
            "cpu": cpu, "cpus": os.cpu_count(),
            "python": platform.python_version(), "load_average_at_start": os.getloadavg()}


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as log:
        model = args.model
        if model is None:
            from m0rank.testing.checkpoints import write_m0_checkpoint

            model = write_m0_checkpoint(Path(tmp) / "tiny-m0", seed=0)
        report: dict = {"benchmark": "serve_load", **machine(),
                        "model": "tiny random jina-reranker-m0 checkpoint (m0rank.testing)"
                        if args.model is None else str(args.model),
                        "clients": args.clients, "duration_s": args.duration,
                        "warmup_s": args.warmup, "documents_per_request": args.docs,
                        "scenarios": {}}
        port = free_port()
        started = time.monotonic()
        process = start_server(model, port, log)
        report["server_start_to_ready_s"] = round(time.monotonic() - started, 1)
        report["server_rss_start_mib"] = round(peak_rss_mib(process.pid, "VmRSS"), 1)
        try:
            images = {"text": [], "images": [png_base64((200, 30, 30)), png_base64((30, 30, 200))]}
            for name in args.scenarios.split(","):
                url = f"http://127.0.0.1:{port}"
                if name == "faults":
                    report["scenarios"][name] = asyncio.run(run_faults(url, port, args))
                    report["scenarios"][name]["errors"] = \
                        report["scenarios"][name]["well_behaved"]["errors"]
                    print(name, json.dumps(report["scenarios"][name]), flush=True)
                    continue
                report["scenarios"][name] = asyncio.run(run_scenario(url, args, images[name]))
                report["scenarios"][name]["image_cache_after"] = cache_counters(url)
                print(name, json.dumps(report["scenarios"][name]), flush=True)
            report["server_peak_rss_mib"] = round(peak_rss_mib(process.pid), 1)
            report["server_rss_end_mib"] = round(peak_rss_mib(process.pid, "VmRSS"), 1)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
    report["errors_total"] = sum(s["errors"] for s in report["scenarios"].values())
    if args.out is None:
        name = "serve_load_faults_cpu.json" if args.scenarios == "faults" else \
            "serve_load_cpu.json"
        args.out = RESULTS / name
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if report["errors_total"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

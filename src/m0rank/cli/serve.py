"""``m0rank serve``: the Jina/Cohere-compatible HTTP server on one loaded model.

Settings come from flags, then ``M0RANK_*`` environment variables, then defaults (see
``m0rank.server.settings``). The model loads before the port opens, so a bad ``--model`` fails
with a clear message and exit status instead of a server that never becomes ready.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING

from m0rank.cli.common import MODEL_OPTIONS, add_model_arguments
from m0rank.config import EngineConfig, ImageLimits

if TYPE_CHECKING:
    from m0rank.server.settings import ServerSettings

__all__ = ["add_arguments", "run", "settings_from_args"]

# flag dest -> ImageLimits field (dests are prefixed: --max-pixels is the model's resize budget).
_IMAGE_LIMIT_FLAGS = {
    "image_fetch_timeout": "fetch_timeout", "image_max_redirects": "max_redirects",
    "image_max_bytes": "max_bytes", "image_max_pixels": "max_pixels",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``m0rank serve`` (``None`` defaults: the environment or the default wins)."""
    add_model_arguments(parser)
    parser.set_defaults(**dict.fromkeys(MODEL_OPTIONS))  # ServerSettings holds the defaults
    net = parser.add_argument_group("network")
    net.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    net.add_argument("--port", type=int, help="TCP port (default 8080)")
    net.add_argument("--served-model-name", help="model name reported to clients")
    auth = parser.add_argument_group("authentication and limits")
    auth.add_argument("--api-key", dest="api_keys", action="append", metavar="KEY",
                      help="accepted Bearer key (repeatable; also M0RANK_API_KEYS)")
    auth.add_argument("--api-keys-file", type=Path, metavar="FILE",
                      help="file with one accepted key per line")
    auth.add_argument("--rpm-limit", type=int, help="requests per minute per key (500; 0: off)")
    auth.add_argument("--tpm-limit", type=int,
                      help="tokens per minute per key (1000000; 0: off)")
    auth.add_argument("--max-body-bytes", type=int, help="largest request body (64 MiB)")
    auth.add_argument("--max-documents", type=int, help="most documents per request (1000)")
    auth.add_argument("--max-query-chars", type=int, help="longest text query (16384)")
    net.add_argument("--header-timeout", dest="header_timeout_s", type=float,
                     help="seconds for a complete request head, then 408 (10)")
    net.add_argument("--body-timeout", dest="body_idle_timeout_s", type=float,
                     help="longest pause inside a request body before closing (30)")
    net.add_argument("--max-connections", type=int,
                     help="open connections above which new ones get 503 (1000)")
    net.add_argument("--drain-timeout", dest="drain_timeout_s", type=float,
                     help="on SIGTERM, seconds in-flight requests get before a 503 (30)")
    replicas = parser.add_argument_group("replicas (docs/scale.md)")
    replicas.add_argument("--replicas", type=int, metavar="N",
                          help="model replicas (processes) on --device behind this one server "
                               "(1: the model runs in the server process)")
    replicas.add_argument("--devices", metavar="LIST",
                          help="one replica per device, comma-separated (cuda:0,cuda:1)")
    queue = parser.add_argument_group("batching")
    queue.add_argument("--request-timeout", dest="request_timeout_s", type=float,
                       help="seconds one request may take (120)")
    queue.add_argument("--queue-size", dest="max_queue_pairs", type=int,
                       help="pairs waiting for the model before 429 (4096)")
    queue.add_argument("--max-batch-wait-ms", type=float,
                       help="how long a pair waits for others to share its batch (5)")
    queue.add_argument("--max-batch-tokens", type=int,
                       help=f"padded-token budget of one forward pass "
                            f"({EngineConfig.max_batch_tokens})")
    queue.add_argument("--max-batch-size", type=int,
                       help=f"most pairs per forward ({EngineConfig.max_batch_size})")
    images = parser.add_argument_group("images")
    images.add_argument("--allow-host", dest="image_allow_hosts", action="append",
                        metavar="HOST_OR_CIDR",
                        help="let image URLs reach this private host or network (repeatable)")
    images.add_argument("--media-dir", type=Path, help="folder whose files requests may name")
    images.add_argument("--image-cache-bytes", type=int, help="image cache budget (256 MiB)")
    images.add_argument("--image-cache-dir", type=Path, help="on-disk image cache folder")
    images.add_argument("--image-fetch-timeout", type=float,
                        help="seconds to connect to / read from an image URL (10)")
    images.add_argument("--image-max-redirects", type=int,
                        help="redirects followed per image URL (3)")
    images.add_argument("--image-max-bytes", type=int,
                        help="largest encoded image accepted (20 MiB)")
    images.add_argument("--image-max-pixels", type=int,
                        help="largest decoded image, width x height (64,000,000)")


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """``ServerSettings`` from the environment with the given flags on top."""
    from m0rank.server.settings import ServerSettings, read_keys_file

    keys = tuple(args.api_keys or ())
    if args.api_keys_file is not None:
        keys += read_keys_file(args.api_keys_file)
    base = ServerSettings.from_env()
    names = ("host", "port", "model", "served_model_name", "rpm_limit", "tpm_limit",
             "max_body_bytes", "max_documents", "max_query_chars", "request_timeout_s",
             "max_queue_pairs", "max_batch_wait_ms", "media_dir", "image_cache_bytes",
             "image_cache_dir", "max_batch_tokens", "max_batch_size", "header_timeout_s",
             "body_idle_timeout_s", "max_connections", "drain_timeout_s", "replicas",
             *MODEL_OPTIONS)
    overrides = {name: getattr(args, name) for name in names}
    overrides["api_keys"] = (*base.api_keys, *keys) if keys else None
    overrides["devices"] = args.devices
    hosts = args.image_allow_hosts
    overrides["image_allow_hosts"] = tuple(hosts) if hosts else None
    overrides["image_limits"] = _image_limits(base.image_limits, args)
    return base.with_overrides(**overrides)


def _image_limits(base: ImageLimits, args: argparse.Namespace) -> ImageLimits | None:
    """``base`` with the image-limit flags that were given; ``None`` when none was."""
    given = {field: getattr(args, dest) for dest, field in _IMAGE_LIMIT_FLAGS.items()
             if getattr(args, dest) is not None}
    return dataclasses.replace(base, **given) if given else None


def run(args: argparse.Namespace) -> int:
    """Load the model, build the app, serve until SIGINT/SIGTERM (then drain)."""
    import uvicorn

    from m0rank.api import Reranker
    from m0rank.server.app import create_app
    from m0rank.server.connections import (
        ConnectionLimits,
        guarded_protocol,
        raise_open_file_limit,
    )
    from m0rank.server.lifecycle import draining_server
    from m0rank.server.replicas import ReplicaPool, check_devices

    settings = settings_from_args(args)
    check_devices(settings.devices)
    reranker = Reranker.from_pretrained(settings.model, **settings.load_kwargs())
    app = create_app(settings, reranker)
    runner = app.state.m0rank.service.batcher.runner
    if isinstance(runner, ReplicaPool):
        runner.start()  # every replica loads its model before the port opens
    limits = ConnectionLimits(header_timeout_s=settings.header_timeout_s,
                              body_idle_timeout_s=settings.body_idle_timeout_s,
                              max_connections=raise_open_file_limit(settings.max_connections))
    # uvicorn cancels what is left only after our own drain deadline has answered it with 503
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None,
                            http=guarded_protocol(limits),
                            timeout_graceful_shutdown=math.ceil(settings.drain_timeout_s) + 5)
    draining_server(config, app.state.m0rank.lifecycle).run()
    return 0

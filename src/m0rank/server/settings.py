"""Operator settings of the HTTP server: one frozen object built from defaults, env, then flags.

Precedence is ``CLI flag > M0RANK_* environment variable > default``:
:meth:`ServerSettings.from_env` reads the environment once (never at import time) and
``m0rank serve`` applies its flags on top with :meth:`ServerSettings.with_overrides`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from m0rank.config import ImageLimits
from m0rank.errors import InvalidInputError

if TYPE_CHECKING:
    from m0rank.server.images import ImageFetchSettings

__all__ = ["ServerSettings", "read_keys_file", "ENV_PREFIX"]

ENV_PREFIX = "M0RANK_"
_MIB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """Everything an operator can tune; every field has a ``M0RANK_<FIELD>`` variable.

    Args:
        host: Interface to bind (loopback by default: exposing the port is a decision).
        port: TCP port.
        model: Checkpoint folder, hub id or built-in name (``None``: the built-in default).
        served_model_name: Name reported in responses and ``/v1/models`` (default: the model's).
        api_keys: Accepted Bearer keys; empty turns authentication off.
        rpm_limit: Requests per minute per API key (Jina's default 500; 0 disables).
        tpm_limit: Tokens per minute per API key (Jina's default 1,000,000; 0 disables).
        max_body_bytes: Largest request body (base64 images included) before a 413.
        max_documents: Most documents in one request (Cohere recommends <= 1000).
        max_query_chars: Longest text query in characters.
        request_timeout_s: Wall time one request may take, queueing included.
        max_queue_pairs: Pairs waiting for the model before new requests get 429.
        max_batch_wait_ms: How long the first waiting pair waits for others to share its batch.
        drain_timeout_s: On shutdown, how long in-flight requests may take to finish.
        image_allow_hosts: Hostnames or CIDRs allowed despite the SSRF guard.
        media_dir: Local folder whose files HTTP requests may name; ``None`` refuses paths.
        image_cache_bytes: Budget of the content-addressed image cache.
        image_cache_dir: Optional on-disk folder for that cache.
        image_limits: Byte, pixel and fetch limits for every image.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    model: str | None = None
    served_model_name: str | None = None
    api_keys: tuple[str, ...] = ()
    rpm_limit: int = 500
    tpm_limit: int = 1_000_000
    max_body_bytes: int = 64 * _MIB
    max_documents: int = 1000
    max_query_chars: int = 16_384
    request_timeout_s: float = 120.0
    max_queue_pairs: int = 4096
    max_batch_wait_ms: float = 5.0
    drain_timeout_s: float = 30.0
    image_allow_hosts: tuple[str, ...] = ()
    media_dir: Path | None = None
    image_cache_bytes: int = 256 * _MIB
    image_cache_dir: Path | None = None
    image_limits: ImageLimits = field(default_factory=ImageLimits)

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise InvalidInputError(f"port must be in 1..65535, got {self.port!r}")
        for name in ("max_body_bytes", "max_documents", "max_query_chars", "request_timeout_s",
                     "max_queue_pairs", "drain_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise InvalidInputError(f"{name} must be a positive number, got {value!r}")
        for name in ("rpm_limit", "tpm_limit", "max_batch_wait_ms", "image_cache_bytes"):
            if getattr(self, name) < 0:
                raise InvalidInputError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if any(not key.strip() for key in self.api_keys):
            raise InvalidInputError("api_keys must not contain empty keys")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        """Defaults overridden by ``M0RANK_*`` variables (``M0RANK_API_KEYS`` is comma-separated;
        ``M0RANK_API_KEYS_FILE`` adds the keys of a file)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for item in fields(cls):
            raw = env.get(ENV_PREFIX + item.name.upper())
            if raw is not None and item.name in _PARSERS:
                values[item.name] = _parse(item.name, raw, _PARSERS[item.name])
        keys_file = env.get(ENV_PREFIX + "API_KEYS_FILE")
        if keys_file:
            values["api_keys"] = (*values.get("api_keys", ()), *read_keys_file(Path(keys_file)))
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> ServerSettings:
        """A copy with the non-``None`` overrides applied (how CLI flags win over the env)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def image_fetch_settings(self) -> ImageFetchSettings:
        """The image fetcher's settings taken from these."""
        from m0rank.server.images import ImageFetchSettings

        return ImageFetchSettings(
            allow_hosts=self.image_allow_hosts, media_dir=self.media_dir,
            cache_bytes=self.image_cache_bytes, cache_dir=self.image_cache_dir,
            limits=self.image_limits,
        )


def read_keys_file(path: Path) -> tuple[str, ...]:
    """API keys from a file: one per line; blank lines and ``#`` comments are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read API keys file {str(path)!r}: {exc.strerror}") from None
    return tuple(line.strip() for line in lines
                 if line.strip() and not line.lstrip().startswith("#"))


def _split(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _parse(name: str, raw: str, parser: Callable[[str], Any]) -> Any:
    try:
        return parser(raw)
    except ValueError:
        raise InvalidInputError(
            f"environment variable {ENV_PREFIX}{name.upper()} has an invalid value {raw!r}"
        ) from None


_PARSERS: dict[str, Callable[[str], Any]] = {
    "host": str, "port": int, "model": str, "served_model_name": str, "api_keys": _split,
    "rpm_limit": int, "tpm_limit": int, "max_body_bytes": int, "max_documents": int,
    "max_query_chars": int, "request_timeout_s": float, "max_queue_pairs": int,
    "max_batch_wait_ms": float, "drain_timeout_s": float, "image_allow_hosts": _split,
    "media_dir": Path, "image_cache_bytes": int, "image_cache_dir": Path,
}

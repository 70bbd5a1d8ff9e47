"""Operator settings of the HTTP server: one frozen ``pydantic-settings`` object.

Precedence is ``CLI flag > M0RANK_* environment variable > default``:
:meth:`ServerSettings.from_env` reads the environment once (never at import time, never in the
constructor, so ``ServerSettings(...)`` in code and tests means exactly what it says) and
``m0rank serve`` applies its flags on top with :meth:`ServerSettings.with_overrides`.

Every field has a ``M0RANK_<FIELD>`` variable. Lists (``M0RANK_API_KEYS``,
``M0RANK_IMAGE_ALLOW_HOSTS``) are comma-separated; the image limits are nested fields
(``M0RANK_IMAGE_LIMITS__MAX_BYTES=1000000`` or ``M0RANK_IMAGE_LIMITS='{"max_bytes": 1000000}'``).
Bad values raise :class:`InvalidInputError` naming the field (or the variable) and the value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from m0rank.config import EngineConfig, ImageLimits, ImageSizing, PdfLimits
from m0rank.errors import InvalidInputError

if TYPE_CHECKING:
    from m0rank.server.images import ImageFetchSettings

__all__ = ["ServerSettings", "read_keys_file", "ENV_PREFIX", "ENV_NESTED_DELIMITER"]

ENV_PREFIX = "M0RANK_"
ENV_NESTED_DELIMITER = "__"
_MIB = 1024 * 1024
_POSITIVE = ("image_decode_bytes", "max_body_bytes", "max_documents", "max_query_chars",
             "request_timeout_s", "max_queue_pairs", "drain_timeout_s", "header_timeout_s",
             "body_idle_timeout_s", "max_connections", "replicas")
_NON_NEGATIVE = ("rpm_limit", "tpm_limit", "max_batch_wait_ms", "image_cache_bytes")
_CommaList = Annotated[tuple[str, ...], NoDecode]
_DEVICE = re.compile(r"cpu|cuda(:\d+)?|mps")


class ServerSettings(BaseSettings):
    """Everything an operator can tune; every field has a ``M0RANK_<FIELD>`` variable.

    Args:
        host: Interface to bind (loopback by default: exposing the port is a decision).
        port: TCP port.
        model: Checkpoint folder, hub id or built-in name (``None``: the built-in default).
        served_model_name: Name reported in responses and ``/v1/models`` (default: the model's).
        device: ``cpu``, ``cuda``, ``cuda:1``... (``None``: CUDA when available).
        replicas: Model replicas (child processes) on ``device``; 1 runs the model in the
            server process (docs/scale.md).
        devices: One replica per listed device (``cuda:0,cuda:1``); overrides ``replicas``.
        dtype: ``bf16``, ``fp16`` or ``fp32`` (``None``: bf16 on CUDA, fp32 on CPU).
        min_pixels: Smallest image area after resizing (the reference's 3136).
        max_pixels: Largest image area after resizing (the reference's 602112).
        vision_cache_bytes: Budget of the vision-feature cache (``None``: per device; 0: off).
        local_files_only: Never contact the Hugging Face hub when loading the model.
        max_batch_tokens: Padded-token budget of one forward pass.
        max_batch_size: Most pairs in one forward pass.
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
        header_timeout_s: Longest wait for a complete request head (then 408 and close).
        body_idle_timeout_s: Longest pause inside a request body (then the connection closes).
        max_connections: Open connections above which new ones get 503 (also bounded by the
            open-file limit).
        image_allow_hosts: Hostnames or CIDRs allowed despite the SSRF guard.
        media_dir: Local folder whose files HTTP requests may name; ``None`` refuses paths.
        image_cache_bytes: Budget of the content-addressed image cache.
        image_cache_dir: Optional on-disk folder for that cache.
        image_decode_bytes: Decoded bytes that all requests together may be decoding at once
            (bounds memory when many large images arrive together).
        image_limits: Byte, pixel and fetch limits for every image.
        pdf_limits: Byte and page limits for ``{"pdf": ...}`` documents, and the render size
            (``M0RANK_PDF_LIMITS__MAX_PAGES=20`` and the like).

    Raises:
        InvalidInputError: A value of the wrong type or out of range (the message names it).
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED_DELIMITER, frozen=True,
        extra="forbid")

    host: str = "127.0.0.1"
    port: int = 8080
    model: str | None = None
    served_model_name: str | None = None
    device: str | None = None
    replicas: int = 1
    devices: _CommaList = ()
    dtype: str | None = None
    min_pixels: int = ImageSizing.min_pixels
    max_pixels: int = ImageSizing.max_pixels
    vision_cache_bytes: int | None = None
    local_files_only: bool = False
    max_batch_tokens: int = EngineConfig.max_batch_tokens
    max_batch_size: int = EngineConfig.max_batch_size
    api_keys: _CommaList = ()
    rpm_limit: int = 500
    tpm_limit: int = 1_000_000
    max_body_bytes: int = 64 * _MIB
    max_documents: int = 1000
    max_query_chars: int = 16_384
    request_timeout_s: float = 120.0
    max_queue_pairs: int = 4096
    max_batch_wait_ms: float = 5.0
    drain_timeout_s: float = 30.0
    header_timeout_s: float = 10.0
    body_idle_timeout_s: float = 30.0
    max_connections: int = 1000
    image_allow_hosts: _CommaList = ()
    media_dir: Path | None = None
    image_cache_bytes: int = 256 * _MIB
    image_cache_dir: Path | None = None
    image_decode_bytes: int = 512 * _MIB
    pdf_limits: PdfLimits = PdfLimits()
    image_limits: ImageLimits = ImageLimits()

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _describe(exc) from None

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the constructor's arguments: the environment is read by :meth:`from_env`."""
        return (init_settings,)

    @field_validator("api_keys", "image_allow_hosts", "devices", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        return _split(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_ranges(self) -> ServerSettings:
        if not 0 < self.port < 65536:
            raise InvalidInputError(f"port must be in 1..65535, got {self.port!r}")
        for name in _POSITIVE:
            if getattr(self, name) <= 0:
                raise InvalidInputError(
                    f"{name} must be a positive number, got {getattr(self, name)!r}")
        for name in _NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise InvalidInputError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        self._check_devices()
        if any(not key.strip() for key in self.api_keys):
            raise InvalidInputError("api_keys must not contain empty keys")
        self.engine_config()  # the engine's and the resizer's own checks, same messages
        self.image_sizing()
        return self

    def _check_devices(self) -> None:
        for device in self.devices:
            if not _DEVICE.fullmatch(device):
                raise InvalidInputError(
                    f"devices: {device!r} is not a device (use cpu, cuda or cuda:N)")
        if self.devices and self.replicas not in (1, len(self.devices)):
            raise InvalidInputError(
                f"replicas ({self.replicas}) and devices ({','.join(self.devices)}) disagree; "
                f"devices alone sets one replica per device")
        if self.devices and self.device is not None:
            raise InvalidInputError(
                f"device ({self.device!r}) and devices ({','.join(self.devices)}) are both "
                f"set; give one")

    @property
    def replica_count(self) -> int:
        """Model replicas: one per ``devices`` entry, else ``replicas``."""
        return len(self.devices) or self.replicas

    def _front_device(self) -> str | None:
        if self.replica_count > 1:
            return "cpu"
        return self.devices[0] if self.devices else self.device

    def replica_devices(self) -> tuple[str | None, ...]:
        """The device of each replica (``None``: CUDA when available, as for ``device``)."""
        return self.devices or (self.device,) * self.replicas

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        """Defaults overridden by ``M0RANK_*`` variables (``M0RANK_API_KEYS`` is comma-separated;
        ``M0RANK_API_KEYS_FILE`` adds the keys of a file).

        Args:
            environ: The variables to read; default ``os.environ``.
        """
        env = os.environ if environ is None else environ
        try:
            values = _MappingEnvSource(cls, env)()
        except SettingsError as exc:  # a nested value that is not JSON
            raise _env_error(exc.__cause__) if isinstance(exc.__cause__, _InvalidValue) \
                else InvalidInputError(str(exc)) from None
        keys_file = env.get(ENV_PREFIX + "API_KEYS_FILE")
        if keys_file:
            values["api_keys"] = (*_split_any(values.get("api_keys", ())),
                                  *read_keys_file(Path(keys_file)))
        try:
            return cls(**values)
        except _InvalidValue as exc:
            raise _env_error(exc) from None

    def with_overrides(self, **overrides: Any) -> ServerSettings:
        """A copy with the non-``None`` overrides applied (how CLI flags win over the env);
        the copy is validated again."""
        current = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**{**current, **{k: v for k, v in overrides.items() if v is not None}})

    def engine_config(self) -> EngineConfig:
        """The engine's micro-batch limits taken from these."""
        return EngineConfig(max_batch_tokens=self.max_batch_tokens,
                            max_batch_size=self.max_batch_size)

    def image_sizing(self) -> ImageSizing:
        """The vision encoder's pixel budget taken from these."""
        return ImageSizing(min_pixels=self.min_pixels, max_pixels=self.max_pixels)

    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``Reranker.from_pretrained`` for :attr:`model` in the server
        process (with replicas: on the CPU, without a vision cache; it only prepares pairs)."""
        replicated = self.replica_count > 1
        return {"device": self._front_device(), "dtype": self.dtype, "min_pixels": self.min_pixels,
                "max_pixels": self.max_pixels,
                "vision_cache_bytes": 0 if replicated else self.vision_cache_bytes,
                "local_files_only": self.local_files_only,
                "max_batch_tokens": self.max_batch_tokens, "max_batch_size": self.max_batch_size,
                "image_limits": self.image_limits}

    def image_fetch_settings(self) -> ImageFetchSettings:
        """The image fetcher's settings taken from these."""
        from m0rank.server.images import ImageFetchSettings

        return ImageFetchSettings(
            allow_hosts=self.image_allow_hosts, media_dir=self.media_dir,
            cache_bytes=self.image_cache_bytes, cache_dir=self.image_cache_dir,
            limits=self.image_limits, draft_pixels=self.max_pixels,
            decode_bytes=self.image_decode_bytes,
        )


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment parsing over a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {key.lower(): value for key, value in self._environ.items()}

    def prepare_field_value(self, field_name: str, field: FieldInfo, value: Any,
                            value_is_complex: bool) -> Any:
        """pydantic-settings' decoding, failing with the field and the raw value."""
        try:
            return super().prepare_field_value(field_name, field, value, value_is_complex)
        except ValueError as exc:
            raise _InvalidValue((field_name,), value, str(exc)) from None


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


def _split_any(value: Any) -> tuple[str, ...]:
    return _split(value) if isinstance(value, str) else tuple(value)


class _InvalidValue(InvalidInputError):
    """A value of the wrong type; ``from_env`` turns it into a message naming the variable."""

    def __init__(self, path: tuple[str, ...], value: Any, reason: str) -> None:
        super().__init__(f"{'.'.join(path)} has an invalid value {value!r}: {reason}")
        self.path, self.value = path, value


def _env_error(exc: _InvalidValue) -> InvalidInputError:
    variable = ENV_PREFIX + ENV_NESTED_DELIMITER.join(exc.path).upper()
    return InvalidInputError(f"environment variable {variable} has an invalid value {exc.value!r}")


def _describe(exc: ValidationError) -> InvalidInputError:
    """The error for the first problem: our own range message, or the field and its value."""
    error = exc.errors()[0]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, InvalidInputError):
        return cause
    path = tuple(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return InvalidInputError(f"unknown setting {path[-1]!r}")
    return _InvalidValue(path, error["input"], error["msg"])

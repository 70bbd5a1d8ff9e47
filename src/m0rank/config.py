"""Frozen configuration objects. Defaults follow the reference (``m0-reference.md``).

Each object validates itself in ``__post_init__`` and raises :class:`InvalidInputError`
naming the field and the value. Nothing here reads the environment at import time.
"""

from __future__ import annotations

from dataclasses import dataclass

from m0rank.errors import InvalidInputError

__all__ = [
    "ImageLimits",
    "ImageSizing",
    "PdfLimits",
    "ScoreOptions",
    "EngineConfig",
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_MAX_QUERY_LENGTH",
]

DEFAULT_MAX_LENGTH = 10240
DEFAULT_MAX_QUERY_LENGTH = 512


def _require_positive(name: str, value: float | int | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InvalidInputError(f"{name} must be a positive number, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class ImageLimits:
    """Limits applied while reading an image, before any model sees it.

    Args:
        min_side: Smallest allowed width or height in pixels (Qwen2-VL's ``smart_resize``
            rejects sides under 10).
        max_aspect_ratio: Largest allowed long side / short side (Qwen2-VL: 200).
        max_bytes: Largest encoded image accepted (file, download or base64 payload).
        max_pixels: Largest decoded image (width x height) accepted, checked from the header
            before decoding so a decompression bomb is never expanded.
        fetch_timeout: Seconds for connecting to and reading from an image URL.
        max_redirects: Redirects followed when fetching an image URL.
    """

    min_side: int = 10
    max_aspect_ratio: float = 200.0
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 16_777_216  # 4096 x 4096: 4K (3840 x 2160) passes, 62 MP bombs do not
    fetch_timeout: float = 10.0
    max_redirects: int = 3

    def __post_init__(self) -> None:
        for name in ("min_side", "max_aspect_ratio", "max_bytes", "max_pixels", "fetch_timeout"):
            _require_positive(f"ImageLimits.{name}", getattr(self, name))


@dataclass(frozen=True, kw_only=True)
class PdfLimits:
    """Limits applied while reading a PDF document (over them: ``InputTooLargeError``, 413).

    Args:
        max_bytes: Largest PDF file accepted (file, download or base64 payload).
        max_pages: Most pages read from one PDF (after the ``pages`` selection).
        render_pixels: Page area in pixels when rendering: the reference's ``max_pixels``,
            so pages are rendered at the resolution the model resizes to anyway.
    """

    max_bytes: int = 50 * 1024 * 1024
    max_pages: int = 100
    render_pixels: int = 602112

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pages", "render_pixels"):
            _require_positive(f"PdfLimits.{name}", getattr(self, name))


@dataclass(frozen=True, kw_only=True)
class ImageSizing:
    """Pixel budget for the vision encoder (the reference passes these explicitly).

    ``min_pixels=3136`` (56 x 56) and ``max_pixels=602112`` (768 x 28 x 28) give between 4
    and 768 image tokens per image. They override whatever ``preprocessor_config.json`` says,
    exactly as the reference's ``AutoProcessor.from_pretrained(..., max_pixels=602112,
    min_pixels=3136)`` does.
    """

    min_pixels: int = 3136
    max_pixels: int = 602112

    def __post_init__(self) -> None:
        _require_positive("min_pixels", self.min_pixels)
        _require_positive("max_pixels", self.max_pixels)
        if self.min_pixels > self.max_pixels:
            raise InvalidInputError(
                f"min_pixels ({self.min_pixels}) must not exceed max_pixels ({self.max_pixels})"
            )


@dataclass(frozen=True, kw_only=True)
class ScoreOptions:
    """Per-call truncation settings, with the reference's defaults and derivations.

    Args:
        max_length: Longest prompt in tokens, the appended score token included.
        max_query_length: Only used to derive the default ``max_doc_length`` (the reference
            never truncates the query on its own).
        max_doc_length: Longest text document in tokens; default
            ``max(max_length - max_query_length, max_query_length)``.
    """

    max_length: int = DEFAULT_MAX_LENGTH
    max_query_length: int = DEFAULT_MAX_QUERY_LENGTH
    max_doc_length: int | None = None

    def __post_init__(self) -> None:
        _require_positive("max_length", self.max_length)
        _require_positive("max_query_length", self.max_query_length)
        _require_positive("max_doc_length", self.max_doc_length, allow_none=True)
        if self.max_length < 2:
            raise InvalidInputError(f"max_length must be at least 2, got {self.max_length}")
        if self.effective_max_doc_length + self.max_query_length > self.max_length:
            raise InvalidInputError(
                f"max_doc_length ({self.effective_max_doc_length}) + max_query_length "
                f"({self.max_query_length}) must not exceed max_length ({self.max_length})"
            )

    @property
    def effective_max_doc_length(self) -> int:
        """``max_doc_length`` or the reference's default for it."""
        if self.max_doc_length is not None:
            return self.max_doc_length
        return max(self.max_length - self.max_query_length, self.max_query_length)

    @property
    def prompt_budget(self) -> int:
        """Tokens left for the prompt once the score token is appended (``max_length - 1``)."""
        return self.max_length - 1


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """How the engine groups prepared pairs into forward passes.

    Args:
        max_batch_tokens: Token budget of one micro-batch: ``rows x longest row`` for padded
            families, real tokens for families that pack pairs without padding.
        max_batch_size: Most pairs in one micro-batch.
        show_progress: Show a progress bar over micro-batches on long inputs.
    """

    max_batch_tokens: int = 16384
    max_batch_size: int = 32
    show_progress: bool = False

    def __post_init__(self) -> None:
        _require_positive("max_batch_tokens", self.max_batch_tokens)
        _require_positive("max_batch_size", self.max_batch_size)

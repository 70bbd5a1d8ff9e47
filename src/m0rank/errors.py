"""The one error hierarchy of m0rank.

Every failure a user can cause or meet raises a subclass of :class:`M0RankError`. The
library, the CLI and the HTTP server all use these classes; the server maps them to HTTP
statuses in a single table (``m0rank.server.errors``), so the same bad input gives the same
answer everywhere. Messages name the field, the index and the offending value.

This module imports nothing from the project (it is the bottom of the dependency graph).
"""

from __future__ import annotations

__all__ = [
    "M0RankError",
    "InvalidInputError",
    "ImageError",
    "ImageFetchError",
    "InputTooLargeError",
    "UnsupportedOperationError",
    "ModelNotFoundError",
    "ModelLoadError",
    "UnsupportedArchitectureError",
    "MissingDependencyError",
    "AuthenticationError",
    "RateLimitError",
    "OverloadedError",
    "ServiceUnavailableError",
    "RequestTimeoutError",
    "describe_value",
]


class M0RankError(Exception):
    """Base class of every error raised on purpose by m0rank."""


class InvalidInputError(M0RankError, ValueError):
    """A query, document or option is malformed (empty, wrong type, out of range)."""


class ImageError(InvalidInputError):
    """An image cannot be read, decoded, or has a size the model cannot take."""


class ImageFetchError(ImageError):
    """An image URL could not be fetched (unreachable, timeout, refused, wrong content)."""


class InputTooLargeError(InvalidInputError):
    """An input is over a configured size limit (bytes, pixels, documents, tokens)."""


class UnsupportedOperationError(InvalidInputError):
    """The loaded model family cannot do what was asked (save itself, train, explain...)."""


class ModelNotFoundError(M0RankError, FileNotFoundError):
    """No weights were found locally, in the Hugging Face cache, or on the hub."""


class ModelLoadError(M0RankError):
    """Weights were found but do not form a checkpoint this architecture can load."""


class UnsupportedArchitectureError(ModelLoadError):
    """``config.json`` names an architecture that no registered family implements."""


class MissingDependencyError(M0RankError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class AuthenticationError(M0RankError):
    """A request carries no API key, or an unknown one."""


class RateLimitError(M0RankError):
    """A caller went over its requests-per-minute or tokens-per-minute limit."""

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OverloadedError(RateLimitError):
    """The engine's queue is full; the caller should retry after ``retry_after`` seconds."""


class ServiceUnavailableError(M0RankError):
    """The service is starting up or shutting down and takes no new work."""


class RequestTimeoutError(M0RankError, TimeoutError):
    """A request did not finish within its time limit."""


def describe_value(value: object, limit: int = 60) -> str:
    """Short, safe ``repr`` of a user value for error messages (long values are cut)."""
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{text} ({type(value).__name__})"

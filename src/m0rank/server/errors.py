"""THE table from m0rank's error hierarchy to HTTP statuses, and the one error body shape.

Every error answer looks like::

    {"detail": "documents[2].image: ...",
     "error": {"type": "invalid_image", "message": "documents[2].image: ...",
               "code": 400, "request_id": "4f0c..."}}

``detail`` is what LangChain, LlamaIndex and Haystack read; ``error`` is the structured form
(vLLM's ``{"error": {"message", "type", "code"}}`` plus the request id). 4xx messages are our
own validation messages, written to be shown to callers. A 500 says only "internal server
error" and the request id: the exception text goes to the log (after TEI's status table;
unlike infinity's and vLLM's ``detail=str(exc)``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from m0rank.errors import (
    AuthenticationError,
    ImageError,
    ImageFetchError,
    InputTooLargeError,
    InvalidInputError,
    OverloadedError,
    RateLimitError,
    RequestTimeoutError,
    ServiceUnavailableError,
)

__all__ = ["ERROR_TABLE", "error_response", "status_for", "install_error_handlers",
           "request_id_of", "INTERNAL_ERROR_MESSAGE", "body_parse_error", "validation_message",
           "tei_error_response", "tei_exception_response"]

logger = logging.getLogger(__name__)

# error class -> (HTTP status, error type). Looked up along the exception's MRO, so a subclass
# not listed gets its nearest listed ancestor; anything not covered is a 500.
ERROR_TABLE: dict[type[Exception], tuple[int, str]] = {
    AuthenticationError: (401, "authentication_error"),
    InputTooLargeError: (413, "input_too_large"),
    ImageFetchError: (400, "image_fetch_error"),
    ImageError: (400, "invalid_image"),
    InvalidInputError: (400, "invalid_request"),
    OverloadedError: (429, "overloaded"),
    RateLimitError: (429, "rate_limit_exceeded"),
    # A request that ran out of time is the server's capacity problem, not the caller's input;
    # 503 tells clients (Cohere SDK, LlamaIndex) that retrying later may succeed.
    RequestTimeoutError: (503, "timeout"),
    ServiceUnavailableError: (503, "service_unavailable"),
}
INTERNAL_ERROR = (500, "internal_error")
INTERNAL_ERROR_MESSAGE = "internal server error"
_HTTP_TYPES = {404: "not_found", 405: "method_not_allowed"}
# TEI's ErrorType names (router/src/http/types.rs) for our error types, on TEI-shaped requests.
_TEI_TYPES = {"overloaded": "overloaded", "rate_limit_exceeded": "overloaded",
              "timeout": "unhealthy", "service_unavailable": "unhealthy",
              "internal_error": "unhealthy"}


def status_for(exc: BaseException) -> tuple[int, str]:
    """HTTP status and error type of an exception (500 for anything not in the table)."""
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return INTERNAL_ERROR


def request_id_of(request: Request) -> str:
    """The id given to this request by the request-context middleware."""
    return str(getattr(request.state, "request_id", "") or "")


def error_response(status: int, error_type: str, message: str, request_id: str,
                   headers: dict[str, str] | None = None,
                   extra: dict[str, Any] | None = None) -> JSONResponse:
    """The one error body shape (see the module docstring)."""
    error = {"type": error_type, "message": message, "code": status, "request_id": request_id,
             **(extra or {})}
    return JSONResponse({"detail": message, "error": error}, status_code=status,
                        headers={"X-Request-ID": request_id, **(headers or {})})


def exception_response(exc: BaseException, request_id: str) -> JSONResponse:
    """Answer for any exception: table status, safe message, Retry-After / WWW-Authenticate."""
    status, error_type = status_for(exc)
    if (status, error_type) == INTERNAL_ERROR:  # not in the table: hide the details
        logger.error("request %s failed", request_id, exc_info=exc)
        return error_response(status, error_type, f"{INTERNAL_ERROR_MESSAGE} (request id "
                              f"{request_id})", request_id)
    logger.info("request %s answered %d %s: %s", request_id, status, error_type, exc)
    return error_response(status, error_type, str(exc), request_id, headers=_headers_for(exc))


def tei_error_response(status: int, error_type: str, message: str, request_id: str,
                       headers: dict[str, str] | None = None) -> JSONResponse:
    """TEI's error body, ``{"error": message, "error_type": type}``, for TEI-shaped requests
    (TEI clients read ``error`` as a string)."""
    return JSONResponse({"error": message, "error_type": error_type}, status_code=status,
                        headers={"X-Request-ID": request_id, **(headers or {})})


def tei_exception_response(exc: BaseException, request_id: str) -> JSONResponse:
    """:func:`exception_response` in TEI's body shape: same status, same safe message."""
    ours = exception_response(exc, request_id)
    body = json.loads(bytes(ours.body))
    headers = {k: v for k, v in ours.headers.items() if k.lower() in _FORWARDED_HEADERS}
    error_type = _TEI_TYPES.get(body["error"]["type"], "validation")
    return tei_error_response(ours.status_code, error_type, body["detail"], request_id, headers)


_FORWARDED_HEADERS = {"retry-after", "www-authenticate"}


def body_parse_error(exc: BaseException) -> RequestValidationError:
    """The schema error for a body that is not JSON: bad syntax, bad UTF-8, or nesting deeper
    than the parser's recursion limit. Answered 422 like every other body that does not match
    the schema, with a message that says which of them."""
    if isinstance(exc, json.JSONDecodeError):
        return _json_error(("body", exc.pos), f"JSON decode error: {exc.msg}")
    if isinstance(exc, UnicodeDecodeError):
        return _json_error(("body", exc.start), f"not valid UTF-8: {exc.reason} (byte "
                                                f"0x{exc.object[exc.start]:02x})")
    if isinstance(exc, RecursionError):
        return _json_error(("body",), "JSON nested too deeply")
    return _json_error(("body",), f"not valid JSON ({type(exc).__name__})")


def _json_error(loc: tuple[Any, ...], message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "json_invalid", "loc": loc, "msg": message,
                                    "input": {}}])


def validation_message(errors: list[dict[str, Any]]) -> str:
    """One line naming the first three schema errors (``body.top_n: Input should be ...``)."""
    message = "invalid request: " + "; ".join(
        f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:3])
    if len(errors) > 3:
        message += f" (and {len(errors) - 3} more)"
    return message


def install_error_handlers(
    app: FastAPI, authenticate: Callable[[str | None], object] | None = None
) -> None:
    """Route library errors, schema errors and Starlette HTTP errors to the shared body shape.

    FastAPI parses (and rejects) a body before running route dependencies, so without
    ``authenticate`` a caller with no key would learn about its malformed JSON (422) before
    being told it is not allowed in (401). With it, a schema error on any request is answered
    only after the request's ``Authorization`` header passed.
    """
    for cls in ERROR_TABLE:
        app.add_exception_handler(cls, _on_library_error)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        if authenticate is not None:
            try:
                authenticate(request.headers.get("authorization"))
            except AuthenticationError as auth_error:
                return exception_response(auth_error, request_id_of(request))
        return await _on_validation_error(request, exc)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        cause = exc.__cause__
        if (isinstance(exc, HTTPException) and exc.status_code == 400
                and isinstance(cause, (UnicodeDecodeError, RecursionError))):
            # FastAPI's body parser reports these as a bare "error parsing the body"
            return await on_validation_error(request, body_parse_error(cause))
        return await _on_http_error(request, exc)

    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)


async def _on_library_error(request: Request, exc: Exception) -> JSONResponse:
    return exception_response(exc, request_id_of(request))


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    raw = exc.errors() if isinstance(exc, RequestValidationError) else []
    errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
               "type": str(e.get("type", ""))} for e in raw]
    message = validation_message(errors)
    request_id = request_id_of(request)
    logger.info("request %s answered 422: %s", request_id, message)
    return error_response(422, "validation_error", message, request_id, extra={"errors": errors})


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, HTTPException):
        return exception_response(exc, request_id_of(request))
    error_type = _HTTP_TYPES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, error_type, str(exc.detail), request_id_of(request),
                          headers=dict(exc.headers or {}))


def _headers_for(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, AuthenticationError):
        return {"WWW-Authenticate": "Bearer"}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        return {"Retry-After": str(max(1, math.ceil(retry_after)))}
    return {}

"""Exception handlers: every error leaves as ``{"error": {"code", "message"}}``.

Our exceptions (``core.errors``) map to statuses by class, most specific first, so a
``StorageUnavailable`` is a 503 like any ``DependencyUnavailable`` and an ``ObjectNotFound`` a
404 like any ``NotFound``.
"""

from __future__ import annotations

import logging
from typing import Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import (
    Conflict,
    DependencyUnavailable,
    Forbidden,
    InvalidInput,
    InvalidRange,
    NotFound,
    RateLimited,
    RoomcastError,
    Unauthorized,
)

log = logging.getLogger(__name__)

#: Status per error class; the first class in an exception's MRO found here wins.
STATUS_BY_ERROR: Final[dict[type[RoomcastError], int]] = {
    InvalidRange: 416,
    Unauthorized: 401,
    NotFound: 404,
    Forbidden: 403,
    Conflict: 409,
    InvalidInput: 422,
    RateLimited: 429,
    DependencyUnavailable: 503,
}
#: Seconds a client should wait before retrying a 503.
RETRY_AFTER_SECONDS: Final = 5


def status_for(error: RoomcastError) -> int:
    """The HTTP status for ``error``: 500 for errors that are our fault."""
    for cls in type(error).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return 500


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


async def _roomcast_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RoomcastError):  # registered for RoomcastError only
        raise exc
    status = status_for(exc)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    if status == 401:  # RFC 6750 §3: a 401 names the scheme to authenticate with
        headers = {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    if status >= 500:
        log.warning("%s %s -> %d %s", request.method, request.url.path, status, exc.message)
    return JSONResponse(error_body(exc.code, exc.message), status_code=status, headers=headers)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A database that cannot be reached (restarting, failing over) is a 503 with Retry-After,
    like any unavailable dependency, not a 500: the request may simply be retried."""
    if not isinstance(exc, OperationalError):  # registered for OperationalError only
        raise exc
    reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
    return await _roomcast_error(request, DependencyUnavailable("database", reason))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    parts = [
        f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', '')}"
        for error in errors
    ]
    message = "; ".join(parts) or "invalid request"
    return JSONResponse(error_body(InvalidInput.code, message), status_code=422)


#: Codes for the statuses Starlette/FastAPI raise themselves (routing, body parsing, limits).
_HTTP_CODES: Final[dict[int, str]] = {
    400: "malformed_request",  # a body that cannot be parsed (e.g. JSON that is not UTF-8)
    403: Forbidden.code,
    404: NotFound.code,
    405: "method_not_allowed",
    409: Conflict.code,
    413: "request_too_large",  # api.body_limit
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return JSONResponse(
        error_body(code, str(exc.detail)),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(RoomcastError, _roomcast_error)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

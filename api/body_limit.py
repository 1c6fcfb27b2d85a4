"""A cap on request bodies, enforced while they are read: 413 ``request_too_large``.

Without it a JSON route buffers whatever a client sends before validating it, so one request
with a huge body can take the process's memory. The ASGI middleware refuses a declared
``Content-Length`` above the cap before reading anything, and counts the bytes of bodies sent
without one (chunked), refusing as soon as the count passes the cap — nothing beyond it is kept.

Routes that take larger uploads and cap them themselves (show artwork: ``artwork_too_large``)
are listed as exempt by the app factory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body

CODE: Final = "request_too_large"


def too_large_message(limit: int) -> str:
    return f"the request body is larger than {limit} bytes; send less"


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``, or ``None`` when absent or not a plain number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


class BodyLimitMiddleware:
    """Refuse HTTP request bodies over ``max_bytes`` unless ``(method, path)`` is exempt."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        exempt: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = [(method, re.compile(pattern)) for method, pattern in exempt]

    def _is_exempt(self, scope: Scope) -> bool:
        method, path = scope.get("method", ""), scope.get("path", "")
        return any(m == method and p.fullmatch(path) for m, p in self.exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_exempt(scope):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            response = JSONResponse(error_body(CODE, too_large_message(limit)), status_code=413)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # An HTTPException passes through FastAPI's body parsing unchanged and
                    # leaves through api.errors as {"error": {"code": "request_too_large"}}.
                    raise HTTPException(413, too_large_message(limit))
            return message

        await self.app(scope, counted, send)

"""The signaling WebSocket: ``GET /v1/rooms/{room_id}/ws?token=JOIN_TOKEN`` (docs/protocol.md).

A thin shell: it verifies the join token (4001 otherwise), admits the connection through the
:class:`live.node.LiveNode` (4004 unknown room, 4003 removed, 4010 ended), then reads messages:
each is size-checked (1009 past the cap), rate-limited by a token bucket (4008 when flooding),
parsed by :func:`core.protocol.parse_client_message` (a bad one gets an ``error`` reply and the
connection stays up; too many refused in a row is abuse, 4008) and handed to the room session.

Writes go through :class:`WsConnection`: a bounded queue drained by one writer task per socket,
so a slow client never blocks the room; one that falls too far behind is closed with 4008.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Final

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from core.errors import InvalidToken, ProtocolError, RoomcastError
from core.protocol import ErrorMessage, encode_server_message, parse_client_message
from core.protocol.close_codes import CloseCode, close_code_for
from core.tokens import decode_join_token
from live.rate_limit import TokenBucket, take

if TYPE_CHECKING:
    from live.node import LiveNode

__all__ = ["MAX_REFUSED_IN_A_ROW", "WsConnection", "create_live_router"]

logger = logging.getLogger(__name__)

#: Refused messages in a row after which a connection counts as abusive (4008).
MAX_REFUSED_IN_A_ROW: Final = 20
#: Server messages a connection may have waiting before it counts as too slow (4008).
MAX_QUEUED: Final = 512
#: How long closing waits for the writer to flush.
FLUSH_TIMEOUT: Final = 5.0


class WsConnection:
    """One admitted socket as a :class:`live.room_session.Connection`: queued, ordered sends."""

    def __init__(self, websocket: WebSocket, user_id: str, *, max_queued: int = MAX_QUEUED) -> None:
        self._ws = websocket
        self._user_id = user_id
        self._max_queued = max_queued
        self._items: deque[str] = deque()
        self._wake = asyncio.Event()
        self.close_code: CloseCode | None = None
        self.media_elsewhere = False
        self.close_reason = ""
        self._writer = asyncio.get_running_loop().create_task(
            self._write(), name=f"ws-writer-{user_id}"
        )

    @property
    def user_id(self) -> str:
        return self._user_id

    def send(self, text: str) -> None:
        if self.close_code is not None:
            return
        if len(self._items) >= self._max_queued:
            self._items.clear()
            self.close(CloseCode.POLICY_VIOLATION, "too_slow")
            return
        self._items.append(text)
        self._wake.set()

    def close(self, code: CloseCode, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason or code.name.lower()
            self._wake.set()

    async def finish(self) -> None:
        """Close (1000 unless a code was set), flush what is queued, stop the writer."""
        self.close(CloseCode.NORMAL)
        try:
            await asyncio.wait_for(asyncio.shield(self._writer), FLUSH_TIMEOUT)
        except TimeoutError:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def _write(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._items:
                    await self._ws.send_text(self._items.popleft())
                if self.close_code is not None:
                    await self._ws.close(int(self.close_code), self.close_reason[:120])
                    return
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            # The client went away first: nothing more can be written.
            logger.debug("socket of %s closed while writing: %r", self._user_id, exc)
        except Exception:
            logger.exception("writing to %s failed", self._user_id)


def create_live_router(node: LiveNode) -> APIRouter:
    """The live node's WebSocket route, bound to ``node`` (mount it in any FastAPI app)."""
    router = APIRouter()

    @router.websocket("/v1/rooms/{room_id}/ws")
    async def room_socket(websocket: WebSocket, room_id: str, token: str = "") -> None:
        await _serve(node, websocket, room_id, token)

    return router


async def _serve(
    node: LiveNode, websocket: WebSocket, room_id: str, token: str, *, media_elsewhere: bool = False
) -> None:
    settings = node.settings
    # Accepted first: a close frame (and its code) can only follow an accepted handshake.
    await websocket.accept()
    try:
        claims = decode_join_token(settings, token)
        if claims.room_id != room_id:
            raise InvalidToken("this join token is for another room")
    except InvalidToken as exc:
        await websocket.close(int(CloseCode.UNAUTHORIZED), exc.code)
        return
    connection = WsConnection(websocket, claims.user_id)
    # Relayed by an edge node that holds this user's media (live/relay.py): no peer here.
    connection.media_elsewhere = media_elsewhere
    try:
        session = await node.admit(claims, connection)
    except RoomcastError as exc:
        connection.close(close_code_for(exc), exc.code)
        await connection.finish()
        return
    rooms = settings.rooms
    bucket = TokenBucket.full(rooms.messages_per_second, rooms.message_burst, time.monotonic())
    refused = 0
    try:
        while connection.close_code is None:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                break
            raw: str | bytes = frame.get("text") or frame.get("bytes") or b""
            bucket, allowed = take(bucket, time.monotonic())
            if not allowed:
                connection.close(CloseCode.POLICY_VIOLATION, "rate_limited")
                break
            try:
                message = parse_client_message(raw, max_bytes=rooms.max_message_bytes)
            except ProtocolError as exc:
                connection.send(encode_server_message(ErrorMessage.from_error(exc)))
                if exc.code == "message_too_big":
                    connection.close(CloseCode.MESSAGE_TOO_BIG, exc.code)
                    break
                refused += 1
                if refused >= MAX_REFUSED_IN_A_ROW:
                    connection.close(CloseCode.POLICY_VIOLATION, "too_many_errors")
                    break
                continue
            refused = 0
            await session.receive(connection, message)
    except WebSocketDisconnect:
        pass
    except Exception:
        logger.exception("signaling for %s in room %s failed", claims.user_id, room_id)
        connection.close(CloseCode.INTERNAL_ERROR, "internal_error")
    finally:
        await session.disconnected(connection)
        await connection.finish()

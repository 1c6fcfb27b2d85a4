"""The origin's side of the origin ↔ edge link: service tokens and two internal WebSockets.

An edge node (:mod:`live.edge`) serving listeners of a room held by another node opens, on that
origin, with a **service token** (JWT, audience ``roomcast:relay``, signed with the same key
as join tokens, so only nodes sharing ``auth.secret_key`` can mint one; never given to users):

- ``/v1/internal/rooms/{room}/mix?service=…`` — ONE per edge and room: the room mix as binary
  frames, each ``!I`` RTP-time (48 kHz) + the Opus payload, exactly the packets the origin's
  mixer sends its own listeners. The origin attaches it to its :class:`live.mixer.RoomMixer`
  like one more listener, so the edge's listeners cost the origin one stream, not one each.
- ``/v1/internal/rooms/{room}/ws?token=JOIN&service=…`` — one per edge listener: that user's
  signaling, relayed. It is the public signaling route in every respect (token check, rules,
  rate limits, events) except that the origin creates no peer connection: the edge terminates
  the user's media (``media_elsewhere``).

:class:`RelayIndex` remembers which users of which room are relayed, so the origin's registry
heartbeat (:mod:`live.cluster`) lists only the users whose signaling really ends here.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections import defaultdict
from typing import Any, Final

import jwt
from aiortc.mediastreams import MediaStreamError
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from core.errors import InvalidToken, TokenExpired
from core.protocol.close_codes import CloseCode
from core.settings import Settings
from core.tokens import ALGORITHM, ISSUER, signing_key
from live.node import LiveNode
from live.signaling import _serve

__all__ = [
    "MIX_FRAME",
    "RELAY_AUDIENCE",
    "RelayIndex",
    "create_relay_router",
    "decode_service_token",
    "issue_service_token",
]

RELAY_AUDIENCE: Final = "roomcast:relay"
#: Header of one mix frame on the link: the packet's RTP time (48 kHz ticks, wraps at 2³²).
MIX_FRAME: Final = struct.Struct("!I")
_SERVICE_TTL: Final = 300


def issue_service_token(settings: Settings, node_id: str, *, now: float | None = None) -> str:
    """A short-lived token proving the bearer is a live node of this deployment."""
    if not node_id:
        raise ValueError("a service token needs a node id")
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": ISSUER,
        "aud": RELAY_AUDIENCE,
        "sub": node_id,
        "iat": issued,
        "exp": issued + _SERVICE_TTL,
    }
    return jwt.encode(claims, signing_key(settings), algorithm=ALGORITHM)


def decode_service_token(settings: Settings, token: str, *, now: float | None = None) -> str:
    """The node id a service token was issued to; InvalidToken / TokenExpired otherwise."""
    if not token:
        raise InvalidToken("no service token was given")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            signing_key(settings),
            algorithms=[ALGORITHM],
            audience=RELAY_AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"], "verify_exp": False},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"not a valid service token: {exc}") from exc
    if not isinstance(claims["exp"], int) or (time.time() if now is None else now) >= claims["exp"]:
        raise TokenExpired("the service token has expired")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise InvalidToken("the service token names no node")
    return claims["sub"]


class RelayIndex:
    """Room id → user ids whose signaling an edge relays to this origin right now."""

    def __init__(self) -> None:
        self._users: defaultdict[str, dict[str, int]] = defaultdict(dict)

    def add(self, room_id: str, user_id: str) -> None:
        users = self._users[room_id]
        users[user_id] = users.get(user_id, 0) + 1

    def discard(self, room_id: str, user_id: str) -> None:
        users = self._users.get(room_id, {})
        count = users.get(user_id, 0) - 1
        if count > 0:
            users[user_id] = count
        else:
            users.pop(user_id, None)
        if not users:
            self._users.pop(room_id, None)

    def relayed(self, room_id: str) -> frozenset[str]:
        return frozenset(self._users.get(room_id, {}))


def create_relay_router(node: LiveNode, index: RelayIndex) -> APIRouter:
    """The internal routes of an origin (see module docstring)."""
    router = APIRouter()
    settings = node.settings

    @router.websocket("/v1/internal/rooms/{room_id}/ws")
    async def relayed_signaling(
        websocket: WebSocket, room_id: str, token: str = "", service: str = ""
    ) -> None:
        try:
            decode_service_token(settings, service)
        except InvalidToken as exc:
            await websocket.accept()
            await websocket.close(int(CloseCode.UNAUTHORIZED), exc.code)
            return
        user = _user_of(token)
        index.add(room_id, user)
        try:
            await _serve(node, websocket, room_id, token, media_elsewhere=True)
        finally:
            index.discard(room_id, user)

    @router.websocket("/v1/internal/rooms/{room_id}/mix")
    async def mix_stream(websocket: WebSocket, room_id: str, service: str = "") -> None:
        await websocket.accept()
        try:
            decode_service_token(settings, service)
        except InvalidToken as exc:
            await websocket.close(int(CloseCode.UNAUTHORIZED), exc.code)
            return
        session = node.room(room_id)
        if session is None or session.closed:
            await websocket.close(int(CloseCode.ROOM_NOT_FOUND), "room_not_found")
            return
        await _stream_mix(websocket, session.media.mixer)

    return router


async def _stream_mix(websocket: WebSocket, mixer: Any) -> None:
    """Send every mix packet to the edge until either side stops."""
    track = mixer.attach_listener()
    watcher = asyncio.get_running_loop().create_task(_until_disconnect(websocket))
    code = CloseCode.ROOM_ENDED
    try:
        while not watcher.done():
            getter = asyncio.ensure_future(track.recv())
            done, _ = await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                code = CloseCode.NORMAL
                break
            try:
                packet = getter.result()
            except MediaStreamError:
                break  # the room closed: its mixer ended every listener track
            frame = MIX_FRAME.pack((packet.pts or 0) & 0xFFFFFFFF) + bytes(packet)
            await websocket.send_bytes(frame)
    except (WebSocketDisconnect, RuntimeError, OSError):
        code = CloseCode.NORMAL
    finally:
        mixer.detach_listener(track)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await websocket.close(int(code))


async def _until_disconnect(websocket: WebSocket) -> None:
    while True:
        frame = await websocket.receive()
        if frame["type"] == "websocket.disconnect":
            return


def _user_of(token: str) -> str:
    """The unverified subject of a join token, for bookkeeping only (``_serve`` verifies)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return ""
    sub = claims.get("sub")
    return sub if isinstance(sub, str) else ""

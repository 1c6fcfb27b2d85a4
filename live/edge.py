"""An edge node's rooms: listeners of a room held by another node (its origin) connect here.

For each such room the edge keeps ONE link to the origin (``/v1/internal/rooms/{room}/mix``,
:mod:`live.relay`) carrying the room mix the origin already encodes for its own listeners, and
fans every packet out to its own listeners through the same send path as the origin's mixer
(:class:`RelayedMixer`: one serialised RTP packet, one SRTP protect + ``sendto`` per listener,
no queue or coroutine per listener). Whatever the number of edge listeners, the origin pays
for one stream per edge.

Each listener's signaling terminates here: the edge accepts the socket, verifies the join token,
and relays the conversation to the origin's internal signaling route
(``/v1/internal/rooms/{room}/ws``), which applies the room rules (raise hand, leave …) exactly
as for its own clients but creates no peer connection. Only the media negotiation stays on the
edge: the edge's :class:`live.media_room.MediaRoom` offers the mix m-line and consumes the
client's ``answer``; every other message goes to the origin and every origin message comes back
unchanged. The origin's close code (4010 ended, 4003 removed …) closes the client with the same
code; an origin that goes away closes it with 1001, and the client rejoins through
:meth:`live.registry.Registry.listener_node` (another edge, or the origin).

Known limit: an edge participant stays a listener. One brought on stage must reconnect to the
origin to be heard (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from fastapi import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from core.errors import (
    InvalidSdp,
    InvalidToken,
    NegotiationMismatch,
    ParticipantNotFound,
    ProtocolError,
)
from core.placement import NodeInfo
from core.protocol import Ack, ErrorMessage, encode_server_message, parse_client_message
from core.protocol.close_codes import CloseCode
from core.protocol.messages import AnswerMsg, Offer
from core.settings import Settings
from core.tokens import decode_join_token
from live.aiortc_seam import opus_packet
from live.media_room import MediaRoom
from live.mixer import RoomMixer
from live.relay import MIX_FRAME, issue_service_token
from live.signaling import WsConnection

__all__ = ["EdgeNode", "EdgeRoom", "RelayedMixer", "internal_url"]

logger = logging.getLogger(__name__)

#: How long the edge waits for the origin to accept a link or a relayed socket.
CONNECT_TIMEOUT = 10.0
#: How long an edge room with no client keeps its link to the origin (a quick rejoin reuses it).
IDLE_SECONDS = 10.0


class RelayedMixer(RoomMixer):
    """An edge room's "mixer": no clock and no codec work, it sends the origin's mix packets
    to this node's listeners as they arrive, through :class:`RoomMixer`'s own send loop."""

    def start(self) -> None:
        """Nothing to start: the origin's mixer clock paces the packets."""

    def relay(self, payload: bytes, rtp_time: int) -> None:
        """Send one mix packet (Opus ``payload`` at ``rtp_time`` 48 kHz ticks) to every
        listener; its time on this node goes to ``stats.mix_latency``."""
        started = time.monotonic()
        self._send(opus_packet(payload, rtp_time))
        self.stats.mix_latency.observe(time.monotonic() - started)


def internal_url(base_url: str, room_id: str, route: str, **query: str) -> str:
    """``http(s)://origin`` → ``ws(s)://origin/v1/internal/rooms/{room}/{route}?…``."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = f"{parts.path.rstrip('/')}/v1/internal/rooms/{quote(room_id, safe='')}/{route}"
    params = "&".join(f"{key}={quote(value, safe='')}" for key, value in query.items())
    return urlunsplit((scheme, parts.netloc, path, params, ""))


class EdgeRoom:
    """One room held by another node, as served to this node's listeners."""

    def __init__(
        self,
        room_id: str,
        settings: Settings,
        origin: NodeInfo,
        *,
        node_id: str,
        on_closed: Callable[[EdgeRoom], None] | None = None,
    ) -> None:
        self.room_id = room_id
        self.origin = origin
        self._settings = settings
        self._node_id = node_id
        self._on_closed = on_closed
        self.media = MediaRoom(room_id, settings.rtc, send_offer=self._send_offer)
        self._own_mixer: RoomMixer | None = self.media.mixer
        # The media room's own mixer would decode and re-encode: the origin already did.
        self.mixer = RelayedMixer(room_id, stats=self.media.send_stats)
        self.media.mixer = self.mixer
        self._clients: dict[str, WsConnection] = {}
        self._lock = asyncio.Lock()
        self._link: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._idle: asyncio.Task[None] | None = None
        self.closed = False
        self.frames = 0

    def clients(self) -> frozenset[str]:
        """Users whose signaling ends on this edge in this room."""
        return frozenset(self._clients)

    def _service_token(self) -> str:
        return issue_service_token(self._settings, self._node_id)

    async def start(self) -> None:
        """Open the mix link; raises ConnectionClosed / OSError / InvalidStatus if refused."""
        if self._own_mixer is not None:
            await self._own_mixer.close()
            self._own_mixer = None
        url = internal_url(self.origin.url, self.room_id, "mix", service=self._service_token())
        self._link = await ws_connect(url, open_timeout=CONNECT_TIMEOUT, max_size=2**16)
        self._reader = asyncio.get_running_loop().create_task(
            self._read_link(self._link), name=f"edge-link-{self.room_id}"
        )

    async def _read_link(self, link: ClientConnection) -> None:
        code = CloseCode.GOING_AWAY
        try:
            async for frame in link:
                if isinstance(frame, bytes) and len(frame) > MIX_FRAME.size:
                    (rtp_time,) = MIX_FRAME.unpack_from(frame)
                    self.frames += 1
                    self.mixer.relay(frame[MIX_FRAME.size :], rtp_time)
            if link.close_code == CloseCode.ROOM_ENDED:
                code = CloseCode.ROOM_ENDED
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("mix link of room %s failed", self.room_id)
        logger.info("mix link of room %s closed (%s)", self.room_id, link.close_code)
        await self.close(code)

    async def serve(self, websocket: WebSocket, user_id: str, token: str) -> None:
        """Serve one accepted, verified client socket until either side ends it."""
        connection = WsConnection(websocket, user_id)
        url = internal_url(
            self.origin.url, self.room_id, "ws", token=token, service=self._service_token()
        )
        try:
            upstream = await ws_connect(url, open_timeout=CONNECT_TIMEOUT)
        except (OSError, InvalidStatus, TimeoutError) as exc:
            logger.warning("origin %s refused a relayed socket: %r", self.origin.node_id, exc)
            connection.close(CloseCode.GOING_AWAY, "origin_unreachable")
            await connection.finish()
            return
        try:
            first = await asyncio.wait_for(upstream.recv(), CONNECT_TIMEOUT)
        except (ConnectionClosed, TimeoutError):
            connection.close(_close_code(upstream.close_code), upstream.close_reason or "")
            await upstream.close()
            await connection.finish()
            return
        connection.send(str(first))  # the snapshot, before any offer
        tasks: list[asyncio.Future[None]] = []
        try:
            async with self._lock:
                if self.closed:
                    connection.close(CloseCode.GOING_AWAY)
                    return
                old = self._clients.pop(user_id, None)
                if old is not None:
                    old.close(CloseCode.REPLACED)
                    with contextlib.suppress(ParticipantNotFound):
                        await self.media.remove_participant(user_id)
                self._clients[user_id] = connection
                await self.media.add_participant(user_id, "listener")
            tasks = [
                asyncio.ensure_future(self._downstream(upstream, connection)),
                asyncio.ensure_future(self._upstream(websocket, upstream, connection)),
            ]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            async with self._lock:
                if self._clients.get(user_id) is connection:
                    del self._clients[user_id]
                    with contextlib.suppress(ParticipantNotFound):
                        await self.media.remove_participant(user_id)
                if not self._clients and not self.closed:
                    self._arm_idle_close()
            await upstream.close()
            await connection.finish()

    def _arm_idle_close(self) -> None:
        """Close the room (and its link) once it has had no client for :data:`IDLE_SECONDS`:
        the origin then stops streaming to an edge nobody listens on."""
        if self._idle is None or self._idle.done():
            self._idle = asyncio.get_running_loop().create_task(
                self._close_when_idle(), name=f"edge-idle-{self.room_id}"
            )

    async def _close_when_idle(self) -> None:
        await asyncio.sleep(IDLE_SECONDS)
        if not self._clients:
            await self.close(CloseCode.NORMAL)

    async def _downstream(self, upstream: ClientConnection, connection: WsConnection) -> None:
        """Origin → client, unchanged; then the origin's close code."""
        try:
            async for text in upstream:
                connection.send(text if isinstance(text, str) else text.decode())
        except ConnectionClosed:
            pass
        connection.close(_close_code(upstream.close_code), upstream.close_reason or "")

    async def _upstream(
        self, websocket: WebSocket, upstream: ClientConnection, connection: WsConnection
    ) -> None:
        """Client → origin, except the answers to this edge's own media offers."""
        max_bytes = self._settings.rooms.max_message_bytes
        try:
            while connection.close_code is None:
                frame = await websocket.receive()
                if frame["type"] == "websocket.disconnect":
                    return
                raw: str | bytes = frame.get("text") or frame.get("bytes") or b""
                try:
                    message = parse_client_message(raw, max_bytes=max_bytes)
                except ProtocolError:
                    message = None  # the origin answers it (and counts the abuse)
                if isinstance(message, AnswerMsg):
                    await self._answer(connection, message)
                else:
                    await upstream.send(raw)
        except (WebSocketDisconnect, ConnectionClosed):
            return

    async def _answer(self, connection: WsConnection, message: AnswerMsg) -> None:
        async with self._lock:
            try:
                await self.media.handle_answer(connection.user_id, message.sdp, message.negotiation)
            except (InvalidSdp, NegotiationMismatch, ParticipantNotFound) as exc:
                error = ErrorMessage.from_error(exc, message.request_id)
                connection.send(encode_server_message(error))
                return
        if message.request_id is not None:
            connection.send(encode_server_message(Ack(message.request_id)))

    async def _send_offer(self, user_id: str, sdp: str, negotiation: int) -> None:
        connection = self._clients.get(user_id)
        if connection is not None:
            connection.send(encode_server_message(Offer(sdp, negotiation)))

    async def close(self, code: CloseCode = CloseCode.GOING_AWAY) -> None:
        """Close every client with ``code``, the link and the media."""
        async with self._lock:
            if self.closed:
                return
            self.closed = True
            clients, self._clients = list(self._clients.values()), {}
        for connection in clients:
            connection.close(code)
        if self._link is not None:
            await self._link.close()
        for task in (self._reader, self._idle):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.media.close()
        if self._own_mixer is not None:
            await self._own_mixer.close()
        if self._on_closed is not None:
            self._on_closed(self)


class EdgeNode:
    """The edge rooms of this process, opened on a listener's first join and closed with the
    origin's link."""

    def __init__(self, settings: Settings, node_id: str) -> None:
        self.settings = settings
        self.node_id = node_id
        self._rooms: dict[str, EdgeRoom] = {}
        self._opening: dict[str, asyncio.Lock] = {}

    @property
    def rooms(self) -> dict[str, EdgeRoom]:
        return dict(self._rooms)

    async def serve(self, websocket: WebSocket, room_id: str, token: str, origin: NodeInfo) -> None:
        """Serve a client of ``room_id`` (held by ``origin``) on this edge."""
        await websocket.accept()
        try:
            claims = decode_join_token(self.settings, token)
            if claims.room_id != room_id:
                raise InvalidToken("this join token is for another room")
        except InvalidToken as exc:
            await websocket.close(int(CloseCode.UNAUTHORIZED), exc.code)
            return
        room = await self._room(room_id, origin)
        if room is None:
            await websocket.close(int(CloseCode.ROOM_NOT_FOUND), "room_not_found")
            return
        await room.serve(websocket, claims.user_id, token)

    async def _room(self, room_id: str, origin: NodeInfo) -> EdgeRoom | None:
        lock = self._opening.setdefault(room_id, asyncio.Lock())
        async with lock:
            room = self._rooms.get(room_id)
            if room is not None and not room.closed:
                return room
            room = EdgeRoom(
                room_id, self.settings, origin, node_id=self.node_id, on_closed=self._forget
            )
            try:
                await room.start()
            except (OSError, InvalidStatus, ConnectionClosed, TimeoutError) as exc:
                logger.warning("no mix link to %s for room %s: %r", origin.node_id, room_id, exc)
                await room.close()
                return None
            self._rooms[room_id] = room
            return room

    def _forget(self, room: EdgeRoom) -> None:
        if self._rooms.get(room.room_id) is room:
            del self._rooms[room.room_id]
            self._opening.pop(room.room_id, None)

    async def close(self) -> None:
        """Close every edge room (1001)."""
        for room in list(self._rooms.values()):
            await room.close(CloseCode.GOING_AWAY)


def _close_code(code: Any) -> CloseCode:
    """The origin's close code for the client; 1001 when the origin vanished (1006 …)."""
    try:
        return CloseCode(int(code))
    except (TypeError, ValueError):
        return CloseCode.GOING_AWAY

"""The Python room client: signaling over a WebSocket plus an aiortc peer (live/peer.py).

Used by the tests, the load generator and the demo::

    client = await RoomClient.connect(base_url, room_id, token, publish_track=mic,
                                      host_addresses=["127.0.0.1"])
    await client.raise_hand()
    await client.wait_for(lambda c: c.role == "speaker")
    samples = client.audio_of("mix").since(t0)
    await client.leave()

``connect`` waits for the ``snapshot``; a reader task then keeps :attr:`RoomClient.participants`
(and the rest of the room view) up to date from events, answers every offer, and settles each
request: the action methods send a ``request_id`` and return on its ``ack`` or raise the
refusal (:class:`core.errors.RoomRuleError` for rule codes, :class:`core.errors.ProtocolError`
otherwise; :class:`core.errors.SignalingClosed` when the socket closed).

``publish_track`` is sent while the user is on stage (published on promotion, withdrawn on
demotion); ``always_publish=True`` sends it whatever the role (a misbehaving client, for tests:
the server drops a listener's audio). ICE servers are explicit and empty by default, so no
public STUN server is contacted; ``host_addresses`` (e.g. ``["127.0.0.1"]``) sets the ICE host
candidates of every peer connection in this process, like ``ROOMCAST_RTC__HOST_ADDRESSES``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from aiortc import MediaStreamTrack
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from core.errors import ProtocolError, RoomcastError, SignalingClosed
from core.rooms import RULE_CODES, Role, grants_for, rule_error
from core.settings import RtcSettings
from live.peer import ClientPeer, ReceivedAudio

__all__ = ["RoomClient", "connect", "ws_url"]

logger = logging.getLogger(__name__)


def ws_url(base_url: str, room_id: str, token: str) -> str:
    """The signaling URL: ``http(s)://host`` → ``ws(s)://host/v1/rooms/{id}/ws?token=…``."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = f"{parts.path.rstrip('/')}/v1/rooms/{quote(room_id, safe='')}/ws"
    return urlunsplit((scheme, parts.netloc, path, f"token={quote(token, safe='')}", ""))


class RoomClient:
    """One participant connected to a live room. Build with :meth:`connect`."""

    def __init__(
        self,
        ws: ClientConnection,
        peer: ClientPeer,
        snapshot: dict[str, Any],
        *,
        publish_track: MediaStreamTrack | None,
        always_publish: bool,
    ) -> None:
        self._ws = ws
        self.peer = peer
        self.snapshot = snapshot
        self.room_id: str = snapshot["room_id"]
        self.user_id: str = snapshot["you"]
        self.host_id: str = snapshot["host_id"]
        self.participants: dict[str, dict[str, Any]] = {
            p["user_id"]: dict(p) for p in snapshot["participants"]
        }
        self.invited: set[str] = set(snapshot["invited"])
        self.recording: bool = snapshot["recording"]
        self.grants: dict[str, bool] = dict(snapshot["grants"])
        #: Every server message after the snapshot, in order (offers' SDP left out).
        self.messages: list[dict[str, Any]] = []
        self.active_speakers: list[str] = []
        self.ended_reason: str | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._track = publish_track
        self._always = always_publish
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._closed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read(), name="room-client")

    # -- connecting -----------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        base_url: str,
        room_id: str,
        token: str,
        *,
        publish_track: MediaStreamTrack | None = None,
        ice_servers: Sequence[str] = (),
        host_addresses: Sequence[str] = (),
        always_publish: bool = False,
        timeout: float = 10.0,
    ) -> RoomClient:
        """Connect, wait for the snapshot and start answering offers.

        Raises :class:`SignalingClosed` when the server refuses (``close_code`` 4001, 4003,
        4004, 4010 ...).
        """
        ws = await ws_connect(ws_url(base_url, room_id, token), open_timeout=timeout)
        try:
            raw = await asyncio.wait_for(ws.recv(), timeout)
        except ConnectionClosed as exc:
            raise SignalingClosed(ws.close_code, ws.close_reason or "") from exc
        snapshot = json.loads(raw)
        if snapshot.get("type") != "snapshot":
            await ws.close()
            raise ProtocolError("unexpected_message", f"expected a snapshot, got {raw[:80]!r}")
        rtc = RtcSettings(ice_servers=list(ice_servers), host_addresses=list(host_addresses))
        me = _me(snapshot)
        on_stage = me is not None and Role(me["role"]).on_stage
        first = publish_track if (always_publish or on_stage) else None
        peer = ClientPeer(rtc, publish=first)
        return cls(ws, peer, snapshot, publish_track=publish_track, always_publish=always_publish)

    # -- the room view --------------------------------------------------------------------

    @property
    def role(self) -> str | None:
        """This user's role now (None once they left)."""
        me = self.participants.get(self.user_id)
        return None if me is None else str(me["role"])

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def streams(self) -> dict[str, str]:
        """Audio streams received now: speaker id (or ``"mix"``) → m-line id."""
        return self.peer.streams()

    def audio_of(self, stream_id: str) -> ReceivedAudio | None:
        """Decoded audio of a speaker's forwarded track, or of ``"mix"`` for listeners."""
        return self.peer.audio_of(stream_id)

    def publish(self, track: MediaStreamTrack | None) -> None:
        """Send ``track`` from now on (``None`` stops); also what is published on promotion."""
        self._track = track
        self.peer.publish(track if (self._always or self._on_stage()) else None)

    async def wait_for(
        self, predicate: Callable[[RoomClient], bool], timeout: float = 10.0
    ) -> None:
        """Return once ``predicate(self)`` holds; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("condition not met in time")
            self._changed.clear()
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.1))

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        """Wait until the server closed the socket; returns the close code."""
        await asyncio.wait_for(self._closed.wait(), timeout)
        return self.close_code

    # -- actions (each waits for its ack) ---------------------------------------------------

    async def raise_hand(self) -> None:
        await self.request("raise_hand")

    async def lower_hand(self) -> None:
        await self.request("lower_hand")

    async def accept_invite(self) -> None:
        await self.request("accept_invite")

    async def decline_invite(self) -> None:
        await self.request("decline_invite")

    async def invite(self, target: str) -> None:
        await self.request("invite", target=target)

    async def bring_up(self, target: str) -> None:
        await self.request("bring_up", target=target)

    async def step_down(self) -> None:
        await self.request("step_down")

    async def mute(self, target: str, muted: bool = True) -> None:
        await self.request("mute", target=target, muted=muted)

    async def move_to_audience(self, target: str) -> None:
        await self.request("move_to_audience", target=target)

    async def remove(self, target: str) -> None:
        await self.request("remove", target=target)

    async def make_cohost(self, target: str) -> None:
        await self.request("make_cohost", target=target)

    async def revoke_cohost(self, target: str) -> None:
        await self.request("revoke_cohost", target=target)

    async def transfer_host(self, target: str) -> None:
        await self.request("transfer_host", target=target)

    async def set_recording(self, on: bool) -> None:
        await self.request("set_recording", on=on)

    async def add_marker(self, title: str) -> None:
        await self.request("add_marker", title=title)

    async def ping(self) -> None:
        await self.request("ping")

    async def end_room(self) -> None:
        """End the room (host); returns once the server has closed this socket (4010)."""
        await self.request("end_room")
        await self.wait_closed()
        await self.peer.close()

    async def leave(self) -> None:
        """Leave the room and close the socket and the peer."""
        with contextlib.suppress(SignalingClosed):
            await self.request("leave")
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            await self.wait_closed(5.0)
        await self.close()

    async def close(self) -> None:
        """Disconnect without a ``leave`` (the server treats it as leaving)."""
        await self._ws.close()
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), 5.0)
        self._reader.cancel()
        await self.peer.close()

    async def request(self, kind: str, timeout: float = 10.0, **fields: Any) -> None:
        """Send ``{"type": kind, ...}`` and wait for its ``ack`` / ``pong`` or ``error``."""
        if self.closed:
            raise SignalingClosed(self.close_code, self.close_reason)
        request_id = f"r{next(self._ids)}"
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._ws.send(json.dumps({"type": kind, "request_id": request_id, **fields}))
            await asyncio.wait_for(future, timeout)
        except ConnectionClosed as exc:
            raise SignalingClosed(self._ws.close_code, self._ws.close_reason or "") from exc
        finally:
            self._pending.pop(request_id, None)

    # -- the reader ---------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                message = json.loads(raw)
                if message.get("type") == "offer":
                    answer = await self.peer.handle_offer(message["sdp"])
                    number = message["negotiation"]
                    await self._ws.send(
                        json.dumps({"type": "answer", "sdp": answer, "negotiation": number})
                    )
                    message = {"type": "offer", "negotiation": number}
                else:
                    self._apply(message)
                self.messages.append(message)
                self._changed.set()
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("room client %s failed while reading", self.user_id)
        finally:
            self.close_code = self._ws.close_code
            self.close_reason = self._ws.close_reason or ""
            self._closed.set()
            self._changed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(SignalingClosed(self.close_code, self.close_reason))

    def _apply(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        user = message.get("user_id")
        person = self.participants.get(user) if isinstance(user, str) else None
        if kind in ("ack", "pong", "error"):
            self._settle(message)
        elif kind == "active_speakers":
            self.active_speakers = list(message["user_ids"])
        elif kind == "participant_joined" and isinstance(user, str):
            self.participants[user] = {
                "user_id": user,
                "display_name": message["display_name"],
                "role": message["role"],
                "hand_raised": False,
                "muted": False,
            }
        elif kind == "participant_left" and isinstance(user, str):
            self.participants.pop(user, None)
            self.invited.discard(user)
        elif kind == "role_changed" and person is not None:
            self._role_changed(person, Role(message["role"]), Role(message["previous_role"]))
        elif kind in ("hand_raised", "hand_lowered") and person is not None:
            person["hand_raised"] = kind == "hand_raised"
        elif kind == "invited" and isinstance(user, str):
            self.invited.add(user)
        elif kind == "invite_declined" and isinstance(user, str):
            self.invited.discard(user)
        elif kind == "muted" and person is not None:
            person["muted"] = message["muted"]
        elif kind == "recording":
            self.recording = message["on"]
        elif kind == "room_ended":
            self.ended_reason = message["reason"]

    def _role_changed(self, person: dict[str, Any], role: Role, previous: Role) -> None:
        person.update(role=role.value, hand_raised=False)
        person["muted"] = person["muted"] and role.on_stage and previous.on_stage
        self.invited.discard(person["user_id"])
        if role is Role.HOST:
            self.host_id = person["user_id"]
        if person["user_id"] == self.user_id:
            self.grants = grants_for(role).to_claim()
            # Start (or stop) sending before the server's re-offer arrives.
            self.peer.publish(self._track if (self._always or role.on_stage) else None)

    def _settle(self, message: dict[str, Any]) -> None:
        future = self._pending.get(message.get("request_id") or "")
        if future is None or future.done():
            if message.get("type") == "error":
                logger.info("room error for %s: %s", self.user_id, message)
            return
        if message["type"] == "error":
            future.set_exception(_remote_error(message["code"], message["message"]))
        else:
            future.set_result(None)

    def _on_stage(self) -> bool:
        role = self.role
        return role is not None and Role(role).on_stage


def _me(snapshot: dict[str, Any]) -> dict[str, Any] | None:
    return next((p for p in snapshot["participants"] if p["user_id"] == snapshot["you"]), None)


def _remote_error(code: str, message: str) -> RoomcastError:
    if code in RULE_CODES:
        error = rule_error(code)
        error.message = message
        return error
    return ProtocolError(code, message)


#: ``await connect(base_url, room_id, token, ...)``: the same as :meth:`RoomClient.connect`.
connect = RoomClient.connect

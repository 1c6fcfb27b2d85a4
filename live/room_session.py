"""One live room's imperative shell: room state, its connections and its media.

A :class:`RoomSession` holds the room's :class:`core.rooms.RoomState`, applies the pure rules
to what clients ask, broadcasts the resulting events to every connection, then carries out
their effects (:mod:`live.session_effects`) on the :class:`live.media_room.MediaRoom`: role
changes renegotiate, mutes silence, departures drop peers and close sockets, the room's end
closes everyone with 4010. It relays the media plane's offers and the clients' answers, pushes
active speakers (the media plane already limits them to 4 per second) and runs the host-left
grace timer through :func:`core.rooms.tick`.

Every mutation runs under one lock, so events reach every connection in the order the state
changed. Sends never block: a :class:`Connection` queues text (see :mod:`live.signaling`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from core.errors import InvalidSdp, NegotiationMismatch, ParticipantNotFound, RoomRuleError
from core.protocol import (
    Ack,
    ActiveSpeakers,
    ErrorMessage,
    Pong,
    ServerMessage,
    encode_server_message,
    ice_servers_from_settings,
    snapshot_for,
    to_command,
)
from core.protocol.close_codes import CloseCode
from core.protocol.messages import AnswerMsg, ClientMessage, Offer, PingMsg, RaiseHandMsg
from core.rooms import Event, Join, Leave, RoomPolicy, RoomState, apply, open_room, rule_error, tick
from core.settings import Settings
from core.tokens import JoinClaims
from live.media_room import MediaRoom, PacketTap
from live.rate_limit import TokenBucket, per_minute, retry_after, take
from live.session_effects import (
    CloseConnection,
    DropMedia,
    EndRoom,
    SetMediaRole,
    SetMuted,
    effects_for,
    media_role,
)

__all__ = ["Connection", "RoomSession"]

logger = logging.getLogger(__name__)


class Connection(Protocol):
    """One participant's signaling connection, as the session sees it."""

    @property
    def user_id(self) -> str: ...

    def send(self, text: str) -> None:
        """Queue one server message (JSON text); never blocks."""

    def close(self, code: CloseCode) -> None:
        """Close after the messages already queued; later sends are dropped."""


class RoomSession:
    """The shell of one live room; created by :class:`live.node.LiveNode` for a host token."""

    def __init__(
        self,
        room_id: str,
        settings: Settings,
        *,
        host_id: str,
        host_name: str,
        clock: Callable[[], float] = time.monotonic,
        on_ended: Callable[[RoomSession], None] | None = None,
        packet_tap: PacketTap | None = None,
        observer: Callable[[RoomState, Sequence[Event]], None] | None = None,
    ) -> None:
        self.room_id = room_id
        #: Told every state change, after its broadcast (the recorder: live/recording.py).
        self._observer = observer
        self._clock = clock
        self._on_ended = on_ended
        self._state = open_room(
            room_id,
            host_id=host_id,
            host_name=host_name,
            now=clock(),
            policy=RoomPolicy.from_settings(settings),
        )
        self._ice = ice_servers_from_settings(settings)
        self._connections: dict[str, Connection] = {}
        #: user → number of the offer awaiting an answer (to tell stale from unexpected).
        self._offered: dict[str, int] = {}
        #: user → their raise_hand bucket; kept across reconnects so rejoining does not refill it.
        self._hands: dict[str, TokenBucket] = {}
        self._hands_per_minute = settings.rooms.hand_raises_per_minute
        self._media = MediaRoom(
            room_id,
            settings.rtc,
            send_offer=self._send_offer,
            on_active_speakers=self._on_active_speakers,
            packet_tap=packet_tap,
        )
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self._timer_deadline: float | None = None
        self._closed = False

    # -- introspection ----------------------------------------------------------------------

    @property
    def state(self) -> RoomState:
        return self._state

    @property
    def media(self) -> MediaRoom:
        return self._media

    @property
    def closed(self) -> bool:
        return self._closed

    def connected(self) -> frozenset[str]:
        """Users with an open connection."""
        return frozenset(self._connections)

    # -- what signaling calls -----------------------------------------------------------------

    async def join(self, claims: JoinClaims, connection: Connection) -> None:
        """Admit ``connection``: snapshot, ``participant_joined`` to the others, first offer.

        Raises :class:`core.errors.RoomRuleError` (``room_ended``, ``removed_from_room``, ...)
        when the rules refuse; the caller closes with :func:`core.protocol.close_code_for`.
        """
        async with self._lock:
            if self._closed:
                raise rule_error("room_ended")
            user = claims.user_id
            events: list[Event] = []
            if user not in self._state:
                self._state, events = apply(
                    self._state, user, Join(claims.display_name), self._clock()
                )
            else:
                # Already present: the host opening the room, or the same user reconnecting.
                old = self._connections.pop(user, None)
                if old is not None:
                    old.close(CloseCode.REPLACED)
                    await self._drop_media(user)
            self._connections[user] = connection
            connection.send(self._encode(snapshot_for(self._state, user, ice_servers=self._ice)))
            participant = self._state.get(user)
            try:
                # The joiner's offer is queued before ``participant_joined`` goes to everyone
                # else: in a big room that broadcast wakes one writer per connection, and the
                # offer would wait behind all of them (join time grew with the room's size).
                # An edge node (live/edge.py) terminates that user's media itself.
                if participant is not None and not getattr(connection, "media_elsewhere", False):
                    await self._media.add_participant(user, media_role(participant.role))
                    if participant.muted:
                        self._media.set_muted(user, True)
            finally:
                self._broadcast(events, exclude=user)
                self._observe(events)
            self._arm_grace_timer()

    async def receive(self, connection: Connection, message: ClientMessage) -> None:
        """Handle one parsed client message from ``connection``."""
        async with self._lock:
            user = connection.user_id
            if self._closed or self._connections.get(user) is not connection:
                return  # a replaced or closed connection's late message
            request_id = message.request_id
            if isinstance(message, PingMsg):
                connection.send(self._encode(Pong(request_id)))
                return
            if isinstance(message, AnswerMsg):
                await self._answer(connection, message)
                return
            if isinstance(message, RaiseHandMsg) and not self._may_raise_hand(connection, message):
                return
            command = to_command(message)
            if command is None:  # every other message maps to a command
                return
            try:
                self._state, events = apply(self._state, user, command, self._clock())
            except RoomRuleError as exc:
                connection.send(self._encode(ErrorMessage.from_error(exc, request_id)))
                return
            await self._commit(events, ack=(connection, request_id))

    async def disconnected(self, connection: Connection) -> None:
        """The socket is gone: a present user leaves (unless a newer connection replaced it)."""
        async with self._lock:
            user = connection.user_id
            if self._closed or self._connections.get(user) is not connection:
                return
            del self._connections[user]
            self._offered.pop(user, None)
            if user in self._state:
                self._state, events = apply(self._state, user, Leave(), self._clock())
                await self._commit(events)

    async def close(self, code: CloseCode = CloseCode.GOING_AWAY) -> None:
        """Close every connection with ``code`` and the media (node shutdown)."""
        async with self._lock:
            await self._end(code)

    def send_to_recorders(self, message: ServerMessage) -> None:
        """Send ``message`` to every connected participant who may record (the host)."""
        text = self._encode(message)
        for user, connection in list(self._connections.items()):
            participant = self._state.get(user)
            if participant is not None and participant.grants.record:
                connection.send(text)

    # -- internals --------------------------------------------------------------------------

    def _observe(self, events: Sequence[Event]) -> None:
        if self._observer is None:
            return
        try:
            self._observer(self._state, events)
        except Exception:  # the recorder must never break the live room
            logger.exception("room observer failed in %s", self.room_id)

    async def _answer(self, connection: Connection, message: AnswerMsg) -> None:
        user, request_id = connection.user_id, message.request_id
        pending = self._offered.get(user)
        if pending is None or pending != message.negotiation:
            code = "unexpected_answer" if pending is None else "stale_answer"
            text = (
                "no offer is awaiting an answer"
                if pending is None
                else f"answer to offer {message.negotiation} but offer {pending} is pending"
            )
            connection.send(self._encode(ErrorMessage(code, text, request_id)))
            return
        # Cleared first: answering may trigger the next offer, which sets it again.
        del self._offered[user]
        try:
            await self._media.handle_answer(user, message.sdp, message.negotiation)
        except InvalidSdp as exc:
            self._offered.setdefault(user, message.negotiation)  # the offer stays open
            connection.send(self._encode(ErrorMessage.from_error(exc, request_id)))
            return
        except (NegotiationMismatch, ParticipantNotFound) as exc:
            connection.send(self._encode(ErrorMessage.from_error(exc, request_id)))
            return
        if request_id is not None:
            connection.send(self._encode(Ack(request_id)))

    def _may_raise_hand(self, connection: Connection, message: RaiseHandMsg) -> bool:
        """Spend one of the user's hand raises, or answer ``rate_limited`` (nothing changes)."""
        user, now = connection.user_id, self._clock()
        bucket = self._hands.get(user) or per_minute(self._hands_per_minute, now)
        bucket, allowed = take(bucket, now)
        self._hands[user] = bucket
        if not allowed:
            wait = retry_after(bucket)
            text = f"at most {self._hands_per_minute} raise_hand a minute; retry in {wait:.1f} s"
            connection.send(self._encode(ErrorMessage("rate_limited", text, message.request_id)))
        return allowed

    async def _commit(
        self, events: list[Event], ack: tuple[Connection, str | None] | None = None
    ) -> None:
        """Broadcast ``events``, acknowledge the request, then carry out their effects."""
        self._broadcast(events)
        self._observe(events)
        if ack is not None and ack[1] is not None:
            ack[0].send(self._encode(Ack(ack[1])))
        for effect in effects_for(events):
            match effect:
                case SetMediaRole(user_id=user_id, role=role):
                    with contextlib.suppress(ParticipantNotFound):
                        await self._media.set_role(user_id, role)
                case SetMuted(user_id=user_id, muted=muted):
                    with contextlib.suppress(ParticipantNotFound):
                        self._media.set_muted(user_id, muted)
                case DropMedia(user_id=user_id):
                    await self._drop_media(user_id)
                case CloseConnection(user_id=user_id, code=code):
                    connection = self._connections.pop(user_id, None)
                    self._offered.pop(user_id, None)
                    if connection is not None:
                        connection.close(code)
                case EndRoom():
                    await self._end(CloseCode.ROOM_ENDED)
                    return
        self._arm_grace_timer()

    async def _drop_media(self, user_id: str) -> None:
        self._offered.pop(user_id, None)
        with contextlib.suppress(ParticipantNotFound):
            await self._media.remove_participant(user_id)

    async def _end(self, code: CloseCode) -> None:
        if self._closed:
            return
        self._closed = True
        timer, self._timer = self._timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            connection.close(code)
        await self._media.close()
        if self._on_ended is not None:
            self._on_ended(self)

    def _arm_grace_timer(self) -> None:
        deadline = self._state.host_deadline if self._state.live and not self._closed else None
        if deadline == self._timer_deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = deadline
        if deadline is not None:
            self._timer = asyncio.get_running_loop().create_task(
                self._grace(deadline), name=f"host-grace-{self.room_id}"
            )

    async def _grace(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - self._clock()))
        async with self._lock:
            if self._closed:
                return
            self._timer, self._timer_deadline = None, None
            self._state, events = tick(self._state, self._clock())
            await self._commit(events)

    async def _send_offer(self, user_id: str, sdp: str, negotiation: int) -> None:
        connection = self._connections.get(user_id)
        if connection is None:
            return
        self._offered[user_id] = negotiation
        connection.send(self._encode(Offer(sdp, negotiation)))

    def _on_active_speakers(self, user_ids: list[str]) -> None:
        text = self._encode(ActiveSpeakers(tuple(user_ids)))
        for connection in list(self._connections.values()):
            connection.send(text)

    def _broadcast(self, events: Iterable[Event], exclude: str | None = None) -> None:
        for event in events:
            text = self._encode(event)
            for user, connection in list(self._connections.items()):
                if user != exclude:
                    connection.send(text)

    @staticmethod
    def _encode(message: ServerMessage) -> str:
        return encode_server_message(message)

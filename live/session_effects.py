"""What a room session must do after the rules emitted events: a pure plan of effects.

:class:`live.room_session.RoomSession` broadcasts every event, then carries out
:func:`effects_for` in order: media role changes, mutes, dropped peers, closed connections and
the end of the room. Keeping the mapping pure makes it testable without sockets or peers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from core.protocol.close_codes import CloseCode
from core.rooms.events import Event, Muted, ParticipantLeft, RoleChanged, RoomEnded
from core.rooms.roles import Role

__all__ = [
    "CloseConnection",
    "DropMedia",
    "Effect",
    "EndRoom",
    "MediaRole",
    "SetMediaRole",
    "SetMuted",
    "effects_for",
    "media_role",
]

MediaRole = Literal["speaker", "listener"]


def media_role(role: Role) -> MediaRole:
    """The media plane's view of a room role: the stage publishes, the audience listens."""
    return "speaker" if role.on_stage else "listener"


@dataclass(frozen=True, slots=True)
class SetMediaRole:
    """Renegotiate ``user_id``'s media: forwarded speakers, or the room mix."""

    user_id: str
    role: MediaRole


@dataclass(frozen=True, slots=True)
class SetMuted:
    """Stop (or resume) forwarding, mixing and recording ``user_id``'s audio."""

    user_id: str
    muted: bool


@dataclass(frozen=True, slots=True)
class DropMedia:
    """Close ``user_id``'s server peer connection."""

    user_id: str


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close ``user_id``'s signaling connection with ``code`` (after pending messages)."""

    user_id: str
    code: CloseCode


@dataclass(frozen=True, slots=True)
class EndRoom:
    """Close every connection with 4010 and the room's media."""


Effect = SetMediaRole | SetMuted | DropMedia | CloseConnection | EndRoom


def effects_for(events: Iterable[Event]) -> list[Effect]:
    """The effects of ``events``, in event order.

    A role change across the stage edge renegotiates media (host ↔ co-host ↔ speaker does
    not); a departure drops the peer and closes the connection, 1000 for ``left`` and 4003 for
    ``removed``; ``room_ended`` ends everything.
    """
    effects: list[Effect] = []
    for event in events:
        match event:
            case RoleChanged(user_id=user_id, role=role, previous_role=previous):
                if role.on_stage != previous.on_stage:
                    effects.append(SetMediaRole(user_id, media_role(role)))
            case Muted(user_id=user_id, muted=muted):
                effects.append(SetMuted(user_id, muted))
            case ParticipantLeft(user_id=user_id, reason=reason):
                code = CloseCode.FORBIDDEN if reason == "removed" else CloseCode.NORMAL
                effects += [DropMedia(user_id), CloseConnection(user_id, code)]
            case RoomEnded():
                effects.append(EndRoom())
    return effects

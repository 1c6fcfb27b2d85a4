"""What happened in a room: immutable events returned by :mod:`core.rooms.rules`.

Every event is also a server→client signaling message: its ``type`` is the wire ``type`` and
its fields are the wire fields (docs/protocol.md). The live plane broadcasts each one to
everyone in the room, and reacts to some (renegotiate on ``role_changed``, close the removed
user's connection on ``participant_left`` with reason ``removed``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from core.rooms.roles import Role
from core.rooms.state import EndReason


@dataclass(frozen=True, slots=True)
class ParticipantJoined:
    type: ClassVar[Literal["participant_joined"]] = "participant_joined"
    user_id: str
    display_name: str
    role: Role


@dataclass(frozen=True, slots=True)
class ParticipantLeft:
    type: ClassVar[Literal["participant_left"]] = "participant_left"
    user_id: str
    #: ``left`` (they left or disconnected) or ``removed`` (a moderator removed them).
    reason: Literal["left", "removed"]
    #: The moderator, for ``removed``.
    by: str | None = None


@dataclass(frozen=True, slots=True)
class RoleChanged:
    type: ClassVar[Literal["role_changed"]] = "role_changed"
    user_id: str
    role: Role
    previous_role: Role
    #: Who changed it; None when the room did it (a co-host taking over from a departed host)
    #: and the user's own id when they accepted an invitation or stepped down.
    by: str | None


@dataclass(frozen=True, slots=True)
class HandRaised:
    type: ClassVar[Literal["hand_raised"]] = "hand_raised"
    user_id: str


@dataclass(frozen=True, slots=True)
class HandLowered:
    type: ClassVar[Literal["hand_lowered"]] = "hand_lowered"
    user_id: str


@dataclass(frozen=True, slots=True)
class Invited:
    type: ClassVar[Literal["invited"]] = "invited"
    #: The listener invited on stage.
    user_id: str
    by: str


@dataclass(frozen=True, slots=True)
class InviteDeclined:
    type: ClassVar[Literal["invite_declined"]] = "invite_declined"
    user_id: str


@dataclass(frozen=True, slots=True)
class Muted:
    type: ClassVar[Literal["muted"]] = "muted"
    user_id: str
    #: True: muted (audio no longer forwarded); False: unmuted.
    muted: bool
    by: str


@dataclass(frozen=True, slots=True)
class RecordingChanged:
    type: ClassVar[Literal["recording"]] = "recording"
    #: Whether the room is being recorded from now on.
    on: bool
    #: The host, or None when recording stopped because the room ended.
    by: str | None


@dataclass(frozen=True, slots=True)
class MarkerAdded:
    type: ClassVar[Literal["marker_added"]] = "marker_added"
    #: Room clock time of the marker (the ``now`` of the command).
    at: float
    title: str
    by: str


@dataclass(frozen=True, slots=True)
class RoomEnded:
    type: ClassVar[Literal["room_ended"]] = "room_ended"
    reason: EndReason


#: Every room event.
Event = (
    ParticipantJoined
    | ParticipantLeft
    | RoleChanged
    | HandRaised
    | HandLowered
    | Invited
    | InviteDeclined
    | Muted
    | RecordingChanged
    | MarkerAdded
    | RoomEnded
)

EVENT_TYPES: tuple[type[Event], ...] = (
    ParticipantJoined,
    ParticipantLeft,
    RoleChanged,
    HandRaised,
    HandLowered,
    Invited,
    InviteDeclined,
    Muted,
    RecordingChanged,
    MarkerAdded,
    RoomEnded,
)

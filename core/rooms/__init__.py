"""Live room rules: roles, grants, room state and its pure transitions.

Typical use by the live plane::

    state = open_room(room_id, host_id=user.id, host_name=user.name, now=clock())
    state, events = apply(state, actor_id, RaiseHand(), now=clock())   # or RoomRuleError
    state, events = tick(state, now=clock())                           # on a timer
    if may_publish(state, speaker_id): forward(packet)
"""

from core.rooms.commands import (
    AcceptInvite,
    AddMarker,
    BringUp,
    Command,
    DeclineInvite,
    EndRoom,
    Invite,
    Join,
    Leave,
    LowerHand,
    MakeCohost,
    MoveToAudience,
    Mute,
    RaiseHand,
    Remove,
    RevokeCohost,
    SetRecording,
    StepDown,
    TransferHost,
)
from core.rooms.errors import RULE_CODES, rule_error
from core.rooms.events import EVENT_TYPES, Event
from core.rooms.roles import Grants, Role, grants_for, parse_role
from core.rooms.rules import apply, tick
from core.rooms.state import (
    EndReason,
    Marker,
    Participant,
    RoomPolicy,
    RoomState,
    RoomStatus,
    may_publish,
    may_record,
    open_room,
)

__all__ = [
    "EVENT_TYPES",
    "RULE_CODES",
    "AcceptInvite",
    "AddMarker",
    "BringUp",
    "Command",
    "DeclineInvite",
    "EndReason",
    "EndRoom",
    "Event",
    "Grants",
    "Invite",
    "Join",
    "Leave",
    "LowerHand",
    "MakeCohost",
    "Marker",
    "MoveToAudience",
    "Mute",
    "Participant",
    "RaiseHand",
    "Remove",
    "RevokeCohost",
    "Role",
    "RoomPolicy",
    "RoomState",
    "RoomStatus",
    "SetRecording",
    "StepDown",
    "TransferHost",
    "apply",
    "grants_for",
    "may_publish",
    "may_record",
    "open_room",
    "parse_role",
    "rule_error",
    "tick",
]

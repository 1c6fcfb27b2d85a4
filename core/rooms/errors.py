"""The stable codes of every room action the rules refuse.

Each code names one reason and maps to one class of the error tree (core/errors.py), which
fixes the HTTP status / signaling behaviour: forbidden (403), conflict (409), not found (404),
invalid (400). docs/protocol.md lists them all; a test keeps the two in step.
"""

from __future__ import annotations

from typing import Final

from core.errors import (
    RoomActionForbidden,
    RoomActionInvalid,
    RoomRuleError,
    RoomStateConflict,
    RoomTargetNotFound,
)

#: code → (error class, what it means).
RULE_CODES: Final[dict[str, tuple[type[RoomRuleError], str]]] = {
    "room_ended": (RoomStateConflict, "The room has ended; nothing more can happen in it."),
    "not_in_room": (RoomActionForbidden, "The actor has not joined the room (or has left it)."),
    "already_in_room": (RoomStateConflict, "The user is already present in the room."),
    "removed_from_room": (
        RoomActionForbidden,
        "A moderator removed this user; they cannot rejoin this room.",
    ),
    "unknown_participant": (RoomTargetNotFound, "The target user is not present in the room."),
    "cannot_target_self": (
        RoomActionForbidden,
        "This action acts on someone else (use step_down / leave for oneself).",
    ),
    "not_a_moderator": (RoomActionForbidden, "Only the host or a co-host may do this."),
    "host_only": (RoomActionForbidden, "Only the host may do this."),
    "cannot_moderate_host": (RoomActionForbidden, "Nobody but the host acts on the host."),
    "cannot_moderate_cohost": (
        RoomActionForbidden,
        "A co-host cannot act on another co-host; only the host can.",
    ),
    "cannot_unmute_others": (
        RoomActionForbidden,
        "Only the speakers themselves may unmute their microphone.",
    ),
    "stage_full": (RoomStateConflict, "The stage holds its maximum number of people."),
    "room_full": (RoomStateConflict, "The room holds its maximum number of participants."),
    "too_many_cohosts": (RoomStateConflict, "The room has its maximum number of co-hosts."),
    "not_a_listener": (RoomStateConflict, "The user is already on stage."),
    "not_on_stage": (RoomStateConflict, "The user is not on stage."),
    "hand_not_raised": (
        RoomStateConflict,
        "bring_up needs a raised hand; invite a listener whose hand is down.",
    ),
    "already_invited": (RoomStateConflict, "The listener already has a pending invitation."),
    "no_invitation": (RoomStateConflict, "There is no pending invitation to answer."),
    "host_cannot_step_down": (
        RoomStateConflict,
        "The host cannot step down or leave the stage; transfer_host first.",
    ),
    "already_cohost": (RoomStateConflict, "The user is already a co-host."),
    "not_a_cohost": (RoomStateConflict, "The user is not a co-host."),
    "not_recording": (RoomStateConflict, "Markers can only be added while recording."),
    "invalid_display_name": (
        RoomActionInvalid,
        "A display name is 1 to 64 printable characters.",
    ),
    "invalid_marker_title": (
        RoomActionInvalid,
        "A marker title is 1 to max_marker_title printable characters.",
    ),
}


def rule_error(code: str, detail: str | None = None) -> RoomRuleError:
    """The typed error for ``code`` (a key of :data:`RULE_CODES`), with an optional detail."""
    cls, meaning = RULE_CODES[code]
    return cls(code, f"{meaning} ({detail})" if detail else meaning)

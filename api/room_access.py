"""Who may see, end, invite to and join a room: pure decisions over plain values.

The room routes load a :class:`RoomView` and the caller's :class:`MembershipView` from the
database, ask these functions, and apply the answer. Refusals are typed errors with stable
codes (docs/api.md); the room rule codes (``room_ended``, ``removed_from_room``,
``host_only``) are the same ones the live plane uses (core.rooms.errors).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.errors import Conflict, NotFound
from core.rooms import Role, rule_error

#: Statuses in which a room is listed and can be joined.
OPEN_STATUSES = ("live", "scheduled")


@dataclass(frozen=True, slots=True)
class RoomView:
    """What the decisions need to know about a room."""

    id: str
    host_id: str
    status: str
    is_private: bool


@dataclass(frozen=True, slots=True)
class MembershipView:
    """A user's row in ``room_memberships`` (``role`` is the invited role)."""

    role: str
    invited: bool
    removed: bool


def initial_status(scheduled_start: datetime | None, now: datetime) -> str:
    """``scheduled`` when the start lies in the future, else ``live``."""
    return "scheduled" if scheduled_start is not None and scheduled_start > now else "live"


def can_view(room: RoomView, membership: MembershipView | None, viewer_id: str | None) -> bool:
    """Public rooms are visible to everyone; private ones to the host and current members."""
    if not room.is_private or viewer_id == room.host_id:
        return True
    return membership is not None and not membership.removed


def ensure_visible(
    room: RoomView, membership: MembershipView | None, viewer_id: str | None
) -> None:
    """Raise NotFound (``room_not_found``) for outsiders: a private room's existence is secret."""
    if not can_view(room, membership, viewer_id):
        raise room_not_found(room.id)


def room_not_found(room_id: str) -> NotFound:
    """The one error for a room that does not exist or is hidden from the caller."""
    return NotFound(f"no room {room_id!r} (or it is private)", code="room_not_found")


def ensure_host(room: RoomView, user_id: str) -> None:
    """Raise Forbidden (``host_only``) unless ``user_id`` hosts the room."""
    if user_id != room.host_id:
        raise rule_error("host_only")


def ensure_endable(room: RoomView, user_id: str) -> None:
    """The host may end a room that has not ended yet (``host_only`` / ``room_ended``)."""
    ensure_host(room, user_id)
    if room.status == "ended":
        raise rule_error("room_ended")


def ensure_can_invite(room: RoomView, user_id: str, invitee_id: str) -> None:
    """The host invites others to a room that has not ended."""
    ensure_host(room, user_id)
    if room.status == "ended":
        raise rule_error("room_ended")
    if invitee_id == room.host_id:
        raise Conflict("the host is already in the room", code="already_host")


def join_role(room: RoomView, membership: MembershipView | None, user_id: str) -> Role:
    """The role a join token carries for ``user_id``, or the reason they may not join.

    host → host; an invited co-host → cohost; everyone else → listener (they reach the stage
    in the room by raising a hand). Refusals, in order: a private room the user cannot see →
    ``room_not_found`` (404); removed → ``removed_from_room`` (403); ended or interrupted →
    ``room_ended`` (409); scheduled and not the host → ``room_not_started`` (409).
    """
    if user_id == room.host_id:
        role = Role.HOST
    elif membership is not None and membership.removed:
        raise rule_error("removed_from_room")
    else:
        ensure_visible(room, membership, user_id)
        invited_cohost = (
            membership is not None and membership.invited and membership.role == "cohost"
        )
        role = Role.COHOST if invited_cohost else Role.LISTENER
    if room.status not in OPEN_STATUSES:
        raise rule_error("room_ended")
    if room.status == "scheduled" and role is not Role.HOST:
        raise Conflict(
            "the room has not started yet; its host starts it by joining",
            code="room_not_started",
        )
    return role


def starts_room(room: RoomView, role: Role) -> bool:
    """Whether handing ``role`` a join token turns a scheduled room live (its host arrives)."""
    return room.status == "scheduled" and role is Role.HOST

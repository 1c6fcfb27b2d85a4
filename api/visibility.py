"""Which rooms a caller may see, as a SQL condition for list queries.

The per-room decision (``api.room_access.can_view``) is pure; list routes (rooms, replays) need
the same rule inside a query: public rooms, plus private ones the caller hosts or was invited to
and not removed from.
"""

from __future__ import annotations

import sqlalchemy as sa

from core.adapters.db.models import Room, RoomMembership, User


def rooms_visible_to(user: User | None) -> sa.ColumnElement[bool]:
    """A condition on ``Room`` true for the rooms ``user`` (None: anonymous) may see."""
    visible: sa.ColumnElement[bool] = Room.is_private.is_(False)
    if user is None:
        return visible
    member = (
        sa.select(RoomMembership.id)
        .where(
            RoomMembership.room_id == Room.id,
            RoomMembership.user_id == user.id,
            RoomMembership.removed.is_(False),
        )
        .exists()
    )
    return sa.or_(visible, Room.host_id == user.id, member)

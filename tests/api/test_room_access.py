"""The pure room access decisions, case by case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.room_access import (
    MembershipView,
    RoomView,
    can_view,
    ensure_can_invite,
    ensure_endable,
    initial_status,
    join_role,
    starts_room,
)
from core.errors import Conflict, Forbidden, NotFound
from core.rooms import Role

HOST = "h"
PUBLIC = RoomView("r", HOST, "live", is_private=False)
PRIVATE = RoomView("r", HOST, "live", is_private=True)
INVITED = MembershipView("listener", invited=True, removed=False)
COHOST = MembershipView("cohost", invited=True, removed=False)
REMOVED = MembershipView("cohost", invited=True, removed=True)


def test_initial_status() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert initial_status(None, now) == "live"
    assert initial_status(now, now) == "live"
    assert initial_status(now - timedelta(seconds=1), now) == "live"
    assert initial_status(now + timedelta(seconds=1), now) == "scheduled"


@pytest.mark.parametrize(
    ("room", "membership", "viewer", "visible"),
    [
        (PUBLIC, None, None, True),
        (PUBLIC, REMOVED, "u", True),
        (PRIVATE, None, None, False),
        (PRIVATE, None, "u", False),
        (PRIVATE, None, HOST, True),
        (PRIVATE, INVITED, "u", True),
        (PRIVATE, REMOVED, "u", False),
    ],
)
def test_can_view(
    room: RoomView, membership: MembershipView | None, viewer: str | None, visible: bool
) -> None:
    assert can_view(room, membership, viewer) is visible


@pytest.mark.parametrize(
    ("room", "membership", "user", "role"),
    [
        (PUBLIC, None, HOST, Role.HOST),
        (PRIVATE, None, HOST, Role.HOST),
        (PUBLIC, None, "u", Role.LISTENER),
        (PRIVATE, INVITED, "u", Role.LISTENER),
        (PRIVATE, COHOST, "u", Role.COHOST),
        (PUBLIC, MembershipView("cohost", invited=False, removed=False), "u", Role.LISTENER),
        (PUBLIC, MembershipView("speaker", invited=True, removed=False), "u", Role.LISTENER),
    ],
)
def test_join_role(
    room: RoomView, membership: MembershipView | None, user: str, role: Role
) -> None:
    assert join_role(room, membership, user) is role


def test_join_refusals_carry_stable_codes() -> None:
    with pytest.raises(NotFound) as hidden:
        join_role(PRIVATE, None, "u")
    assert hidden.value.code == "room_not_found"
    for room in (PUBLIC, PRIVATE):
        with pytest.raises(Forbidden) as removed:
            join_role(room, REMOVED, "u")
        assert removed.value.code == "removed_from_room"
    for status in ("ended", "interrupted"):
        with pytest.raises(Conflict) as ended:
            join_role(RoomView("r", HOST, status, False), None, HOST)
        assert ended.value.code == "room_ended"
    scheduled = RoomView("r", HOST, "scheduled", False)
    with pytest.raises(Conflict) as early:
        join_role(scheduled, COHOST, "u")
    assert early.value.code == "room_not_started"
    assert join_role(scheduled, None, HOST) is Role.HOST
    assert starts_room(scheduled, Role.HOST) and not starts_room(PUBLIC, Role.HOST)


def test_end_and_invite_are_for_the_host() -> None:
    ensure_endable(PUBLIC, HOST)
    with pytest.raises(Forbidden) as not_host:
        ensure_endable(PUBLIC, "u")
    assert not_host.value.code == "host_only"
    with pytest.raises(Conflict) as ended:
        ensure_endable(RoomView("r", HOST, "ended", False), HOST)
    assert ended.value.code == "room_ended"
    ensure_can_invite(PRIVATE, HOST, "u")
    with pytest.raises(Conflict) as self_invite:
        ensure_can_invite(PRIVATE, HOST, HOST)
    assert self_invite.value.code == "already_host"
    with pytest.raises(Forbidden):
        ensure_can_invite(PRIVATE, "u", "v")

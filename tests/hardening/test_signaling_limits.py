"""Live-side limits: hand raising per participant, the stage cap and the room size cap.

The bucket maths are pure and tested on their own clock; the rest runs over real signaling
sockets on an in-process live node (tests/hardening/signaling_world.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import RoomRuleError
from core.protocol import CloseCode
from core.rooms import Join, Leave, Role, RoomPolicy, apply, open_room
from core.settings import Settings
from live.rate_limit import per_minute, retry_after, take
from tests.hardening.signaling_world import (
    LiveWorld,
    close_code_of,
    drain,
    join_token,
    live_settings,
    live_world,
    request,
)

HANDS = 3


@pytest.fixture
def world(settings: Settings) -> Iterator[LiveWorld]:
    limited = live_settings(
        settings,
        hand_raises_per_minute=HANDS,
        max_stage=2,
        max_cohosts=1,
        max_participants=4,
        host_grace_seconds=30.0,
    )
    with live_world(limited) as world:
        yield world


# -- the pure limit ------------------------------------------------------------------------------


def test_per_minute_allows_a_burst_then_one_every_interval() -> None:
    bucket = per_minute(3, now=100.0)
    allowed = []
    for _ in range(4):
        bucket, ok = take(bucket, 100.0)
        allowed.append(ok)
    assert allowed == [True, True, True, False]
    assert retry_after(bucket) == pytest.approx(20.0)
    bucket, ok = take(bucket, 119.0)
    assert not ok
    bucket, ok = take(bucket, 120.5)
    assert ok and retry_after(bucket) > 0


@given(
    count=st.integers(1, 60),
    gaps=st.lists(st.floats(0.0, 30.0, allow_nan=False), min_size=1, max_size=200),
)
def test_never_more_than_the_limit_in_any_minute(count: int, gaps: list[float]) -> None:
    """Whatever the timing, no sliding 60 s window holds more than ``count`` + its refill."""
    bucket, now, granted = per_minute(count, 0.0), 0.0, []
    for gap in gaps:
        now += gap
        bucket, ok = take(bucket, now)
        if ok:
            granted.append(now)
    for i, start in enumerate(granted):
        in_window = sum(1 for t in granted[i:] if t < start + 60.0)
        assert in_window <= 2 * count  # burst + one minute of refill


# -- over signaling ------------------------------------------------------------------------------


def test_raising_hands_past_the_limit_is_rate_limited_and_changes_nothing(
    world: LiveWorld,
) -> None:
    host, _ = world.join("r", "hana", Role.HOST)
    lee, _ = world.join("r", "lee")
    for _ in range(HANDS):
        assert request(lee, "raise_hand").kind == "ack"
        assert request(lee, "lower_hand").kind == "ack"
    drain(host)
    refused = request(lee, "raise_hand", request_id="too-many")
    assert (refused.kind, refused.code) == ("error", "rate_limited")
    assert refused.events_before == []
    assert [m for m in drain(host) if m["type"] == "hand_raised"] == []
    # The limit is the participant's, not the socket's: reconnecting does not refill it.
    lee_again, _ = world.join("r", "lee")
    assert close_code_of(lee) == CloseCode.REPLACED
    assert request(lee_again, "raise_hand").code == "rate_limited"
    # Nobody else is limited by lee's hand, and the socket stays usable.
    lou, _ = world.join("r", "lou")
    assert request(lou, "raise_hand").kind == "ack"
    assert request(lee_again, "ping").kind == "pong"


def test_the_stage_cap_refuses_one_more_speaker(world: LiveWorld) -> None:
    host, _ = world.join("r", "hana", Role.HOST)
    sam, _ = world.join("r", "sam")
    lee, _ = world.join("r", "lee")
    for user in (sam, lee):
        assert request(user, "raise_hand").kind == "ack"
    assert request(host, "bring_up", target="sam").kind == "ack"
    full = request(host, "bring_up", target="lee")
    assert (full.kind, full.code) == ("error", "stage_full")
    assert request(host, "invite", target="lee").code == "stage_full"
    assert request(host, "make_cohost", target="lee").code == "stage_full"
    assert request(sam, "step_down").kind == "ack"
    assert request(host, "bring_up", target="lee").kind == "ack"


def test_a_full_room_closes_the_next_join_with_4013_but_lets_the_host_back(
    world: LiveWorld,
) -> None:
    host_token = join_token(world.settings, "r", "hana", Role.HOST)
    host = world.open("r", host_token)
    assert host.receive_json()["type"] == "snapshot"
    others = [world.join("r", user)[0] for user in ("ann", "bob", "cy")]
    closed = world.refused("r", join_token(world.settings, "r", "dee"))
    assert (closed.code, closed.reason) == (CloseCode.ROOM_FULL, "room_full")
    # Those inside are untouched; a seat freed is a seat to take.
    assert request(others[0], "leave").kind == "ack"
    dee, snapshot = world.join("r", "dee")
    assert len(snapshot["participants"]) == 4
    # The host leaves (grace period), the room fills up again, the host still gets back in.
    assert request(host, "leave").kind == "ack"
    eve, _ = world.join("r", "eve")
    back, snapshot = world.join("r", "hana", Role.HOST)
    assert snapshot["host_id"] == "hana" and len(snapshot["participants"]) == 5
    assert request(back, "ping").kind == "pong"
    assert request(eve, "ping").kind == "pong" and request(dee, "ping").kind == "pong"


def test_room_cap_rule_is_pure_and_exempts_the_host() -> None:
    state = open_room(
        "r", host_id="h", host_name="H", now=0.0, policy=RoomPolicy(max_participants=2)
    )
    state, _ = apply(state, "a", Join("A"), 1.0)
    with pytest.raises(RoomRuleError) as full:
        apply(state, "b", Join("B"), 2.0)
    assert full.value.code == "room_full"
    state, _ = apply(state, "h", Leave(), 3.0)
    state, _ = apply(state, "b", Join("B"), 4.0)
    state, _ = apply(state, "h", Join("H"), 5.0)
    assert [p.user_id for p in state.participants] == ["a", "b", "h"]

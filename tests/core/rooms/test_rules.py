"""Every room transition, one test each: the resulting state and the exact events."""

from __future__ import annotations

import pytest

from core.rooms import (
    AcceptInvite,
    AddMarker,
    BringUp,
    DeclineInvite,
    EndReason,
    EndRoom,
    Invite,
    Join,
    Leave,
    LowerHand,
    MakeCohost,
    Marker,
    MoveToAudience,
    Mute,
    RaiseHand,
    Remove,
    RevokeCohost,
    Role,
    RoomPolicy,
    RoomState,
    RoomStatus,
    SetRecording,
    StepDown,
    TransferHost,
    apply,
    may_publish,
    may_record,
    open_room,
    tick,
)
from core.rooms.events import (
    HandLowered,
    HandRaised,
    Invited,
    InviteDeclined,
    MarkerAdded,
    Muted,
    ParticipantJoined,
    ParticipantLeft,
    RecordingChanged,
    RoleChanged,
    RoomEnded,
)
from tests.core.rooms.support import populated, run


def role(state: RoomState, user_id: str) -> Role:
    person = state.get(user_id)
    assert person is not None, f"{user_id} is not present"
    return person.role


@pytest.fixture
def room() -> RoomState:
    return populated()


def test_open_room_has_its_host_on_stage() -> None:
    state = open_room("r", host_id="h", host_name="Hana", now=5.0)
    assert state.live and state.host_id == "h" and role(state, "h") is Role.HOST
    assert [p.user_id for p in state.stage] == ["h"] and not state.recording


def test_populated_fixture(room: RoomState) -> None:
    assert [(p.user_id, p.role) for p in room.participants] == [
        ("h", Role.HOST),
        ("c", Role.COHOST),
        ("s", Role.SPEAKER),
        ("l", Role.LISTENER),
        ("r", Role.LISTENER),
    ]
    assert [p.user_id for p in room.raised_hands] == ["r"]


def test_join_as_listener(room: RoomState) -> None:
    state, events = apply(room, "n", Join("  Nia "), 2.0)
    assert role(state, "n") is Role.LISTENER and state.get("n").display_name == "Nia"  # type: ignore[union-attr]
    assert events == [ParticipantJoined("n", "Nia", Role.LISTENER)]
    assert room.get("n") is None, "the old state is untouched"


def test_raise_and_lower_hand(room: RoomState) -> None:
    state, events = apply(room, "l", RaiseHand(), 2.0)
    assert state.get("l").hand_raised and events == [HandRaised("l")]  # type: ignore[union-attr]
    state, events = apply(state, "l", LowerHand(), 3.0)
    assert not state.get("l").hand_raised and events == [HandLowered("l")]  # type: ignore[union-attr]


def test_repeated_hand_changes_are_no_ops(room: RoomState) -> None:
    assert apply(room, "r", RaiseHand(), 2.0) == (room, [])
    assert apply(room, "l", LowerHand(), 2.0) == (room, [])


def test_invite_then_accept(room: RoomState) -> None:
    state, events = apply(room, "c", Invite("l"), 2.0)
    assert state.invited == {"l"} and events == [Invited("l", "c")]
    state, events = apply(state, "l", AcceptInvite(), 3.0)
    assert role(state, "l") is Role.SPEAKER and state.invited == frozenset()
    assert events == [RoleChanged("l", Role.SPEAKER, Role.LISTENER, "l")]
    assert may_publish(state, "l")


def test_invite_then_decline(room: RoomState) -> None:
    state, _ = apply(room, "h", Invite("l"), 2.0)
    state, events = apply(state, "l", DeclineInvite(), 3.0)
    assert role(state, "l") is Role.LISTENER and state.invited == frozenset()
    assert events == [InviteDeclined("l")]


def test_bring_up_a_raised_hand(room: RoomState) -> None:
    state, events = apply(room, "c", BringUp("r"), 2.0)
    assert role(state, "r") is Role.SPEAKER and not state.get("r").hand_raised  # type: ignore[union-attr]
    assert events == [RoleChanged("r", Role.SPEAKER, Role.LISTENER, "c")]


def test_speaker_steps_down(room: RoomState) -> None:
    state, events = apply(room, "s", StepDown(), 2.0)
    assert role(state, "s") is Role.LISTENER and not may_publish(state, "s")
    assert events == [RoleChanged("s", Role.LISTENER, Role.SPEAKER, "s")]


def test_cohost_steps_down_to_the_audience(room: RoomState) -> None:
    state, events = apply(room, "c", StepDown(), 2.0)
    assert role(state, "c") is Role.LISTENER and state.cohosts == ()
    assert events == [RoleChanged("c", Role.LISTENER, Role.COHOST, "c")]


def test_moderator_mutes_a_speaker_who_unmutes_themselves(room: RoomState) -> None:
    state, events = apply(room, "c", Mute("s"), 2.0)
    assert state.get("s").muted and role(state, "s") is Role.SPEAKER  # type: ignore[union-attr]
    assert events == [Muted("s", True, "c")]
    assert not may_publish(state, "s"), "a muted speaker's audio is not forwarded"
    assert apply(state, "h", Mute("s"), 3.0) == (state, []), "muting twice changes nothing"
    state, events = apply(state, "s", Mute("s", muted=False), 4.0)
    assert events == [Muted("s", False, "s")] and may_publish(state, "s")


def test_host_mutes_a_cohost_and_anyone_mutes_themselves(room: RoomState) -> None:
    state, events = apply(room, "h", Mute("c"), 2.0)
    assert events == [Muted("c", True, "h")]
    state, events = apply(state, "h", Mute("h"), 3.0)
    assert events == [Muted("h", True, "h")] and not may_publish(state, "h")


def test_move_to_audience_clears_the_mute(room: RoomState) -> None:
    state = run(room, ("h", Mute("s")))
    state, events = apply(state, "c", MoveToAudience("s"), 2.0)
    assert role(state, "s") is Role.LISTENER and not state.get("s").muted  # type: ignore[union-attr]
    assert events == [RoleChanged("s", Role.LISTENER, Role.SPEAKER, "c")]


def test_host_moves_a_cohost_to_the_audience(room: RoomState) -> None:
    state, events = apply(room, "h", MoveToAudience("c"), 2.0)
    assert role(state, "c") is Role.LISTENER
    assert events == [RoleChanged("c", Role.LISTENER, Role.COHOST, "h")]


def test_remove_bans_from_the_room(room: RoomState) -> None:
    state = run(room, ("h", Invite("l")))
    state, events = apply(state, "c", Remove("l"), 2.0)
    assert "l" not in state and state.removed == {"l"} and state.invited == frozenset()
    assert events == [ParticipantLeft("l", "removed", by="c")]


def test_make_cohost_from_the_audience_and_revoke(room: RoomState) -> None:
    state, events = apply(room, "h", MakeCohost("l"), 2.0)
    assert role(state, "l") is Role.COHOST and len(state.cohosts) == 2
    assert events == [RoleChanged("l", Role.COHOST, Role.LISTENER, "h")]
    state, events = apply(state, "h", RevokeCohost("l"), 3.0)
    assert role(state, "l") is Role.SPEAKER, "co-host taken back: still on stage"
    assert events == [RoleChanged("l", Role.SPEAKER, Role.COHOST, "h")]


def test_make_cohost_keeps_a_speakers_mute(room: RoomState) -> None:
    state = run(room, ("s", Mute("s")), ("h", MakeCohost("s")))
    assert role(state, "s") is Role.COHOST and state.get("s").muted  # type: ignore[union-attr]


def test_transfer_host_to_a_speaker(room: RoomState) -> None:
    state, events = apply(room, "h", TransferHost("s"), 2.0)
    assert state.host_id == "s" and role(state, "s") is Role.HOST
    assert role(state, "h") is Role.COHOST, "the old host becomes a co-host when one fits"
    assert events == [
        RoleChanged("s", Role.HOST, Role.SPEAKER, "h"),
        RoleChanged("h", Role.COHOST, Role.HOST, "h"),
    ]


def test_transfer_host_with_cohosts_full_leaves_old_host_a_speaker() -> None:
    state = run(populated(), ("h", MakeCohost("s")))
    state, events = apply(state, "h", TransferHost("l"), 2.0)
    assert state.host_id == "l" and role(state, "h") is Role.SPEAKER
    assert events[-1] == RoleChanged("h", Role.SPEAKER, Role.HOST, "h")


def test_transfer_host_to_a_cohost_takes_their_seat(room: RoomState) -> None:
    state = run(room, ("h", MakeCohost("s")), ("h", TransferHost("c")))
    assert state.host_id == "c" and role(state, "h") is Role.COHOST and len(state.cohosts) == 2


def test_recording_on_off_and_markers(room: RoomState) -> None:
    assert not may_record(room, "s")
    state, events = apply(room, "h", SetRecording(True), 2.0)
    assert state.recording and events == [RecordingChanged(True, "h")]
    assert may_record(state, "s") and not may_record(state, "l")
    assert apply(state, "h", SetRecording(True), 2.5) == (state, [])
    state, events = apply(state, "h", AddMarker(" Q&A "), 3.0)
    assert state.markers == (Marker(3.0, "Q&A", "h"),)
    assert events == [MarkerAdded(3.0, "Q&A", "h")]
    state, events = apply(state, "h", SetRecording(False), 4.0)
    assert not state.recording and events == [RecordingChanged(False, "h")]
    assert state.markers == (Marker(3.0, "Q&A", "h"),), "markers are kept"


def test_host_ends_the_room(room: RoomState) -> None:
    state = run(room, ("h", SetRecording(True)))
    state, events = apply(state, "h", EndRoom(), 5.0)
    assert state.status is RoomStatus.ENDED and state.ended_reason is EndReason.ENDED_BY_HOST
    assert state.participants == () and not state.recording
    assert events == [RecordingChanged(False, None), RoomEnded(EndReason.ENDED_BY_HOST)]
    assert not may_publish(state, "s")


def test_listener_leaves(room: RoomState) -> None:
    state = run(room, ("h", Invite("l")))
    state, events = apply(state, "l", Leave(), 2.0)
    assert "l" not in state and state.invited == frozenset()
    assert events == [ParticipantLeft("l", "left")]


def test_leaving_host_hands_over_to_the_longest_serving_cohost(room: RoomState) -> None:
    state = run(room, ("h", MakeCohost("l")), now=10.0)  # l is co-host since 10, c since ~1
    state, events = apply(state, "h", Leave(), 20.0)
    assert state.host_id == "c" and role(state, "c") is Role.HOST and state.host_deadline is None
    assert events == [ParticipantLeft("h", "left"), RoleChanged("c", Role.HOST, Role.COHOST, None)]
    state, events = apply(state, "h", Join("Hana"), 21.0)
    assert role(state, "h") is Role.LISTENER, "the old host comes back as a listener"


def test_host_leaving_without_cohost_starts_the_grace_period() -> None:
    state = run(populated(), ("h", MoveToAudience("c")))
    state, events = apply(state, "h", Leave(), 10.0)
    assert state.live and state.host_deadline == 70.0 and state.host is None
    assert events == [ParticipantLeft("h", "left")]
    assert tick(state, 69.9) == (state, [])
    ended, events = tick(state, 70.0)
    assert ended.status is RoomStatus.ENDED and events == [RoomEnded(EndReason.HOST_LEFT)]
    assert tick(ended, 100.0) == (ended, []), "ticking an ended room changes nothing"


def test_host_coming_back_in_the_grace_period_takes_the_room_back() -> None:
    state = run(populated(), ("h", MoveToAudience("c")), ("h", Leave()))
    state, events = apply(state, "h", Join("Hana"), 30.0)
    assert role(state, "h") is Role.HOST and state.host_deadline is None
    assert events == [ParticipantJoined("h", "Hana", Role.HOST)]
    assert tick(state, 1000.0) == (state, [])


def test_zero_grace_ends_the_room_at_once() -> None:
    state = open_room(
        "r", host_id="h", host_name="H", now=0.0, policy=RoomPolicy(host_grace_seconds=0)
    )
    state, events = apply(state, "h", Leave(), 1.0)
    assert state.status is RoomStatus.ENDED
    assert events == [ParticipantLeft("h", "left"), RoomEnded(EndReason.HOST_LEFT)]


def test_accept_and_bring_up_fill_the_stage_up_to_the_cap() -> None:
    state = run(populated(RoomPolicy(max_stage=4)), ("h", Invite("l")), ("l", AcceptInvite()))
    assert len(state.stage) == 4

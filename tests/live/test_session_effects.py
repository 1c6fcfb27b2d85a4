"""What a room session does after events: a golden table of events → effects."""

from __future__ import annotations

from core.protocol import CloseCode
from core.rooms import EndReason, Role
from core.rooms.events import (
    HandRaised,
    MarkerAdded,
    Muted,
    ParticipantJoined,
    ParticipantLeft,
    RecordingChanged,
    RoleChanged,
    RoomEnded,
)
from live.session_effects import (
    CloseConnection,
    DropMedia,
    EndRoom,
    SetMediaRole,
    SetMuted,
    effects_for,
    media_role,
)


def test_media_role_follows_the_stage() -> None:
    assert [media_role(role) for role in Role] == ["speaker", "speaker", "speaker", "listener"]


def test_events_map_to_effects_in_order() -> None:
    events = [
        ParticipantJoined("ann", "Ann", Role.LISTENER),
        HandRaised("ann"),
        RoleChanged("ann", Role.SPEAKER, Role.LISTENER, by="hana"),
        RoleChanged("ann", Role.COHOST, Role.SPEAKER, by="hana"),  # stays on stage: no media
        Muted("ann", True, by="hana"),
        RoleChanged("bob", Role.LISTENER, Role.SPEAKER, by="hana"),
        ParticipantLeft("bob", "removed", by="hana"),
        ParticipantLeft("cat", "left"),
        RecordingChanged(True, "hana"),
        MarkerAdded(1.0, "Intro", "hana"),
        RoomEnded(EndReason.ENDED_BY_HOST),
    ]
    assert effects_for(events) == [
        SetMediaRole("ann", "speaker"),
        SetMuted("ann", True),
        SetMediaRole("bob", "listener"),
        DropMedia("bob"),
        CloseConnection("bob", CloseCode.FORBIDDEN),
        DropMedia("cat"),
        CloseConnection("cat", CloseCode.NORMAL),
        EndRoom(),
    ]


def test_no_events_no_effects() -> None:
    assert effects_for([]) == []

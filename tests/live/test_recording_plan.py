"""live.recording.plan: what the recorder does as the room's rules change its state (pure)."""

from __future__ import annotations

from core.rooms import (
    AcceptInvite,
    AddMarker,
    Command,
    EndRoom,
    Invite,
    Join,
    Leave,
    Mute,
    RoomState,
    SetRecording,
    StepDown,
    apply,
    open_room,
)
from live.recording import (
    EndTrack,
    Mark,
    NameTrack,
    RecordingView,
    StageOff,
    StageOn,
    Start,
    Stop,
    plan,
)


class Room:
    """Drives the pure rules and the plan together, as RoomSession + RoomRecorder do."""

    def __init__(self) -> None:
        self.state: RoomState = open_room("r", host_id="h", host_name="Hana", now=0.0)
        self.view = RecordingView()
        self.now = 0.0

    def do(self, actor: str, command: Command) -> list[object]:
        self.now += 1.0
        self.state, events = apply(self.state, actor, command, self.now)
        self.view, actions = plan(self.view, self.state, events)
        return list(actions)


def test_nothing_happens_while_recording_is_off() -> None:
    room = Room()
    assert room.do("s", Join("Sam")) == []
    room.do("h", Invite("s"))
    assert room.do("s", AcceptInvite()) == []


def test_start_records_the_stage_and_stop_finishes_it() -> None:
    room = Room()
    room.do("s", Join("Sam"))
    room.do("h", Invite("s"))
    room.do("s", AcceptInvite())
    room.do("l", Join("Lee"))
    assert room.do("h", SetRecording(True)) == [
        Start(),
        StageOn("h"),
        NameTrack("h", "Hana"),
        StageOn("s"),
        NameTrack("s", "Sam"),
    ]
    assert room.view.recorded == {"h", "s"}  # the listener is never recorded
    assert room.do("h", SetRecording(False)) == [
        EndTrack("h"),
        EndTrack("s"),
        StageOff("h"),
        StageOff("s"),
        Stop(),
    ]


def test_late_joiner_leaving_rejoining_and_muting() -> None:
    room = Room()
    room.do("h", SetRecording(True))
    room.do("s", Join("Sam"))
    room.do("h", Invite("s"))
    assert room.do("s", AcceptInvite()) == [StageOn("s"), NameTrack("s", "Sam")]
    # Muted: stays on stage, but their segment is closed until they are heard again.
    assert room.do("h", Mute("s")) == [EndTrack("s")]
    assert room.view.stage == {"h", "s"} and room.view.recorded == {"h"}
    assert room.do("s", Mute("s", muted=False)) == []
    assert room.view.recorded == {"h", "s"}
    assert room.do("s", StepDown()) == [StageOff("s"), EndTrack("s")]
    room.do("h", Invite("s"))
    assert room.do("s", AcceptInvite()) == [StageOn("s"), NameTrack("s", "Sam")]
    assert room.do("s", Leave()) == [StageOff("s"), EndTrack("s")]


def test_markers_are_kept_with_their_time() -> None:
    room = Room()
    room.do("h", SetRecording(True))
    assert room.do("h", AddMarker("Intro")) == [Mark(room.now, "Intro")]


def test_the_room_ending_stops_the_recording() -> None:
    room = Room()
    room.do("h", SetRecording(True))
    assert room.do("h", EndRoom()) == [EndTrack("h"), StageOff("h"), Stop()]
    assert room.view == RecordingView()

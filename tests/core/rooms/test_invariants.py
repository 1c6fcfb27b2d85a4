"""Property test: random command sequences never break the room's invariants, never raise
anything but a RoomRuleError, and a client that applies the events to its first snapshot
always ends up with the server's view."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import RoomRuleError
from core.protocol import snapshot_for
from core.rooms import (
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
    Role,
    RoomPolicy,
    RoomState,
    SetRecording,
    StepDown,
    TransferHost,
    apply,
    open_room,
    tick,
)
from core.rooms import events as ev

USERS = ["h", "a", "b", "c", "d", "e", "f"]


@functools.cache
def people(present: tuple[str, ...]) -> st.SearchStrategy[str]:
    """A present user half the time (so commands mostly apply), else anyone."""
    anyone = st.sampled_from(USERS)
    return st.one_of(st.sampled_from(present), anyone) if present else anyone


@functools.cache
def commands(present: tuple[str, ...], hands: tuple[str, ...]) -> st.SearchStrategy[Command]:
    """Any command, aimed mostly at present users (raised hands for bring_up); EndRoom rare
    so rooms live long."""
    targets = people(present)
    return st.one_of(
        st.builds(Join, st.sampled_from(["Ann", "Bo", "Ann", ""])),
        st.sampled_from(
            [Leave(), RaiseHand(), RaiseHand(), LowerHand(), AcceptInvite(), AcceptInvite()]
            + [DeclineInvite(), StepDown(), SetRecording(True), SetRecording(False)]
        ),
        st.builds(Invite, targets),
        st.builds(BringUp, people(hands or present)),
        st.builds(Mute, targets, st.booleans()),
        st.builds(MoveToAudience, targets),
        st.builds(Remove, targets),
        st.builds(MakeCohost, targets),
        st.builds(RevokeCohost, targets),
        st.builds(TransferHost, targets),
        st.builds(AddMarker, st.sampled_from(["intro", ""])),
        st.sampled_from([EndRoom()] + [RaiseHand()] * 9),
    )


def likely_actors(state: RoomState, cmd: Command) -> tuple[str, ...]:
    """Who would plausibly send ``cmd``, so that most commands are accepted."""
    if isinstance(cmd, (Invite, BringUp, Mute, MoveToAudience, Remove)):
        return tuple(p.user_id for p in state.participants if p.role.moderates)
    if isinstance(cmd, (MakeCohost, RevokeCohost, TransferHost, SetRecording, AddMarker, EndRoom)):
        return (state.host_id,)
    if isinstance(cmd, (AcceptInvite, DeclineInvite)):
        return tuple(sorted(state.invited))
    return ()


def check_invariants(state: RoomState) -> None:
    ids = {p.user_id for p in state.participants}
    if state.live:
        hosts = [p for p in state.participants if p.role is Role.HOST]
        if hosts:
            assert len(hosts) == 1 and hosts[0].user_id == state.host_id
            assert state.host_deadline is None
        else:
            assert state.host_deadline is not None and state.host_id not in ids
            assert not state.cohosts, "a co-host would have taken over"
    else:
        assert state.participants == () and not state.recording
    assert len(state.stage) <= state.policy.max_stage
    assert len(state.cohosts) <= state.policy.max_cohosts
    assert not (state.removed & ids), "removed users are never present"
    assert state.invited <= {p.user_id for p in state.audience}
    assert all(p.role is Role.LISTENER for p in state.raised_hands)
    assert all(p.role.on_stage for p in state.participants if p.muted)
    assert state.markers == () or state.markers[-1].title


@dataclass
class ClientView:
    """What a client reconstructs from a snapshot plus events (docs/protocol.md)."""

    host_id: str
    people: dict[str, tuple[str, bool, bool]] = field(default_factory=dict)
    invited: set[str] = field(default_factory=set)
    recording: bool = False

    def apply(self, event: ev.Event) -> None:
        match event:
            case ev.ParticipantJoined(user_id, _name, role):
                self.people[user_id] = (role.value, False, False)
            case ev.ParticipantLeft(user_id):
                del self.people[user_id]
                self.invited.discard(user_id)
            case ev.RoleChanged(user_id, role, previous, _by):
                muted = self.people[user_id][2] and role.on_stage and previous.on_stage
                self.people[user_id] = (role.value, False, muted)
                self.invited.discard(user_id)
                if role is Role.HOST:
                    self.host_id = user_id
            case ev.HandRaised(user_id) | ev.HandLowered(user_id):
                r, _hand, muted = self.people[user_id]
                self.people[user_id] = (r, isinstance(event, ev.HandRaised), muted)
            case ev.Invited(user_id):
                self.invited.add(user_id)
            case ev.InviteDeclined(user_id):
                self.invited.discard(user_id)
            case ev.Muted(user_id, muted):
                r, hand, _muted = self.people[user_id]
                self.people[user_id] = (r, hand, muted)
            case ev.RecordingChanged(on):
                self.recording = on
            case ev.RoomEnded():
                self.people.clear()
                self.invited.clear()

    def matches(self, state: RoomState) -> bool:
        snap = snapshot_for(state, "h")
        people = {p.user_id: (p.role, p.hand_raised, p.muted) for p in snap.participants}
        return (
            people == self.people
            and set(snap.invited) == self.invited
            and snap.recording == self.recording
            and snap.host_id == self.host_id
        )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    length=st.integers(0, 60),
    max_stage=st.integers(3, 6),
    max_cohosts=st.integers(0, 2),
)
def test_invariants_hold_under_random_commands(
    data: st.DataObject, length: int, max_stage: int, max_cohosts: int
) -> None:
    policy = RoomPolicy(max_stage=max_stage, max_cohosts=max_cohosts, host_grace_seconds=20.0)
    state = open_room("r", host_id="h", host_name="Hana", now=0.0, policy=policy)
    view = ClientView(host_id="h", people={"h": ("host", False, False)})
    # Most users start in the audience so that early commands have someone to act on.
    for user_id in USERS[1:-1]:
        state, events = apply(state, user_id, Join(user_id.upper()), 0.0)
        view.apply(events[0])
    now = 0.0
    for _ in range(length):
        present = tuple(p.user_id for p in state.participants)
        hands = tuple(p.user_id for p in state.raised_hands)
        cmd = data.draw(commands(present, hands))
        actor = data.draw(people(likely_actors(state, cmd) or present))
        now += data.draw(st.sampled_from([0.5, 1.0, 2.0, 25.0]))
        state, events = tick(state, now)
        for event in events:
            view.apply(event)
        try:
            state, events = apply(state, actor, cmd, now)
        except RoomRuleError as error:
            assert error.code, "every refusal has a stable code"
            continue
        for event in events:
            view.apply(event)
        check_invariants(state)
        assert view.matches(state), (cmd, events)

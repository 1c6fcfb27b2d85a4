"""Every action the rules refuse, as a table: the stable code, the error class, no state change."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RoomActionForbidden,
    RoomActionInvalid,
    RoomRuleError,
    RoomStateConflict,
    RoomTargetNotFound,
)
from core.rooms import (
    RULE_CODES,
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
    RoomPolicy,
    SetRecording,
    StepDown,
    TransferHost,
    apply,
    rule_error,
)
from tests.core.rooms.support import populated, run

# Room from tests/core/rooms/support.py: host h, co-host c, speaker s, listeners l and r (hand up).


@dataclass(frozen=True)
class Case:
    name: str
    actor: str
    command: Command
    code: str
    setup: tuple[tuple[str, Command], ...] = ()
    policy: RoomPolicy = field(default_factory=RoomPolicy)


CASES = [
    Case("listener inviting", "l", Invite("r"), "not_a_moderator"),
    Case("speaker inviting", "s", Invite("l"), "not_a_moderator"),
    Case("speaker removing the host", "s", Remove("h"), "not_a_moderator"),
    Case("co-host removing the host", "c", Remove("h"), "cannot_moderate_host"),
    Case("co-host muting the host", "c", Mute("h"), "cannot_moderate_host"),
    Case(
        "co-host moving the host to the audience", "c", MoveToAudience("h"), "cannot_moderate_host"
    ),
    Case(
        "co-host removing a co-host",
        "c",
        Remove("l"),
        "cannot_moderate_cohost",
        setup=(("h", MakeCohost("l")),),
    ),
    Case("listener bringing up", "l", BringUp("r"), "not_a_moderator"),
    Case("speaker muting", "s", Mute("c"), "not_a_moderator"),
    Case("listener moving to audience", "l", MoveToAudience("s"), "not_a_moderator"),
    Case(
        "moderator unmuting someone",
        "h",
        Mute("s", muted=False),
        "cannot_unmute_others",
        setup=(("s", Mute("s")),),
    ),
    Case("co-host making a co-host", "c", MakeCohost("l"), "host_only"),
    Case("co-host revoking a co-host", "c", RevokeCohost("c"), "host_only"),
    Case("co-host transferring host", "c", TransferHost("s"), "host_only"),
    Case("co-host recording", "c", SetRecording(True), "host_only"),
    Case("speaker adding a marker", "s", AddMarker("x"), "host_only"),
    Case("co-host ending the room", "c", EndRoom(), "host_only"),
    Case(
        "full stage: accept",
        "l",
        AcceptInvite(),
        "stage_full",
        setup=(("h", Invite("l")), ("h", BringUp("r"))),
        policy=RoomPolicy(max_stage=4),
    ),
    Case("full stage: bring up", "h", BringUp("r"), "stage_full", policy=RoomPolicy(max_stage=3)),
    Case("full stage: invite", "h", Invite("l"), "stage_full", policy=RoomPolicy(max_stage=3)),
    Case(
        "full stage: co-host from audience",
        "h",
        MakeCohost("l"),
        "stage_full",
        setup=(("h", RevokeCohost("c")),),
        policy=RoomPolicy(max_stage=3),
    ),
    Case(
        "full stage: host to a listener",
        "h",
        TransferHost("l"),
        "stage_full",
        policy=RoomPolicy(max_stage=3),
    ),
    Case("full room: join", "n", Join("Nia"), "room_full", policy=RoomPolicy(max_participants=5)),
    Case(
        "too many co-hosts",
        "h",
        MakeCohost("s"),
        "too_many_cohosts",
        policy=RoomPolicy(max_cohosts=1),
    ),
    Case("making a co-host twice", "h", MakeCohost("c"), "already_cohost"),
    Case("revoking a non-co-host", "h", RevokeCohost("s"), "not_a_cohost"),
    Case(
        "removed user rejoining", "l", Join("Lee"), "removed_from_room", setup=(("h", Remove("l")),)
    ),
    Case("removed user acting", "l", RaiseHand(), "removed_from_room", setup=(("h", Remove("l")),)),
    Case("joining twice", "l", Join("Lee"), "already_in_room"),
    Case("empty display name", "n", Join("   "), "invalid_display_name"),
    Case("overlong display name", "n", Join("x" * 65), "invalid_display_name"),
    Case("control characters in a name", "n", Join("a\nb"), "invalid_display_name"),
    Case("acting without joining", "n", RaiseHand(), "not_in_room"),
    Case("acting after leaving", "l", LowerHand(), "not_in_room", setup=(("l", Leave()),)),
    Case("acting in an ended room", "s", StepDown(), "room_ended", setup=(("h", EndRoom()),)),
    Case("joining an ended room", "n", Join("Nia"), "room_ended", setup=(("h", EndRoom()),)),
    Case("accepting an invite never made", "l", AcceptInvite(), "no_invitation"),
    Case("declining an invite never made", "l", DeclineInvite(), "no_invitation"),
    Case("inviting twice", "c", Invite("l"), "already_invited", setup=(("h", Invite("l")),)),
    Case("inviting a speaker", "h", Invite("s"), "not_a_listener"),
    Case("speaker raising a hand", "s", RaiseHand(), "not_a_listener"),
    Case("bringing up a speaker", "h", BringUp("s"), "not_a_listener"),
    Case("bringing up without a raised hand", "h", BringUp("l"), "hand_not_raised"),
    Case("listener stepping down", "l", StepDown(), "not_on_stage"),
    Case("host stepping down", "h", StepDown(), "host_cannot_step_down"),
    Case("muting a listener", "h", Mute("l"), "not_on_stage"),
    Case("listener muting themselves", "l", Mute("l"), "not_on_stage"),
    Case("moving a listener to the audience", "h", MoveToAudience("l"), "not_on_stage"),
    Case("inviting an unknown participant", "h", Invite("ghost"), "unknown_participant"),
    Case("removing an unknown participant", "c", Remove("ghost"), "unknown_participant"),
    Case("transferring host to nobody", "h", TransferHost("ghost"), "unknown_participant"),
    Case("host removing themselves", "h", Remove("h"), "cannot_target_self"),
    Case("host transferring to themselves", "h", TransferHost("h"), "cannot_target_self"),
    Case("co-host inviting themselves", "c", Invite("c"), "cannot_target_self"),
    Case("marker while not recording", "h", AddMarker("intro"), "not_recording"),
    Case(
        "empty marker title",
        "h",
        AddMarker("  "),
        "invalid_marker_title",
        setup=(("h", SetRecording(True)),),
    ),
    Case(
        "overlong marker title",
        "h",
        AddMarker("x" * 201),
        "invalid_marker_title",
        setup=(("h", SetRecording(True)),),
    ),
]

PARENT = {
    RoomActionForbidden: Forbidden,
    RoomStateConflict: Conflict,
    RoomTargetNotFound: NotFound,
    RoomActionInvalid: InvalidInput,
}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_forbidden_action(case: Case) -> None:
    state = run(populated(case.policy), *case.setup)
    with pytest.raises(RoomRuleError) as caught:
        apply(state, case.actor, case.command, 50.0)
    error = caught.value
    assert error.code == case.code, error.message
    expected_class, _meaning = RULE_CODES[case.code]
    assert type(error) is expected_class
    assert isinstance(error, PARENT[expected_class]), "maps onto the HTTP-level error tree"


def test_every_rule_code_is_exercised() -> None:
    assert {case.code for case in CASES} == set(RULE_CODES)


def test_acting_after_the_grace_deadline_is_refused_before_tick() -> None:
    state = run(populated(), ("h", MoveToAudience("c")), ("h", Leave()), now=0.0)
    assert state.host_deadline is not None
    with pytest.raises(RoomRuleError) as caught:
        apply(state, "h", Join("Hana"), state.host_deadline)
    assert caught.value.code == "room_ended"


def test_rule_error_messages_carry_the_detail() -> None:
    error = rule_error("unknown_participant", "ghost")
    assert error.code == "unknown_participant" and "ghost" in error.message

"""The room rules as pure transitions.

``apply(state, actor, command, now)`` returns the next state and the events to broadcast, or
raises a :class:`core.errors.RoomRuleError` whose ``code`` says why (core/rooms/errors.py).
``tick(state, now)`` ends a room whose host left without a co-host to take over once the grace
period is over; the live plane calls it on a timer. Neither reads a clock nor does I/O.

Invariants (property-tested): while live there is exactly one host present, or none and a
deadline set (the grace period, with no co-host present); the stage never exceeds
``policy.max_stage`` nor the co-hosts ``policy.max_cohosts``; removed users are never present;
pending invitations and raised hands belong to present listeners; only stage members are muted;
nobody but the host joins a room holding ``policy.max_participants``.
"""

from __future__ import annotations

from dataclasses import replace

from core.rooms.commands import (
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
    SetRecording,
    StepDown,
    TransferHost,
)
from core.rooms.errors import rule_error
from core.rooms.events import (
    Event,
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
from core.rooms.roles import Role
from core.rooms.state import EndReason, Marker, Participant, RoomState, RoomStatus

MAX_DISPLAY_NAME = 64

Result = tuple[RoomState, list[Event]]


def apply(state: RoomState, actor: str, command: Command, now: float) -> Result:
    """Apply ``command`` by ``actor`` at time ``now``.

    Raises :class:`core.errors.RoomRuleError` (never anything else for a well-typed command);
    ``state`` is untouched then. A command that changes nothing (raising a raised hand, turning
    recording on twice) returns the same state and no events.
    """
    if not state.live:
        raise rule_error("room_ended")
    if state.host_deadline is not None and now >= state.host_deadline:
        raise rule_error("room_ended", "the host did not come back in time")
    if isinstance(command, Join):
        return _join(state, actor, command.display_name, now)
    me = state.get(actor)
    if me is None:
        raise rule_error("removed_from_room" if actor in state.removed else "not_in_room")
    match command:
        case Leave():
            return _leave(state, me, now)
        case RaiseHand():
            return _set_hand(state, me, raised=True)
        case LowerHand():
            return _set_hand(state, me, raised=False)
        case Invite(target):
            return _invite(state, me, target)
        case AcceptInvite():
            return _answer_invite(state, me, now, accept=True)
        case DeclineInvite():
            return _answer_invite(state, me, now, accept=False)
        case BringUp(target):
            return _bring_up(state, me, target, now)
        case StepDown():
            return _step_down(state, me, now)
        case Mute(target, muted):
            return _mute(state, me, target, muted)
        case MoveToAudience(target):
            return _move_to_audience(state, me, target, now)
        case Remove(target):
            return _remove(state, me, target)
        case MakeCohost(target):
            return _make_cohost(state, me, target, now)
        case RevokeCohost(target):
            return _revoke_cohost(state, me, target, now)
        case TransferHost(target):
            return _transfer_host(state, me, target, now)
        case SetRecording(on):
            return _set_recording(state, me, on)
        case AddMarker(title):
            return _add_marker(state, me, title, now)
        case EndRoom():
            _require_host(me)
            return _end(state, EndReason.ENDED_BY_HOST)
    raise TypeError(f"not a room command: {command!r}")  # unreachable for typed callers


def tick(state: RoomState, now: float) -> Result:
    """End the room if the host's grace period is over; otherwise change nothing."""
    if state.live and state.host_deadline is not None and now >= state.host_deadline:
        return _end(state, EndReason.HOST_LEFT)
    return state, []


# -- checks -------------------------------------------------------------------------------------


def _require_host(me: Participant) -> None:
    if me.role is not Role.HOST:
        raise rule_error("host_only")


def _require_moderator(me: Participant) -> None:
    if not me.role.moderates:
        raise rule_error("not_a_moderator")


def _target(state: RoomState, me: Participant, target_id: str) -> Participant:
    if target_id == me.user_id:
        raise rule_error("cannot_target_self")
    target = state.get(target_id)
    if target is None:
        raise rule_error("unknown_participant", target_id)
    return target


def _require_outranks(me: Participant, target: Participant) -> None:
    if target.role is Role.HOST:
        raise rule_error("cannot_moderate_host")
    if target.role is Role.COHOST and me.role is not Role.HOST:
        raise rule_error("cannot_moderate_cohost")


def _require_stage_room(state: RoomState) -> None:
    if len(state.stage) >= state.policy.max_stage:
        raise rule_error("stage_full", f"{state.policy.max_stage} on stage")


def _clean_text(text: str, limit: int, code: str) -> str:
    text = text.strip()
    if not 1 <= len(text) <= limit or not text.isprintable():
        raise rule_error(code)
    return text


# -- transitions --------------------------------------------------------------------------------


def _with_role(
    state: RoomState, person: Participant, role: Role, now: float, by: str | None
) -> Result:
    """``person`` takes ``role``: hand lowered, invitation dropped, unmuted when leaving the
    stage (a listener cannot be muted) or joining it from the audience."""
    keep_mute = person.role.on_stage and role.on_stage
    changed = replace(
        person, role=role, role_since=now, hand_raised=False, muted=person.muted and keep_mute
    )
    state = replace(state.with_participant(changed), invited=state.invited - {person.user_id})
    return state, [RoleChanged(person.user_id, role, person.role, by)]


def _join(state: RoomState, actor: str, display_name: str, now: float) -> Result:
    name = _clean_text(display_name, MAX_DISPLAY_NAME, "invalid_display_name")
    if actor in state.removed:
        raise rule_error("removed_from_room")
    if actor in state:
        raise rule_error("already_in_room")
    # The host coming back during the grace period takes the room back, full or not.
    role = Role.HOST if actor == state.host_id else Role.LISTENER
    if role is not Role.HOST and len(state.participants) >= state.policy.max_participants:
        raise rule_error("room_full", f"{state.policy.max_participants} present")
    person = Participant(actor, name, role, joined_at=now, role_since=now)
    state = state.with_participant(person)
    if role is Role.HOST:
        state = replace(state, host_deadline=None)
    return state, [ParticipantJoined(actor, name, role)]


def _leave(state: RoomState, me: Participant, now: float) -> Result:
    state = state.without_participant(me.user_id)
    events: list[Event] = [ParticipantLeft(me.user_id, "left")]
    if me.role is not Role.HOST:
        return state, events
    if state.cohosts:
        # Ties on role_since resolve to the earlier joiner: cohosts are in join order.
        successor = min(state.cohosts, key=lambda p: p.role_since)
        state, changed = _with_role(state, successor, Role.HOST, now, by=None)
        return replace(state, host_id=successor.user_id), events + changed
    state = replace(state, host_deadline=now + state.policy.host_grace_seconds)
    state, ended = tick(state, now)
    return state, events + ended


def _set_hand(state: RoomState, me: Participant, *, raised: bool) -> Result:
    if me.hand_raised == raised:
        return state, []
    if raised and me.role is not Role.LISTENER:
        raise rule_error("not_a_listener")
    state = state.with_participant(replace(me, hand_raised=raised))
    return state, [HandRaised(me.user_id) if raised else HandLowered(me.user_id)]


def _invite(state: RoomState, me: Participant, target_id: str) -> Result:
    _require_moderator(me)
    target = _target(state, me, target_id)
    if target.role is not Role.LISTENER:
        raise rule_error("not_a_listener")
    if target.user_id in state.invited:
        raise rule_error("already_invited")
    _require_stage_room(state)
    state = replace(state, invited=state.invited | {target.user_id})
    return state, [Invited(target.user_id, me.user_id)]


def _answer_invite(state: RoomState, me: Participant, now: float, *, accept: bool) -> Result:
    if me.user_id not in state.invited:
        raise rule_error("no_invitation")
    if not accept:
        state = replace(state, invited=state.invited - {me.user_id})
        return state, [InviteDeclined(me.user_id)]
    _require_stage_room(state)
    return _with_role(state, me, Role.SPEAKER, now, by=me.user_id)


def _bring_up(state: RoomState, me: Participant, target_id: str, now: float) -> Result:
    _require_moderator(me)
    target = _target(state, me, target_id)
    if target.role is not Role.LISTENER:
        raise rule_error("not_a_listener")
    if not target.hand_raised:
        raise rule_error("hand_not_raised")
    _require_stage_room(state)
    return _with_role(state, target, Role.SPEAKER, now, by=me.user_id)


def _step_down(state: RoomState, me: Participant, now: float) -> Result:
    if me.role is Role.HOST:
        raise rule_error("host_cannot_step_down")
    if me.role is Role.LISTENER:
        raise rule_error("not_on_stage")
    return _with_role(state, me, Role.LISTENER, now, by=me.user_id)


def _mute(state: RoomState, me: Participant, target_id: str, muted: bool) -> Result:
    if target_id == me.user_id:
        target = me
    else:
        if not muted:
            raise rule_error("cannot_unmute_others")
        _require_moderator(me)
        target = _target(state, me, target_id)
        _require_outranks(me, target)
    if not target.role.on_stage:
        raise rule_error("not_on_stage")
    if target.muted == muted:
        return state, []
    state = state.with_participant(replace(target, muted=muted))
    return state, [Muted(target.user_id, muted, me.user_id)]


def _move_to_audience(state: RoomState, me: Participant, target_id: str, now: float) -> Result:
    _require_moderator(me)
    target = _target(state, me, target_id)
    _require_outranks(me, target)
    if not target.role.on_stage:
        raise rule_error("not_on_stage")
    return _with_role(state, target, Role.LISTENER, now, by=me.user_id)


def _remove(state: RoomState, me: Participant, target_id: str) -> Result:
    _require_moderator(me)
    target = _target(state, me, target_id)
    _require_outranks(me, target)
    state = state.without_participant(target.user_id)
    state = replace(state, removed=state.removed | {target.user_id})
    return state, [ParticipantLeft(target.user_id, "removed", by=me.user_id)]


def _make_cohost(state: RoomState, me: Participant, target_id: str, now: float) -> Result:
    _require_host(me)
    target = _target(state, me, target_id)
    if target.role is Role.COHOST:
        raise rule_error("already_cohost")
    if len(state.cohosts) >= state.policy.max_cohosts:
        raise rule_error("too_many_cohosts", f"at most {state.policy.max_cohosts}")
    if not target.role.on_stage:
        _require_stage_room(state)
    return _with_role(state, target, Role.COHOST, now, by=me.user_id)


def _revoke_cohost(state: RoomState, me: Participant, target_id: str, now: float) -> Result:
    _require_host(me)
    target = _target(state, me, target_id)
    if target.role is not Role.COHOST:
        raise rule_error("not_a_cohost")
    return _with_role(state, target, Role.SPEAKER, now, by=me.user_id)


def _transfer_host(state: RoomState, me: Participant, target_id: str, now: float) -> Result:
    _require_host(me)
    target = _target(state, me, target_id)
    if not target.role.on_stage:
        _require_stage_room(state)
    other_cohosts = [p for p in state.cohosts if p.user_id != target.user_id]
    old_host_role = Role.COHOST if len(other_cohosts) < state.policy.max_cohosts else Role.SPEAKER
    state, promoted = _with_role(state, target, Role.HOST, now, by=me.user_id)
    state, demoted = _with_role(state, me, old_host_role, now, by=me.user_id)
    return replace(state, host_id=target.user_id), promoted + demoted


def _set_recording(state: RoomState, me: Participant, on: bool) -> Result:
    _require_host(me)
    if state.recording == on:
        return state, []
    return replace(state, recording=on), [RecordingChanged(on, me.user_id)]


def _add_marker(state: RoomState, me: Participant, title: str, now: float) -> Result:
    _require_host(me)
    if not state.recording:
        raise rule_error("not_recording")
    title = _clean_text(title, state.policy.max_marker_title, "invalid_marker_title")
    marker = Marker(now, title, me.user_id)
    state = replace(state, markers=(*state.markers, marker))
    return state, [MarkerAdded(now, title, me.user_id)]


def _end(state: RoomState, reason: EndReason) -> Result:
    events: list[Event] = [RecordingChanged(False, None)] if state.recording else []
    state = replace(
        state,
        status=RoomStatus.ENDED,
        participants=(),
        invited=frozenset(),
        recording=False,
        host_deadline=None,
        ended_reason=reason,
    )
    return state, events + [RoomEnded(reason)]

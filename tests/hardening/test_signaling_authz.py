"""Who may do what over signaling: every client message × every kind of participant, as a table.

Columns: listener, speaker, co-host, host (present in room A), outsider (a real user of room B,
holding room B's join token, on room A's URL) and removed (a user a moderator removed from room
A, coming back with a freshly issued token). Each cell runs in its own room on an in-process
live node, so no action's success changes another cell. A cell is one of:

- ``OK`` — acknowledged (``pong`` for ``ping``); ``Closed(code)`` — acknowledged, then the
  socket closes with ``code`` (``leave``: 1000, ``end_room``: 4010);
- ``Refused(code)`` — an ``error`` with that documented code, and **no event** reached the
  actor before it (a refused action changes nothing);
- ``NotAdmitted(close)`` — the socket is closed at connect, before any snapshot.

Adding a client message type without its row makes :func:`test_every_message_has_a_row` fail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import jwt
import pytest

from core.protocol import CLIENT_MESSAGES, CloseCode
from core.rooms import Role
from core.settings import Settings
from core.tokens import issue_join_token
from tests.hardening.signaling_world import (
    LiveWorld,
    close_code_of,
    drain,
    join_token,
    live_settings,
    live_world,
    request,
)


@dataclass(frozen=True)
class Ok:
    close: int | None = None


@dataclass(frozen=True)
class Refused:
    code: str


@dataclass(frozen=True)
class NotAdmitted:
    close: int


Outcome = Ok | Refused | NotAdmitted
OK: Final = Ok()
LEFT: Final = Ok(CloseCode.NORMAL)
ENDED: Final = Ok(CloseCode.ROOM_ENDED)
MOD = Refused("not_a_moderator")
HOST_ONLY = Refused("host_only")
OUTSIDER: Final = NotAdmitted(CloseCode.UNAUTHORIZED)
REMOVED: Final = NotAdmitted(CloseCode.FORBIDDEN)
ACTORS: Final = ("listener", "speaker", "cohost", "host", "outsider", "removed")


def row(listener: Outcome, speaker: Outcome, cohost: Outcome, host: Outcome) -> tuple[Outcome, ...]:
    """The in-room cells; nobody outside the room gets as far as sending anything."""
    return (listener, speaker, cohost, host, OUTSIDER, REMOVED)


# Cast of every room: host hana; co-hosts cora (actor) and cole; speakers sam (actor) and tess;
# listeners lee (actor) and lou (hand raised). Recording is on. Targets: see TARGETS.
#                                listener           speaker                  cohost          host
MATRIX: Final[dict[str, tuple[Outcome, ...]]] = {
    "raise_hand": row(
        OK, Refused("not_a_listener"), Refused("not_a_listener"), Refused("not_a_listener")
    ),
    "lower_hand": row(OK, OK, OK, OK),  # lowering a hand that is down changes nothing
    "invite": row(MOD, MOD, OK, OK),
    # Setup: the host invited lee (the listener actor); nobody invited the others.
    "accept_invite": row(
        OK, Refused("no_invitation"), Refused("no_invitation"), Refused("no_invitation")
    ),
    "decline_invite": row(
        OK, Refused("no_invitation"), Refused("no_invitation"), Refused("no_invitation")
    ),
    "bring_up": row(MOD, MOD, OK, OK),
    "step_down": row(Refused("not_on_stage"), OK, OK, Refused("host_cannot_step_down")),
    "mute": row(MOD, MOD, OK, OK),
    "move_to_audience": row(MOD, MOD, OK, OK),
    "remove": row(MOD, MOD, OK, OK),
    "make_cohost": row(Refused("host_only"), HOST_ONLY, HOST_ONLY, OK),
    "revoke_cohost": row(HOST_ONLY, HOST_ONLY, HOST_ONLY, OK),
    "transfer_host": row(HOST_ONLY, HOST_ONLY, HOST_ONLY, OK),
    "set_recording": row(HOST_ONLY, HOST_ONLY, HOST_ONLY, OK),
    "add_marker": row(HOST_ONLY, HOST_ONLY, HOST_ONLY, OK),
    "end_room": row(HOST_ONLY, HOST_ONLY, HOST_ONLY, ENDED),
    "leave": row(LEFT, LEFT, LEFT, LEFT),
    "ping": row(OK, OK, OK, OK),
    # Everyone may answer their own offer (there is no field naming anyone else's); the bogus
    # SDP reaching the media plane and being refused there shows the role gate let it through.
    "answer": row(
        Refused("invalid_sdp"),
        Refused("invalid_sdp"),
        Refused("invalid_sdp"),
        Refused("invalid_sdp"),
    ),
}

#: The fields each message is sent with (its target chosen so that the right role succeeds).
FIELDS: Final[dict[str, dict[str, Any]]] = {
    "invite": {"target": "lou"},
    "bring_up": {"target": "lou"},
    "mute": {"target": "tess", "muted": True},
    "move_to_audience": {"target": "tess"},
    "remove": {"target": "lou"},
    "make_cohost": {"target": "lou"},
    "revoke_cohost": {"target": "cole"},
    "transfer_host": {"target": "tess"},
    "set_recording": {"on": False},
    "add_marker": {"title": "Chapter two"},
    "answer": {"sdp": "v=0\r\nthis is not an answer\r\n", "negotiation": 1},
}

USER_OF: Final = {"listener": "lee", "speaker": "sam", "cohost": "cora", "host": "hana"}


@pytest.fixture
def world(settings: Settings) -> Iterator[LiveWorld]:
    # Three co-host seats so the host can still make one; rooms end at once when emptied.
    with live_world(live_settings(settings, max_cohosts=3, hand_raises_per_minute=600)) as world:
        yield world


def populate(world: LiveWorld, room: str, action: str) -> dict[str, Any]:
    """Room ``room`` with the whole cast in place; returns the sockets by user."""
    ws: dict[str, Any] = {}
    ws["hana"], _ = world.join(room, "hana", Role.HOST)
    for user in ("cora", "cole", "sam", "tess", "lee", "lou"):
        ws[user], _ = world.join(room, user)
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("hana", "make_cohost", {"target": "cora"}),
        ("hana", "make_cohost", {"target": "cole"}),
        ("sam", "raise_hand", {}),
        ("hana", "bring_up", {"target": "sam"}),
        ("tess", "raise_hand", {}),
        ("hana", "bring_up", {"target": "tess"}),
        ("lou", "raise_hand", {}),
        ("hana", "set_recording", {"on": True}),
    ]
    if action in ("accept_invite", "decline_invite"):
        steps.append(("hana", "invite", {"target": "lee"}))
    for user, kind, fields in steps:
        reply = request(ws[user], kind, **fields)
        assert reply.kind == "ack", (user, kind, reply)
    return ws


def finish(ws: dict[str, Any]) -> None:
    """End the room (whoever holds the host role now) so its media stops."""
    for socket in ws.values():
        try:
            reply = request(socket, "end_room", request_id="fin")
        except Exception:  # noqa: BLE001, S112 (this socket is already closed: try the next)
            continue
        if reply.kind == "ack":
            return


def outcome_of(world: LiveWorld, room: str, action: str, actor: str) -> Outcome:
    if actor == "outsider":
        # A genuine participant of a live room B, holding B's token, tries room A's URL.
        bert, _ = world.join(f"{room}-b", "bert", Role.HOST)
        closed = world.refused(room, join_token(world.settings, f"{room}-b", "bert"))
        request(bert, "end_room")
        return NotAdmitted(closed.code)
    if actor == "removed":
        host, _ = world.join(room, "hana", Role.HOST)
        rex, _ = world.join(room, "rex")
        assert request(host, "remove", target="rex").kind == "ack"
        assert close_code_of(rex) == CloseCode.FORBIDDEN
        # Replayed after removal: the same token, then a freshly issued one (new jti).
        replayed = join_token(world.settings, room, "rex")
        first = world.refused(room, replayed)
        second = world.refused(room, join_token(world.settings, room, "rex"))  # its own jti
        assert first.code == second.code and second.reason == "removed_from_room"
        request(host, "end_room")
        return NotAdmitted(second.code)
    ws = populate(world, room, action)
    actor_ws = ws[USER_OF[actor]]
    drain(actor_ws)
    reply = request(actor_ws, action, **FIELDS.get(action, {}))
    try:
        if reply.kind in ("ack", "pong"):
            if action in ("leave", "end_room"):
                del ws[USER_OF[actor]]  # its close is read here: nothing more to read on it
                return Ok(close_code_of(actor_ws))
            return OK
        if reply.kind == "error":
            assert reply.events_before == [], f"a refused {action} changed the room"
            assert isinstance(reply.code, str)
            return Refused(reply.code)
        raise AssertionError(f"{action} by {actor}: socket closed with {reply.code}")
    finally:
        finish(ws)


def test_every_message_has_a_row() -> None:
    assert set(MATRIX) == set(CLIENT_MESSAGES), "add a row for each new client message type"
    assert all(len(cells) == len(ACTORS) for cells in MATRIX.values())


def test_every_target_names_a_cast_member() -> None:
    cast = {"hana", "cora", "cole", "sam", "tess", "lee", "lou"}
    assert {f["target"] for f in FIELDS.values() if "target" in f} <= cast


@pytest.mark.timeout(60)
@pytest.mark.parametrize("action", sorted(MATRIX))
def test_signaling_action_by_every_actor(world: LiveWorld, action: str) -> None:
    got: dict[str, Outcome] = {}
    for index, actor in enumerate(ACTORS):
        if actor == "removed" and action != "ping":
            continue  # the same refusal at connect, whatever would have been sent: once is enough
        got[actor] = outcome_of(world, f"{action}-{index}", action, actor)
    expected = {actor: MATRIX[action][i] for i, actor in enumerate(ACTORS) if actor in got}
    assert got == expected


# -- tokens -------------------------------------------------------------------------------------


def test_tokens_for_another_room_forged_or_stale_are_refused_with_4001(world: LiveWorld) -> None:
    settings = world.settings
    host, _ = world.join("room-a", "hana", Role.HOST)
    world.join("room-b", "bea", Role.HOST)
    good = join_token(settings, "room-a", "ann")
    claims = jwt.decode(good, options={"verify_signature": False})
    other_key = jwt.encode(claims, "not-the-server-secret-" * 3, algorithm="HS256")
    unsigned = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    promoted = jwt.encode({**claims, "role": "host"}, "not-the-server-secret-" * 3, "HS256")
    expired = issue_join_token(
        settings,
        room_id="room-a",
        user_id="ann",
        display_name="Ann",
        role=Role.LISTENER,
        now=time.time() - 3600,
        ttl_seconds=60,
    )
    cases = {
        "room B's host token": (join_token(settings, "room-b", "bea", Role.HOST), "invalid_token"),
        "signed with another key": (other_key, "invalid_token"),
        "alg none": (unsigned, "invalid_token"),
        "role raised to host, re-signed": (promoted, "invalid_token"),
        "expired": (expired, "token_expired"),
        "empty": ("", "invalid_token"),
    }
    for name, (token, reason) in cases.items():
        closed = world.refused("room-a", token)
        assert (closed.code, closed.reason) == (CloseCode.UNAUTHORIZED, reason), name
    # None of them got in: the host saw nobody join.
    assert [m for m in drain(host) if m["type"] == "participant_joined"] == []


def test_a_host_claim_for_someone_else_joins_an_open_room_as_a_listener(world: LiveWorld) -> None:
    """The role claim only opens a room; once open, the room's own state decides the role."""
    host, _ = world.join("room-a", "hana", Role.HOST)
    mallory, snapshot = world.join("room-a", "mallory", Role.HOST)
    assert snapshot["host_id"] == "hana"
    assert snapshot["grants"] == {
        "subscribe": True,
        "publish": False,
        "moderate": False,
        "record": False,
    }
    assert request(mallory, "end_room").code == "host_only"
    assert request(mallory, "remove", target="hana").code == "not_a_moderator"
    assert request(host, "ping").kind == "pong"

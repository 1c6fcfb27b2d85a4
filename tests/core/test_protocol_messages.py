from __future__ import annotations

import json

import pytest

from core.errors import (
    InvalidToken,
    NotFound,
    ProtocolError,
    RoomcastError,
    TokenExpired,
)
from core.protocol import (
    CLIENT_MESSAGES,
    Ack,
    ActiveSpeakers,
    AnswerMsg,
    CloseCode,
    ErrorMessage,
    Negotiation,
    Offer,
    PingMsg,
    Pong,
    accept_answer,
    close_code_for,
    encode_server_message,
    ice_servers_from_settings,
    parse_client_message,
    request_offer,
    snapshot_for,
    to_command,
)
from core.rooms import Join, Mute, RaiseHand, Role, apply, open_room, rule_error
from core.rooms import commands as cmd
from core.rooms.events import RoleChanged
from core.settings import Settings


def parse_error(raw: str | bytes, max_bytes: int = 1024) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(raw, max_bytes=max_bytes)
    return caught.value


def test_parse_an_action_with_request_id() -> None:
    message = parse_client_message('{"type":"invite","target":"u2","request_id":"r1"}')
    assert message.type == "invite" and message.request_id == "r1"
    assert to_command(message) == cmd.Invite("u2")


def test_bytes_are_accepted() -> None:
    assert isinstance(parse_client_message(b'{"type":"ping"}'), PingMsg)


def test_unknown_extra_fields_are_ignored() -> None:
    message = parse_client_message('{"type":"raise_hand","future":"field"}')
    assert to_command(message) == cmd.RaiseHand()
    assert not hasattr(message, "future")


def test_defaults() -> None:
    assert to_command(parse_client_message('{"type":"mute","target":"u"}')) == Mute("u", True)
    unmute = parse_client_message('{"type":"mute","target":"me","muted":false}')
    assert to_command(unmute) == Mute("me", False)


def test_answer_and_ping_are_not_room_commands() -> None:
    answer = parse_client_message('{"type":"answer","sdp":"v=0","negotiation":3}')
    assert isinstance(answer, AnswerMsg) and answer.negotiation == 3
    assert to_command(answer) is None
    assert to_command(parse_client_message('{"type":"ping"}')) is None


EXAMPLES = {
    "raise_hand": {},
    "lower_hand": {},
    "invite": {"target": "u"},
    "accept_invite": {},
    "decline_invite": {},
    "bring_up": {"target": "u"},
    "step_down": {},
    "mute": {"target": "u"},
    "move_to_audience": {"target": "u"},
    "remove": {"target": "u"},
    "make_cohost": {"target": "u"},
    "revoke_cohost": {"target": "u"},
    "transfer_host": {"target": "u"},
    "set_recording": {"on": True},
    "add_marker": {"title": "Intro"},
    "end_room": {},
    "leave": {},
    "ping": {},
    "answer": {"sdp": "v=0", "negotiation": 1},
}


def test_every_client_type_has_an_example() -> None:
    assert set(EXAMPLES) == set(CLIENT_MESSAGES)


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_every_client_type_parses_and_maps(kind: str) -> None:
    message = parse_client_message(json.dumps({"type": kind, **EXAMPLES[kind]}))
    assert message.type == kind
    command = to_command(message)
    assert (command is None) == (kind in {"ping", "answer"})


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("x" * 1025, "message_too_big"),
        ('{"type":"add_marker","title":"' + "é" * 600 + '"}', "message_too_big"),
        (b"\xff\xfe{}", "invalid_json"),
        ("{not json", "invalid_json"),
        ("[1, 2]", "not_an_object"),
        ('"ping"', "not_an_object"),
        ("{}", "missing_type"),
        ('{"type": 7}', "missing_type"),
        ('{"type":"launch_rockets"}', "unknown_type"),
        ('{"type":"invite"}', "invalid_fields"),
        ('{"type":"invite","target":""}', "invalid_fields"),
        ('{"type":"invite","target":42}', "invalid_fields"),
        ('{"type":"set_recording","on":"yes"}', "invalid_fields"),
        ('{"type":"set_recording","on":1}', "invalid_fields"),
        ('{"type":"answer","sdp":"v=0","negotiation":"1"}', "invalid_fields"),
        ('{"type":"answer","sdp":"v=0","negotiation":0}', "invalid_fields"),
        ('{"type":"add_marker","title":""}', "invalid_fields"),
        ('{"type":"ping","request_id":""}', "invalid_fields"),
    ],
)
def test_bad_messages(raw: str | bytes, code: str) -> None:
    error = parse_error(raw)
    assert error.code == code and error.message


def test_deep_nesting_is_invalid_json_not_a_crash() -> None:
    assert parse_error("[" * 50_000 + "]" * 50_000, max_bytes=200_000).code == "invalid_json"


def test_errors_echo_a_readable_request_id() -> None:
    error = parse_error('{"type":"invite","request_id":"abc"}')
    assert (
        error.code == "invalid_fields" and error.request_id == "abc" and "target" in error.message
    )
    assert parse_error('{"type":"nope","request_id":"r9"}').request_id == "r9"
    assert parse_error('{"type":"nope","request_id":5}').request_id is None
    reply = json.loads(encode_server_message(ErrorMessage.from_error(error)))
    assert reply == {
        "type": "error",
        "code": "invalid_fields",
        "message": error.message,
        "request_id": "abc",
    }


def test_rule_errors_become_error_messages() -> None:
    reply = ErrorMessage.from_error(rule_error("stage_full"), request_id="r2")
    assert (reply.code, reply.request_id) == ("stage_full", "r2")


def test_server_messages_encode_with_type_first() -> None:
    assert encode_server_message(Offer("v=0", 2)) == '{"type":"offer","sdp":"v=0","negotiation":2}'
    assert json.loads(encode_server_message(Ack("r1"))) == {"type": "ack", "request_id": "r1"}
    assert json.loads(encode_server_message(Pong())) == {"type": "pong", "request_id": None}
    speakers = json.loads(encode_server_message(ActiveSpeakers(("a", "b"))))
    assert speakers == {"type": "active_speakers", "user_ids": ["a", "b"]}
    event = RoleChanged("u", Role.SPEAKER, Role.LISTENER, "h")
    assert json.loads(encode_server_message(event)) == {
        "type": "role_changed",
        "user_id": "u",
        "role": "speaker",
        "previous_role": "listener",
        "by": "h",
    }


def test_snapshot(settings: Settings) -> None:
    state = open_room("r1", host_id="h", host_name="Hana", now=0.0)
    state, _ = apply(state, "l", Join("Lee"), 1.0)
    state, _ = apply(state, "l", RaiseHand(), 2.0)
    snap = json.loads(encode_server_message(snapshot_for(state, "l")))
    assert snap == {
        "type": "snapshot",
        "room_id": "r1",
        "you": "l",
        "host_id": "h",
        "participants": [
            {
                "user_id": "h",
                "display_name": "Hana",
                "role": "host",
                "hand_raised": False,
                "muted": False,
            },
            {
                "user_id": "l",
                "display_name": "Lee",
                "role": "listener",
                "hand_raised": True,
                "muted": False,
            },
        ],
        "invited": [],
        "recording": False,
        "max_stage": 13,
        "grants": {"subscribe": True, "publish": False, "moderate": False, "record": False},
        "ice_servers": [],
    }


def test_ice_servers_default_to_none_and_turn_gets_credentials() -> None:
    assert ice_servers_from_settings(Settings()) == ()
    configured = Settings(
        rtc={
            "ice_servers": "stun:127.0.0.1:3478,turn:127.0.0.1:3478",  # type: ignore[arg-type]
            "turn_username": "u",
            "turn_password": "p",
        }
    )
    stun, turn = ice_servers_from_settings(configured)
    assert stun.urls == ("stun:127.0.0.1:3478",) and stun.username is None
    assert (turn.username, turn.credential) == ("u", "p")


def test_negotiation_numbers_offers_and_queues_renegotiation() -> None:
    state, number = request_offer(Negotiation())
    assert number == 1
    state, number = request_offer(state)
    assert number is None and state.wanted, "an offer is pending: wait"
    with pytest.raises(ProtocolError) as caught:
        accept_answer(state, 7, request_id="q")
    assert caught.value.code == "stale_answer" and caught.value.request_id == "q"
    state, number = accept_answer(state, 1)
    assert number == 2 and state.pending == 2, "the queued renegotiation follows at once"
    state, number = accept_answer(state, 2)
    assert number is None and state == Negotiation(last=2)
    with pytest.raises(ProtocolError) as caught:
        accept_answer(state, 2)
    assert caught.value.code == "unexpected_answer"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidToken("x"), CloseCode.UNAUTHORIZED),
        (TokenExpired("x"), CloseCode.UNAUTHORIZED),
        (rule_error("removed_from_room"), CloseCode.FORBIDDEN),
        (rule_error("room_ended"), CloseCode.ROOM_ENDED),
        (NotFound("no such room"), CloseCode.ROOM_NOT_FOUND),
        (ProtocolError("message_too_big", "x"), CloseCode.MESSAGE_TOO_BIG),
        (RoomcastError("boom"), CloseCode.INTERNAL_ERROR),
        (RuntimeError("boom"), CloseCode.INTERNAL_ERROR),
    ],
)
def test_close_codes(error: BaseException, code: CloseCode) -> None:
    assert close_code_for(error) is code

"""The signaling WebSocket through FastAPI's TestClient: schema, order, refusals, close codes.

Every connection is admitted by a real join token and gets a real server peer connection (its
offers go unanswered here; tests/live/test_multiparty.py answers them with real peers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from core.protocol import SERVER_MESSAGES, CloseCode
from core.rooms import Role
from core.settings import Settings
from core.tokens import issue_access_token, issue_join_token
from live.node import create_live_app

ROOM = "room-1"


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    rtc = settings.rtc.model_copy(update={"host_addresses": ["127.0.0.1"], "ice_servers": []})
    rooms = settings.rooms.model_copy(
        update={"host_grace_seconds": 0.3, "message_burst": 30, "messages_per_second": 5.0}
    )
    return settings.model_copy(update={"rtc": rtc, "rooms": rooms})


class Sockets:
    """Open WebSocket sessions, closed before the TestClient stops (its portal waits for them)."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()

    def open(self, client: TestClient, path: str) -> WebSocketTestSession:
        context = client.websocket_connect(path)
        ws = context.__enter__()
        self._stack.callback(_quietly_exit, context)
        return ws

    def close(self) -> None:
        self._stack.close()


def _quietly_exit(context: Any) -> None:
    with contextlib.suppress(Exception):
        context.__exit__(None, None, None)


_SOCKETS: dict[int, Sockets] = {}


@pytest.fixture
def client(live_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_live_app(live_settings)) as test_client:
        sockets = _SOCKETS[id(test_client)] = Sockets()
        try:
            yield test_client
        finally:
            sockets.close()
            del _SOCKETS[id(test_client)]


def token(settings: Settings, user: str, role: Role = Role.LISTENER, **kwargs: Any) -> str:
    room = kwargs.pop("room_id", ROOM)
    return issue_join_token(
        settings, room_id=room, user_id=user, display_name=user.title(), role=role, **kwargs
    )


def url(join_token: str, room: str = ROOM) -> str:
    return f"/v1/rooms/{room}/ws?token={join_token}"


def check_schema(message: dict[str, Any]) -> dict[str, Any]:
    """Every server message is a documented type with exactly its documented fields."""
    cls = SERVER_MESSAGES[message["type"]]
    assert set(message) == {"type"} | {f.name for f in dataclasses.fields(cls)}, message
    return message


def recv(ws: WebSocketTestSession) -> dict[str, Any]:
    return check_schema(ws.receive_json())


def recv_until(ws: WebSocketTestSession, kind: str) -> dict[str, Any]:
    """The next message of ``kind``, skipping offers (renegotiations) only."""
    while True:
        message = recv(ws)
        if message["type"] == kind:
            return message
        assert message["type"] == "offer", f"expected {kind}, got {message}"


def join(client: TestClient, join_token: str) -> tuple[WebSocketTestSession, dict[str, Any]]:
    ws = _SOCKETS[id(client)].open(client, url(join_token))
    snapshot = recv(ws)
    assert snapshot["type"] == "snapshot"
    offer = recv(ws)
    assert offer["type"] == "offer" and offer["negotiation"] == 1 and "v=0" in offer["sdp"]
    return ws, snapshot


def close_code_of(ws: WebSocketTestSession) -> int:
    with pytest.raises(WebSocketDisconnect) as info:
        while True:
            ws.receive_json()
    return info.value.code


def refused(client: TestClient, path: str) -> WebSocketDisconnect:
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(path) as ws:
        ws.receive_json()
    return info.value


def test_snapshot_then_offer_then_events_to_everyone(
    client: TestClient, live_settings: Settings
) -> None:
    host, snapshot = join(client, token(live_settings, "hana", Role.HOST))
    assert snapshot["you"] == "hana" and snapshot["host_id"] == "hana"
    assert snapshot["participants"] == [
        {
            "user_id": "hana",
            "display_name": "Hana",
            "role": "host",
            "hand_raised": False,
            "muted": False,
        }
    ]
    assert snapshot["grants"] == {
        "subscribe": True,
        "publish": True,
        "moderate": True,
        "record": True,
    }
    assert snapshot["ice_servers"] == [] and snapshot["max_stage"] == 13

    ann, snap = join(client, token(live_settings, "ann"))
    assert [p["user_id"] for p in snap["participants"]] == ["hana", "ann"]
    assert snap["grants"]["publish"] is False
    joined = recv_until(host, "participant_joined")
    assert joined == {
        "type": "participant_joined",
        "user_id": "ann",
        "display_name": "Ann",
        "role": "listener",
    }

    ann.send_json({"type": "raise_hand", "request_id": "a1"})
    assert recv_until(ann, "hand_raised") == {"type": "hand_raised", "user_id": "ann"}
    assert recv(ann) == {"type": "ack", "request_id": "a1"}
    assert recv_until(host, "hand_raised")["user_id"] == "ann"

    host.send_json({"type": "bring_up", "target": "ann", "request_id": "h1"})
    promoted = {
        "type": "role_changed",
        "user_id": "ann",
        "role": "speaker",
        "previous_role": "listener",
        "by": "hana",
    }
    assert recv_until(host, "role_changed") == promoted
    assert recv_until(host, "ack")["request_id"] == "h1"
    assert recv_until(ann, "role_changed") == promoted
    ann.send_json({"type": "ping", "request_id": "p"})
    assert recv_until(ann, "pong") == {"type": "pong", "request_id": "p"}

    # Refused actions answer with the rule's code and change nothing.
    ann.send_json({"type": "invite", "target": "hana", "request_id": "a2"})
    error = recv_until(ann, "error")
    assert error["code"] == "not_a_moderator" and error["request_id"] == "a2"

    host.send_json({"type": "end_room"})
    assert recv_until(ann, "room_ended") == {"type": "room_ended", "reason": "ended_by_host"}
    assert close_code_of(ann) == CloseCode.ROOM_ENDED
    assert close_code_of(host) == CloseCode.ROOM_ENDED
    # A late joiner learns the room ended.
    assert refused(client, url(token(live_settings, "bob"))).code == CloseCode.ROOM_ENDED


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid_json"),
        ("[1, 2]", "not_an_object"),
        ('{"request_id": "x"}', "missing_type"),
        ('{"type": "dance", "request_id": "x"}', "unknown_type"),
        ('{"type": "invite", "request_id": "x"}', "invalid_fields"),
        ('{"type": "mute", "target": "ann", "muted": "1", "request_id": "x"}', "invalid_fields"),
        ('{"type": "answer", "sdp": "v=0", "negotiation": 7, "request_id": "x"}', "stale_answer"),
    ],
)
def test_bad_messages_get_an_error_and_the_connection_stays_up(
    client: TestClient, live_settings: Settings, raw: str, code: str
) -> None:
    host, _ = join(client, token(live_settings, "hana", Role.HOST))
    host.send_text(raw)
    error = recv_until(host, "error")
    assert error["code"] == code
    if code not in ("invalid_json", "not_an_object"):
        assert error["request_id"] == "x"
    host.send_json({"type": "ping", "request_id": "still-there"})
    assert recv_until(host, "pong")["request_id"] == "still-there"


def test_answer_without_pending_offer_is_unexpected(
    client: TestClient, live_settings: Settings
) -> None:
    host, _ = join(client, token(live_settings, "hana", Role.HOST))
    host.send_json({"type": "answer", "sdp": "v=0\r\n", "negotiation": 1})
    error = recv_until(host, "error")
    assert error["code"] == "invalid_sdp"  # offer 1 is pending: the bad SDP itself is refused
    host.send_json({"type": "answer", "sdp": "v=0\r\n", "negotiation": 2})
    assert recv_until(host, "error")["code"] == "stale_answer"


def test_oversize_message_closes_with_1009(client: TestClient, live_settings: Settings) -> None:
    host, _ = join(client, token(live_settings, "hana", Role.HOST))
    cap = live_settings.rooms.max_message_bytes
    host.send_text(json.dumps({"type": "ping", "pad": "x" * cap}))
    assert recv_until(host, "error")["code"] == "message_too_big"
    assert close_code_of(host) == CloseCode.MESSAGE_TOO_BIG


def test_flooding_closes_with_4008(client: TestClient, live_settings: Settings) -> None:
    host, _ = join(client, token(live_settings, "hana", Role.HOST))
    burst = live_settings.rooms.message_burst
    for _ in range(burst * 2):
        host.send_json({"type": "ping"})
    pongs = 0
    with pytest.raises(WebSocketDisconnect) as info:
        while True:
            if host.receive_json()["type"] == "pong":
                pongs += 1
    assert info.value.code == CloseCode.POLICY_VIOLATION
    assert burst <= pongs < burst * 2


def test_a_stream_of_refused_messages_closes_with_4008(
    client: TestClient, live_settings: Settings
) -> None:
    host, _ = join(client, token(live_settings, "hana", Role.HOST))
    for _ in range(25):
        host.send_text("garbage")
    assert close_code_of(host) == CloseCode.POLICY_VIOLATION


def test_tokens_are_checked(client: TestClient, live_settings: Settings) -> None:
    good = token(live_settings, "hana", Role.HOST)
    header, payload, signature = good.split(".")
    tampered = (
        f"{header}.{payload}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}"
    )
    expired = token(live_settings, "hana", Role.HOST, now=time.time() - 7200, ttl_seconds=60)
    other_room = token(live_settings, "hana", Role.HOST, room_id="room-2")
    api_token = issue_access_token(live_settings, "hana")
    cases = {
        "/v1/rooms/room-1/ws": "invalid_token",
        url(tampered): "invalid_token",
        url(expired): "token_expired",
        url(other_room): "invalid_token",
        url(api_token): "invalid_token",
    }
    for path, reason in cases.items():
        closed = refused(client, path)
        assert (closed.code, closed.reason) == (CloseCode.UNAUTHORIZED, reason), path
    # Nothing was opened by the refused host tokens.
    assert refused(client, url(token(live_settings, "ann"))).code == CloseCode.ROOM_NOT_FOUND


def test_removed_user_cannot_rejoin(client: TestClient, live_settings: Settings) -> None:
    host, _ = join(client, token(live_settings, "hana", Role.HOST))
    ann_token = token(live_settings, "ann")
    ann, _ = join(client, ann_token)
    recv_until(host, "participant_joined")
    host.send_json({"type": "remove", "target": "ann", "request_id": "r"})
    left = {"type": "participant_left", "user_id": "ann", "reason": "removed", "by": "hana"}
    assert recv_until(host, "participant_left") == left
    assert recv_until(ann, "participant_left") == left
    assert close_code_of(ann) == CloseCode.FORBIDDEN
    closed = refused(client, url(ann_token))
    assert (closed.code, closed.reason) == (CloseCode.FORBIDDEN, "removed_from_room")


def test_newer_connection_replaces_the_older(client: TestClient, live_settings: Settings) -> None:
    host, _ = join(client, token(live_settings, "hana", Role.HOST))
    first, _ = join(client, token(live_settings, "ann"))
    recv_until(host, "participant_joined")
    second, snapshot = join(client, token(live_settings, "ann"))
    assert close_code_of(first) == CloseCode.REPLACED
    assert [p["user_id"] for p in snapshot["participants"]] == ["hana", "ann"]
    second.send_json({"type": "raise_hand"})
    assert recv_until(host, "hand_raised")["user_id"] == "ann"


def test_host_leaving_without_cohost_ends_the_room_after_the_grace(
    client: TestClient, live_settings: Settings
) -> None:
    host, _ = join(client, token(live_settings, "hana", Role.HOST))
    ann, _ = join(client, token(live_settings, "ann"))
    host.send_json({"type": "leave"})
    assert close_code_of(host) == CloseCode.NORMAL
    assert recv_until(ann, "participant_left") == {
        "type": "participant_left",
        "user_id": "hana",
        "reason": "left",
        "by": None,
    }
    started = time.monotonic()
    assert recv_until(ann, "room_ended") == {"type": "room_ended", "reason": "host_left"}
    assert time.monotonic() - started < 5
    assert close_code_of(ann) == CloseCode.ROOM_ENDED


def test_host_coming_back_during_the_grace_keeps_the_room(
    client: TestClient, live_settings: Settings
) -> None:
    slow = live_settings.rooms.model_copy(update={"host_grace_seconds": 30.0})
    settings = live_settings.model_copy(update={"rooms": slow})
    with TestClient(create_live_app(settings)) as patient:
        _SOCKETS[id(patient)] = Sockets()
        host_token = token(settings, "hana", Role.HOST)
        host, _ = join(patient, host_token)
        ann, _ = join(patient, token(settings, "ann"))
        host.send_json({"type": "leave"})
        recv_until(ann, "participant_left")
        back, snapshot = join(patient, host_token)
        assert snapshot["participants"][-1]["role"] == "host"
        assert recv_until(ann, "participant_joined")["role"] == "host"
        back.send_json({"type": "set_recording", "on": True})
        assert recv_until(ann, "recording") == {"type": "recording", "on": True, "by": "hana"}
        _SOCKETS.pop(id(patient)).close()


def test_mount_live_serves_rooms_from_another_app_and_closes_them_on_shutdown(
    live_settings: Settings,
) -> None:
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    from live.node import LiveNode, mount_live

    lifecycle: list[str] = []

    @asynccontextmanager
    async def own_lifespan(_: FastAPI) -> AsyncIterator[None]:
        lifecycle.append("started")
        yield
        lifecycle.append("stopped")

    app = FastAPI(lifespan=own_lifespan)
    node = LiveNode(live_settings)
    mount_live(app, node)
    with TestClient(app) as other:
        with other.websocket_connect(url(token(live_settings, "hana", Role.HOST))) as host:
            assert recv(host)["type"] == "snapshot"
            assert set(node.rooms) == {ROOM}
        assert lifecycle == ["started"]
    assert lifecycle == ["started", "stopped"]
    assert node.rooms == {}

"""An in-process live node and its sockets, for the signaling hardening tests.

:class:`LiveWorld` wraps FastAPI's TestClient around :func:`live.node.create_live_app` (real
token checks, real room sessions, real server peer connections on 127.0.0.1; offers are left
unanswered) and keeps every socket it opens so they all close before the client stops.
:func:`request` sends one client message and reads up to the reply that settles it, keeping
what arrived before it, so a test can tell "refused, nothing happened" from "done, events sent".
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from core.protocol import SERVER_MESSAGES
from core.rooms import Role
from core.settings import RoomSettings, Settings
from core.tokens import issue_join_token
from live.node import create_live_app

#: Server messages that are not the consequence of a client's action.
BACKGROUND: Final = frozenset({"offer", "active_speakers"})


def live_settings(settings: Settings, **rooms: Any) -> Settings:
    """``settings`` with loopback-only ICE, no ICE server, and room limits overridden."""
    rtc = settings.rtc.model_copy(update={"host_addresses": ["127.0.0.1"], "ice_servers": []})
    limits = {"host_grace_seconds": 0.0, **rooms}
    # Validated (model_copy is not), so a contradictory limit fails here, not in a room.
    room_settings = RoomSettings.model_validate({**settings.rooms.model_dump(), **limits})
    return settings.model_copy(update={"rtc": rtc, "rooms": room_settings})


def join_token(settings: Settings, room: str, user: str, role: Role = Role.LISTENER) -> str:
    return issue_join_token(
        settings, room_id=room, user_id=user, display_name=user.title(), role=role
    )


def ws_path(room: str, token: str) -> str:
    return f"/v1/rooms/{room}/ws?token={token}"


def check_schema(message: dict[str, Any]) -> dict[str, Any]:
    """Every server message is a documented type with exactly its documented fields."""
    cls = SERVER_MESSAGES[message["type"]]
    assert set(message) == {"type"} | {f.name for f in dataclasses.fields(cls)}, message
    return message


@dataclass
class Reply:
    """What answered one request: ``kind`` ack / pong / error / closed, and what came first."""

    kind: str
    code: str | int | None = None
    before: list[dict[str, Any]] = field(default_factory=list)

    @property
    def events_before(self) -> list[dict[str, Any]]:
        return [m for m in self.before if m["type"] not in BACKGROUND]


def request(ws: WebSocketTestSession, kind: str, request_id: str = "q", **fields: Any) -> Reply:
    """Send ``{"type": kind, ...}``; return the ack / pong / error with ``request_id``, or the
    close (``code`` = close code) if the socket closes first."""
    ws.send_json({"type": kind, "request_id": request_id, **fields})
    return read_reply(ws, request_id)


def read_reply(ws: WebSocketTestSession, request_id: str) -> Reply:
    before: list[dict[str, Any]] = []
    try:
        while True:
            message = check_schema(ws.receive_json())
            if message.get("request_id") == request_id and message["type"] in (
                "ack",
                "pong",
                "error",
            ):
                return Reply(message["type"], message.get("code"), before)
            before.append(message)
    except WebSocketDisconnect as closed:
        return Reply("closed", closed.code, before)


def drain(ws: WebSocketTestSession) -> list[dict[str, Any]]:
    """Everything queued for ``ws`` so far (a ping's pong marks the end)."""
    reply = request(ws, "ping", request_id="drain")
    assert reply.kind == "pong", reply
    return reply.before


def close_code_of(ws: WebSocketTestSession) -> int:
    with pytest.raises(WebSocketDisconnect) as info:
        while True:
            ws.receive_json()
    return info.value.code


class LiveWorld:
    """One in-process live node; ``open``/``join`` sockets that all close at the end."""

    def __init__(self, client: TestClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._stack = contextlib.ExitStack()

    def open(self, room: str, token: str) -> WebSocketTestSession:
        context = self.client.websocket_connect(ws_path(room, token))
        ws = context.__enter__()
        self._stack.callback(_quietly_exit, context)
        return ws

    def join(
        self, room: str, user: str, role: Role = Role.LISTENER
    ) -> tuple[WebSocketTestSession, dict[str, Any]]:
        """Connect ``user`` and read the snapshot and the first offer."""
        ws = self.open(room, join_token(self.settings, room, user, role))
        snapshot = check_schema(ws.receive_json())
        assert snapshot["type"] == "snapshot", snapshot
        offer = check_schema(ws.receive_json())
        assert offer["type"] == "offer" and offer["negotiation"] == 1, offer
        return ws, snapshot

    def refused(self, room: str, token: str) -> WebSocketDisconnect:
        """Connect with ``token`` and expect the server to close before any snapshot."""
        with (
            pytest.raises(WebSocketDisconnect) as info,
            self.client.websocket_connect(ws_path(room, token)) as ws,
        ):
            ws.receive_json()
        return info.value

    def close(self) -> None:
        self._stack.close()


def _quietly_exit(context: Any) -> None:
    with contextlib.suppress(Exception):
        context.__exit__(None, None, None)


@contextlib.contextmanager
def live_world(settings: Settings) -> Iterator[LiveWorld]:
    with TestClient(create_live_app(settings)) as client:
        world = LiveWorld(client, settings)
        try:
            yield world
        finally:
            world.close()

"""Rooms over the real app on SQLite: create, list, read, end, invitees, join tokens."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from core.adapters.db.engine import make_engine
from core.adapters.db.models import RoomMembership
from core.rooms import Role, grants_for
from core.settings import Settings
from core.tokens import decode_join_token
from tests.api.accounts import api_client, new_user

Headers = dict[str, str]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with api_client(settings) as client:
        yield client


@pytest.fixture
def host(client: TestClient) -> Headers:
    return new_user(client, "host@example.com", "Hana Host")


@pytest.fixture
def guest(client: TestClient) -> Headers:
    return new_user(client, "guest@example.com", "Gil Guest")


@pytest.fixture
def outsider(client: TestClient) -> Headers:
    return new_user(client, "out@example.com", "Otto Outsider")


def _create(client: TestClient, headers: Headers, **fields: Any) -> dict[str, Any]:
    body = {"title": "Morning show", "description": "", "record": True, **fields}
    response = client.post("/v1/rooms", json=body, headers=headers)
    assert response.status_code == 201, response.text
    room: dict[str, Any] = response.json()
    return room


def _code(response: Any) -> str:
    code: str = response.json()["error"]["code"]
    return code


def _token(client: TestClient, room_id: str, headers: Headers) -> Any:
    return client.post(f"/v1/rooms/{room_id}/token", headers=headers)


def _invite(
    client: TestClient, room_id: str, headers: Headers, email: str, role: str = "listener"
) -> Any:
    return client.post(
        f"/v1/rooms/{room_id}/invitees", json={"email": email, "role": role}, headers=headers
    )


def _listed(client: TestClient, headers: Headers | None = None) -> list[str]:
    response = client.get("/v1/rooms", headers=headers or {})
    assert response.status_code == 200
    return [room["id"] for room in response.json()["rooms"]]


def _mark_removed(settings: Settings, room_id: str, email_user_id: str) -> None:
    """What the live plane records when a moderator removes someone."""
    engine = make_engine(settings)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.update(RoomMembership)
                .where(RoomMembership.room_id == room_id, RoomMembership.user_id == email_user_id)
                .values(removed=True)
            )
    finally:
        engine.dispose()


def test_create_live_and_scheduled_rooms(client: TestClient, host: Headers) -> None:
    me = client.get("/v1/me", headers=host).json()
    live = _create(client, host, title="  Live now  ")
    assert live["status"] == "live" and live["started_at"] is not None
    assert live["title"] == "Live now" and live["host_id"] == me["id"]
    assert live["record"] is True and live["is_private"] is False

    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    scheduled = _create(client, host, scheduled_start=future)
    assert scheduled["status"] == "scheduled" and scheduled["started_at"] is None
    assert datetime.fromisoformat(scheduled["scheduled_start"]) == datetime.fromisoformat(future)

    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert _create(client, host, scheduled_start=past)["status"] == "live"

    assert client.get(f"/v1/rooms/{live['id']}").json() == live


@pytest.mark.parametrize(
    "body",
    [
        {"title": "   "},
        {"title": "x" * 201},
        {"title": "Naive", "scheduled_start": "2030-01-01T10:00:00"},
        {"title": "Extra", "host_id": "someone-else"},
    ],
)
def test_bad_room_bodies_are_422(client: TestClient, host: Headers, body: dict[str, Any]) -> None:
    response = client.post("/v1/rooms", json=body, headers=host)
    assert response.status_code == 422
    assert response.json()["error"]["message"]
    assert _listed(client, host) == []


def test_creating_a_room_needs_an_account(client: TestClient) -> None:
    response = client.post("/v1/rooms", json={"title": "Anon"})
    assert response.status_code == 401
    assert _code(response) == "not_authenticated"


def test_listing_shows_private_rooms_only_to_host_and_invitees(
    client: TestClient, settings: Settings, host: Headers, guest: Headers, outsider: Headers
) -> None:
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    scheduled = _create(client, host, title="Later", scheduled_start=future)["id"]
    public = _create(client, host, title="Public")["id"]
    private = _create(client, host, title="Secret", is_private=True)["id"]
    ended = _create(client, host, title="Over")["id"]
    assert client.post(f"/v1/rooms/{ended}/end", headers=host).status_code == 200

    # Live rooms come first, then the scheduled one; ended rooms are not listed.
    assert _listed(client) == [public, scheduled]
    assert _listed(client, outsider) == [public, scheduled]
    assert set(_listed(client, host)) == {public, private, scheduled}
    assert _listed(client, host)[-1] == scheduled

    assert _invite(client, private, host, "guest@example.com").status_code == 201
    assert set(_listed(client, guest)) == {public, private, scheduled}
    assert client.get(f"/v1/rooms/{private}", headers=guest).status_code == 200

    guest_id = client.get("/v1/me", headers=guest).json()["id"]
    _mark_removed(settings, private, guest_id)
    assert set(_listed(client, guest)) == {public, scheduled}
    assert client.get("/v1/rooms?limit=1").json()["rooms"][0]["id"] == public
    assert client.get("/v1/rooms?limit=0").status_code == 422


def test_private_room_is_404_to_outsiders(
    client: TestClient, host: Headers, outsider: Headers
) -> None:
    private = _create(client, host, is_private=True)["id"]
    assert client.get(f"/v1/rooms/{private}", headers=host).status_code == 200
    for headers in ({}, outsider):
        response = client.get(f"/v1/rooms/{private}", headers=headers)
        assert response.status_code == 404
        assert _code(response) == "room_not_found"
    # Same answer as a room that does not exist: nothing leaks.
    missing = client.get("/v1/rooms/does-not-exist")
    assert missing.status_code == 404 and _code(missing) == "room_not_found"
    for action in ("end", "token"):
        response = client.post(f"/v1/rooms/{private}/{action}", headers=outsider)
        assert response.status_code == 404, action
    assert _invite(client, private, outsider, "out@example.com").status_code == 404


def test_only_the_host_ends_a_room_once(client: TestClient, host: Headers, guest: Headers) -> None:
    room = _create(client, host)["id"]
    response = client.post(f"/v1/rooms/{room}/end", headers=guest)
    assert response.status_code == 403 and _code(response) == "host_only"
    assert client.post(f"/v1/rooms/{room}/end").status_code == 401

    ended = client.post(f"/v1/rooms/{room}/end", headers=host)
    assert ended.status_code == 200
    assert ended.json()["status"] == "ended" and ended.json()["ended_at"] is not None

    again = client.post(f"/v1/rooms/{room}/end", headers=host)
    assert again.status_code == 409 and _code(again) == "room_ended"
    for headers in (host, guest):
        response = _token(client, room, headers)
        assert response.status_code == 409 and _code(response) == "room_ended"
    assert client.get(f"/v1/rooms/{room}").json()["status"] == "ended"


def test_join_token_role_follows_membership(
    client: TestClient,
    settings: Settings,
    host: Headers,
    guest: Headers,
    outsider: Headers,
) -> None:
    room = _create(client, host, is_private=True)["id"]
    cohost = new_user(client, "co@example.com", "Cora Cohost")
    assert _invite(client, room, host, "co@example.com", "cohost").status_code == 201
    assert _invite(client, room, host, "guest@example.com").status_code == 201

    expected = {"host": host, "cohost": cohost, "listener": guest}
    for role, headers in expected.items():
        response = _token(client, room, headers)
        assert response.status_code == 200, response.text
        body = response.json()
        me = client.get("/v1/me", headers=headers).json()
        claims = decode_join_token(settings, body["token"])
        assert claims.room_id == room and claims.user_id == me["id"]
        assert claims.display_name == me["display_name"]
        assert claims.role == Role(role) and body["role"] == role
        assert claims.grants == grants_for(Role(role))
        assert body["grants"] == grants_for(Role(role)).to_claim()
        assert body["ws_url"] == f"ws://127.0.0.1:8000/v1/rooms/{room}/ws"
        assert body["ice_servers"] == []
        assert body["expires_in"] == settings.auth.join_token_ttl_seconds
        assert claims.expires_at - claims.issued_at == settings.auth.join_token_ttl_seconds

    # A public room: anyone signed in listens.
    public = _create(client, host)["id"]
    outsider_token = _token(client, public, outsider).json()["token"]
    assert decode_join_token(settings, outsider_token).role is Role.LISTENER
    # Anonymous callers get no join token.
    assert _token(client, public, {}).status_code == 401

    guest_id = client.get("/v1/me", headers=guest).json()["id"]
    _mark_removed(settings, room, guest_id)
    response = _token(client, room, guest)
    assert response.status_code == 403 and _code(response) == "removed_from_room"
    # Removed from a public room too.
    outsider_id = client.get("/v1/me", headers=outsider).json()["id"]
    assert _invite(client, public, host, "out@example.com").status_code == 201
    _mark_removed(settings, public, outsider_id)
    assert _code(_token(client, public, outsider)) == "removed_from_room"


def test_scheduled_room_starts_when_its_host_takes_a_token(
    client: TestClient, host: Headers, guest: Headers
) -> None:
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    room = _create(client, host, scheduled_start=future)["id"]
    early = _token(client, room, guest)
    assert early.status_code == 409 and _code(early) == "room_not_started"
    assert client.get(f"/v1/rooms/{room}").json()["status"] == "scheduled"

    assert _token(client, room, host).status_code == 200
    started = client.get(f"/v1/rooms/{room}").json()
    assert started["status"] == "live" and started["started_at"] is not None
    assert _token(client, room, guest).json()["role"] == "listener"


def test_invitees(client: TestClient, host: Headers, guest: Headers) -> None:
    room = _create(client, host, is_private=True)["id"]
    missing = _invite(client, room, host, "nobody@example.com")
    assert missing.status_code == 404 and _code(missing) == "user_not_found"
    self_invite = _invite(client, room, host, "HOST@example.com", "cohost")
    assert self_invite.status_code == 409 and _code(self_invite) == "already_host"
    bad = _invite(client, room, host, "guest@example.com", "host")
    assert bad.status_code == 422

    first = _invite(client, room, host, "guest@example.com")
    assert first.status_code == 201
    assert first.json()["display_name"] == "Gil Guest" and first.json()["role"] == "listener"
    # An invitee cannot invite others (they can see the room, so 403 rather than 404).
    refused = _invite(client, room, guest, "host@example.com")
    assert refused.status_code == 403 and _code(refused) == "host_only"
    # Inviting again updates the role in place.
    promoted = _invite(client, room, host, "guest@example.com", "cohost")
    assert promoted.status_code == 200 and promoted.json()["role"] == "cohost"
    assert _token(client, room, guest).json()["role"] == "cohost"

    assert client.post(f"/v1/rooms/{room}/end", headers=host).status_code == 200
    late = _invite(client, room, host, "guest@example.com")
    assert late.status_code == 409 and _code(late) == "room_ended"


def test_ice_servers_and_ws_url_follow_settings(settings: Settings) -> None:
    configured = Settings(
        var_dir=settings.var_dir,
        rtc={
            "ice_servers": ["stun:127.0.0.1:3478", "turn:127.0.0.1:3478"],
            "turn_username": "u",
            "turn_password": "p",
            "public_url": "https://live.example.test/",
        },
    )
    with api_client(configured) as client:
        headers = new_user(client, "h@example.com", "H")
        room = _create(client, headers)["id"]
        body = _token(client, room, headers).json()
    assert body["ws_url"] == f"wss://live.example.test/v1/rooms/{room}/ws"
    assert body["ice_servers"] == [
        {"urls": ["stun:127.0.0.1:3478"], "username": None, "credential": None},
        {"urls": ["turn:127.0.0.1:3478"], "username": "u", "credential": "p"},
    ]

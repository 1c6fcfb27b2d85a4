"""Webhook endpoints over the real app on SQLite: register, list, log, enable, delete."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.adapters.db.engine import make_engine, make_session_factory
from core.adapters.webhook_outbox import record_event
from core.settings import Settings
from core.webhooks import events
from core.webhooks.signing import secret_key
from tests.api.accounts import api_client, new_user

Headers = dict[str, str]
HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
def allowing(settings: Settings) -> Settings:
    hooks = settings.webhooks.model_copy(update={"allow_private_targets": ["127.0.0.1"]})
    return settings.model_copy(update={"webhooks": hooks})


@pytest.fixture
def client(allowing: Settings) -> Iterator[TestClient]:
    with api_client(allowing) as client:
        yield client


@pytest.fixture
def creator(client: TestClient) -> Headers:
    return new_user(client, "creator@example.com", "Cleo Creator")


def _create(client: TestClient, headers: Headers, **fields: Any) -> Any:
    body = {"url": HOOK, "events": ["clip.ready", "replay.ready"], **fields}
    return client.post("/v1/webhooks", json=body, headers=headers)


def _code(response: Any) -> str:
    code: str = response.json()["error"]["code"]
    return code


def test_secret_is_shown_once_at_creation(client: TestClient, creator: Headers) -> None:
    response = _create(client, creator, events=["replay.ready", "clip.ready", "clip.ready"])
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["secret"].startswith("whsec_")
    assert len(secret_key(created["secret"])) >= 24
    assert created["events"] == ["replay.ready", "clip.ready"]
    assert created["enabled"] is True and created["failure_count"] == 0
    listed = client.get("/v1/webhooks", headers=creator).json()["webhooks"]
    assert [w["id"] for w in listed] == [created["id"]]
    assert "secret" not in listed[0]
    one = client.get(f"/v1/webhooks/{created['id']}", headers=creator).json()
    assert "secret" not in one and one["url"] == HOOK
    assert created["secret"] not in client.get("/v1/webhooks", headers=creator).text


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://10.1.2.3/hook", "unsafe_webhook_target_private"),
        ("http://169.254.169.254/latest/meta-data", "unsafe_webhook_target_link_local"),
        ("http://localhost:8080/", "unsafe_webhook_target_loopback"),
        ("http://[::1]:8080/", "unsafe_webhook_target_loopback"),
        ("ftp://example.com/", "unsafe_webhook_target_scheme_not_allowed"),
        ("http:///nohost", "unsafe_webhook_target_malformed_url"),
    ],
)
def test_refused_targets_are_422_with_the_netguard_reason(
    client: TestClient, creator: Headers, url: str, code: str
) -> None:
    response = _create(client, creator, url=url)
    assert response.status_code == 422, response.text
    assert _code(response) == code
    assert client.get("/v1/webhooks", headers=creator).json()["webhooks"] == []


def test_loopback_is_refused_without_the_allow_list(settings: Settings) -> None:
    with api_client(settings) as client:
        headers = new_user(client, "c@example.com")
        response = _create(client, headers)
        assert response.status_code == 422
        assert _code(response) == "unsafe_webhook_target_loopback"


def test_unknown_events_and_empty_lists_are_refused(client: TestClient, creator: Headers) -> None:
    response = _create(client, creator, events=["room.exploded"])
    assert response.status_code == 422 and _code(response) == "unknown_webhook_event"
    assert _create(client, creator, events=[]).status_code == 422


def test_sign_in_required(client: TestClient) -> None:
    assert _create(client, {}).status_code == 401
    assert client.get("/v1/webhooks").status_code == 401


def test_other_users_see_nothing(client: TestClient, creator: Headers) -> None:
    webhook_id = _create(client, creator).json()["id"]
    other = new_user(client, "other@example.com")
    assert client.get("/v1/webhooks", headers=other).json()["webhooks"] == []
    for method, path in [
        ("GET", f"/v1/webhooks/{webhook_id}"),
        ("GET", f"/v1/webhooks/{webhook_id}/deliveries"),
        ("POST", f"/v1/webhooks/{webhook_id}/enable"),
        ("DELETE", f"/v1/webhooks/{webhook_id}"),
    ]:
        response = client.request(method, path, headers=other)
        assert response.status_code == 404, (method, path)
        assert _code(response) == "webhook_not_found"
    assert client.get(f"/v1/webhooks/{webhook_id}", headers=creator).status_code == 200


def test_delivery_log_shows_recorded_events_once(
    client: TestClient, creator: Headers, allowing: Settings
) -> None:
    webhook_id = _create(client, creator).json()["id"]
    owner = client.get("/v1/me", headers=creator).json()["id"]
    event = events.clip_ready(
        clip_id="c1",
        replay_id="r1",
        start_seconds=1.0,
        duration_seconds=30.0,
        audio_url="a",
        page_url="p",
        at=datetime(2030, 1, 1, tzinfo=UTC),
    )
    unsubscribed = events.room_started(room_id="r1", title="t", host_id=owner, at=event.timestamp)
    engine = make_engine(allowing)
    sessions = make_session_factory(engine)
    try:
        with sessions() as session:
            first = record_event(session, owner, event)
            again = record_event(session, owner, event)  # a retried task records it again
            assert record_event(session, owner, unsubscribed) == []
            assert record_event(session, "someone-else", event) == []
            session.commit()
    finally:
        engine.dispose()
    assert len(first) == 1 and again == []
    log = client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=creator).json()
    [delivery] = log["deliveries"]
    assert delivery["id"] == first[0]
    assert delivery["event_id"] == event.id and delivery["event_type"] == "clip.ready"
    assert delivery["status"] == "pending" and delivery["attempts"] == 0
    assert delivery["payload"] == event.payload()


def test_enable_and_delete(client: TestClient, creator: Headers) -> None:
    webhook_id = _create(client, creator).json()["id"]
    enabled = client.post(f"/v1/webhooks/{webhook_id}/enable", headers=creator)
    assert enabled.status_code == 200 and enabled.json()["enabled"] is True
    assert client.delete(f"/v1/webhooks/{webhook_id}", headers=creator).status_code == 204
    assert client.get(f"/v1/webhooks/{webhook_id}", headers=creator).status_code == 404
    assert client.delete(f"/v1/webhooks/{webhook_id}", headers=creator).status_code == 404

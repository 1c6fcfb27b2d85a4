"""The API records room.started, room.ended and episode.published in the webhook outbox.

Over the real app on SQLite with a recording job queue: a creator registers an endpoint (a
loopback target, explicitly allowed), acts through the API, and each action leaves exactly one
pending delivery row for that endpoint, enqueued for the workers after the commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from core import jobs
from core.adapters.db.engine import make_engine, make_session_factory
from core.adapters.db.models import WebhookDelivery
from core.settings import Settings
from tests.api.accounts import new_user
from tests.api.replay_seed import MediaApp, media_app, seed_replay, user_id

Headers = dict[str, str]
SHOW = {
    "slug": "morning-talks",
    "title": "Morning Talks",
    "description": "Rooms from the morning crew.",
    "language": "en",
    "category": "Technology",
    "author": "Hana Host",
    "owner_email": "owner@example.com",
}


@pytest.fixture
def app(settings: Settings) -> Iterator[MediaApp]:
    hooks = settings.webhooks.model_copy(update={"allow_private_targets": ["127.0.0.1"]})
    with media_app(settings.model_copy(update={"webhooks": hooks})) as app:
        yield app


def _endpoint(app: MediaApp, headers: Headers, events: list[str]) -> str:
    response = app.client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": events}, headers=headers
    )
    assert response.status_code == 201, response.text
    endpoint_id: str = response.json()["id"]
    return endpoint_id


def _deliveries(app: MediaApp) -> list[dict[str, Any]]:
    engine = make_engine(app.settings)
    try:
        with make_session_factory(engine)() as session:
            rows = session.scalars(
                sa.select(WebhookDelivery).order_by(WebhookDelivery.created_at)
            ).all()
            return [
                {
                    "id": row.id,
                    "endpoint_id": row.endpoint_id,
                    "type": row.event_type,
                    "event_id": row.event_id,
                    "payload": row.payload,
                    "status": row.status,
                }
                for row in rows
            ]
    finally:
        engine.dispose()


def _enqueued(app: MediaApp) -> list[object]:
    return [args[0] for name, args, _ in app.queue.sent if name == jobs.WEBHOOK_DELIVER]


def test_room_started_and_ended_reach_the_hosts_endpoint(app: MediaApp) -> None:
    host = new_user(app.client, "host@example.com", "Hana Host")
    other = new_user(app.client, "other@example.com", "Otto Other")
    endpoint = _endpoint(app, host, ["room.started", "room.ended"])
    _endpoint(app, other, ["replay.ready"])  # not subscribed: gets nothing

    live = app.client.post("/v1/rooms", json={"title": "Live now"}, headers=host).json()
    later = datetime.now(UTC) + timedelta(hours=2)
    scheduled = app.client.post(
        "/v1/rooms",
        json={"title": "Later", "scheduled_start": later.isoformat()},
        headers=host,
    ).json()
    assert scheduled["status"] == "scheduled"
    # Someone else's room says nothing to the host's endpoint.
    app.client.post("/v1/rooms", json={"title": "Not mine"}, headers=other)

    started = _deliveries(app)
    assert [(d["type"], d["payload"]["data"]["room_id"]) for d in started] == [
        ("room.started", live["id"])
    ]

    # The host's first join token turns the scheduled room live.
    assert app.client.post(f"/v1/rooms/{scheduled['id']}/token", headers=host).status_code == 200
    # A second token for a live room changes nothing, so it records nothing.
    app.client.post(f"/v1/rooms/{scheduled['id']}/token", headers=host)
    assert app.client.post(f"/v1/rooms/{live['id']}/end", headers=host).status_code == 200

    rows = _deliveries(app)
    assert [(d["type"], d["payload"]["data"]["room_id"]) for d in rows] == [
        ("room.started", live["id"]),
        ("room.started", scheduled["id"]),
        ("room.ended", live["id"]),
    ]
    assert {d["endpoint_id"] for d in rows} == {endpoint}
    assert {d["status"] for d in rows} == {"pending"}
    ended = rows[-1]["payload"]
    assert ended["type"] == "room.ended"
    assert ended["data"] == {
        "room_id": live["id"],
        "title": "Live now",
        "host_id": user_id(app.client, host),
    }
    assert _enqueued(app) == [d["id"] for d in rows]


def test_episode_published_now_scheduled_and_republished(app: MediaApp) -> None:
    host = new_user(app.client, "host@example.com", "Hana Host")
    endpoint = _endpoint(app, host, ["episode.published"])
    assert app.client.post("/v1/shows", json=SHOW, headers=host).status_code == 201
    host_id = user_id(app.client, host)
    first = seed_replay(app.settings, app.storage, host_id)
    second = seed_replay(app.settings, app.storage, host_id)

    def publish(replay_id: str, **fields: Any) -> dict[str, Any]:
        body = {"replay_id": replay_id, "title": "Episode", "description": "One.", **fields}
        response = app.client.post("/v1/shows/morning-talks/episodes", json=body, headers=host)
        assert response.status_code == 201, response.text
        episode: dict[str, Any] = response.json()
        return episode

    now_episode = publish(first.replay_id)
    publish_at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    scheduled = publish(second.replay_id, publish_at=publish_at.isoformat())
    assert scheduled["state"] == "scheduled"

    rows = _deliveries(app)
    assert [(d["type"], d["payload"]["data"]["episode_id"]) for d in rows] == [
        ("episode.published", now_episode["id"]),
        ("episode.published", scheduled["id"]),
    ]
    assert {d["endpoint_id"] for d in rows} == {endpoint}
    data = rows[0]["payload"]["data"]
    assert data["feed_url"].endswith("/feeds/morning-talks.xml")
    assert data["guid"] == now_episode["guid"] and data["replay_id"] == first.replay_id
    # A scheduled episode is announced when scheduled, stamped with the time it goes live.
    assert rows[1]["payload"]["timestamp"] == publish_at.isoformat().replace("+00:00", "Z")

    base = f"/v1/shows/morning-talks/episodes/{now_episode['id']}"
    app.client.post(f"{base}/publish", headers=host)  # already published: no new event
    assert len(_deliveries(app)) == 2
    app.client.post(f"{base}/unpublish", headers=host)
    assert app.client.post(f"{base}/publish", headers=host).json()["state"] == "published"
    rows = _deliveries(app)
    assert [d["type"] for d in rows] == ["episode.published"] * 3
    assert rows[2]["payload"]["data"]["episode_id"] == now_episode["id"]
    assert len({d["event_id"] for d in rows}) == 3  # a new occurrence, a new webhook-id
    assert _enqueued(app) == [d["id"] for d in rows]

"""``POST /v1/rooms`` with ``show_id`` (only into the caller's own show; GET shows it), and
``PATCH`` of an episode (what a creator does to one post-production published by itself)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.settings import Settings
from tests.api.accounts import new_user
from tests.api.replay_seed import MediaApp, media_app, seed_replay, user_id
from tests.api.test_shows import SHOW


@pytest.fixture
def app(settings: Settings) -> Iterator[MediaApp]:
    with media_app(settings) as app:
        yield app


def test_a_room_belongs_to_its_creators_show(app: MediaApp) -> None:
    client = app.client
    hana = new_user(client, "hana@example.com", "Hana")
    gil = new_user(client, "gil@example.com", "Gil")
    show = client.post("/v1/shows", json=SHOW, headers=hana).json()

    created = client.post(
        "/v1/rooms", json={"title": "Launch", "record": True, "show_id": show["id"]}, headers=hana
    )
    assert created.status_code == 201, created.text
    assert created.json()["show_id"] == show["id"]
    assert client.get(f"/v1/rooms/{created.json()['id']}").json()["show_id"] == show["id"]

    plain = client.post("/v1/rooms", json={"title": "No show"}, headers=hana)
    assert plain.status_code == 201 and plain.json()["show_id"] is None

    theirs = client.post("/v1/rooms", json={"title": "Mine?", "show_id": show["id"]}, headers=gil)
    assert theirs.status_code == 403
    assert theirs.json()["error"]["code"] == "show_owner_only"

    missing = client.post("/v1/rooms", json={"title": "Lost", "show_id": "nope"}, headers=hana)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "show_not_found"
    rooms = client.get("/v1/rooms", headers=hana).json()["rooms"]
    assert sorted(r["title"] for r in rooms) == ["Launch", "No show"]  # nothing half-made


def test_the_creator_edits_an_episode_and_its_guid_stays(app: MediaApp) -> None:
    client = app.client
    hana = new_user(client, "hana@example.com", "Hana")
    gil = new_user(client, "gil@example.com", "Gil")
    client.post("/v1/shows", json=SHOW, headers=hana)
    seeded = seed_replay(app.settings, app.storage, user_id(client, hana), title="Launch")
    body = {"replay_id": seeded.replay_id, "title": "Launch", "description": "About it"}
    episode = client.post("/v1/shows/morning-talks/episodes", json=body, headers=hana).json()
    url = f"/v1/shows/morning-talks/episodes/{episode['id']}"

    edited = client.patch(url, json={"title": " Launch day ", "season": 2}, headers=hana)
    assert edited.status_code == 200, edited.text
    after = edited.json()
    assert (after["title"], after["season"], after["description"]) == ("Launch day", 2, "About it")
    assert (after["guid"], after["state"]) == (episode["guid"], "published")

    assert client.patch(url, json={"title": "Mine"}, headers=gil).status_code == 403
    null = client.patch(url, json={"title": None}, headers=hana)
    assert null.status_code == 422 and "title" in null.json()["error"]["message"]
    unknown = client.patch(url, json={"guid": "x"}, headers=hana)
    assert unknown.status_code == 422
    missing = client.patch("/v1/shows/morning-talks/episodes/nope", json={}, headers=hana)
    assert missing.status_code == 404
    listed = client.get("/v1/shows/morning-talks/episodes").json()["episodes"]
    assert [e["title"] for e in listed] == ["Launch day"]

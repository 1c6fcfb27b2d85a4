"""Shows over the real app: creation, artwork checks (each refusal names its rule), episodes
published now, scheduled, unpublished and republished."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image

from api.artwork import MAX_ARTWORK_BYTES
from core.feeds import podcast_guid
from core.settings import Settings
from tests.api.accounts import new_user
from tests.api.replay_seed import MediaApp, media_app, seed_replay, user_id

Headers = dict[str, str]

SHOW = {
    "slug": "morning-talks",
    "title": "Morning Talks",
    "description": "Rooms from the morning crew.",
    "language": "en-us",
    "category": "Technology",
    "explicit": False,
    "author": "Hana Host",
    "owner_email": "Owner@Example.com",
}


@pytest.fixture
def app(settings: Settings) -> Iterator[MediaApp]:
    with media_app(settings) as app:
        yield app


@pytest.fixture
def host(app: MediaApp) -> Headers:
    return new_user(app.client, "host@example.com", "Hana Host")


def image(fmt: str = "JPEG", size: tuple[int, int] = (1400, 1400), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color=(40, 90, 200) if mode == "RGB" else 0).save(buffer, fmt)
    return buffer.getvalue()


def _create(app: MediaApp, headers: Headers, **fields: Any) -> dict[str, Any]:
    response = app.client.post("/v1/shows", json={**SHOW, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    show: dict[str, Any] = response.json()
    return show


def _code(response: Any) -> str:
    code: str = response.json()["error"]["code"]
    return code


def test_create_show_assigns_a_permanent_podcast_guid(app: MediaApp, host: Headers) -> None:
    show = _create(app, host)
    assert show["feed_url"] == "http://127.0.0.1:8000/feeds/morning-talks.xml"
    assert show["podcast_guid"] == podcast_guid("127.0.0.1:8000/feeds/morning-talks.xml")
    assert show["owner_email"] == "owner@example.com" and show["artwork_url"] is None
    assert app.client.get("/v1/shows/morning-talks").json() == show
    assert [s["slug"] for s in app.client.get("/v1/shows", headers=host).json()] == [
        "morning-talks"
    ]
    taken = app.client.post("/v1/shows", json=SHOW, headers=host)
    assert taken.status_code == 409 and _code(taken) == "slug_taken"
    assert app.client.post("/v1/shows", json=SHOW).status_code == 401


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("slug", "Bad Slug"),
        ("language", "klingon"),
        ("category", "Cooking"),
        ("owner_email", "nobody"),
        ("title", "  "),
        ("description", "x" * 4001),
    ],
)
def test_bad_show_fields_are_422(app: MediaApp, host: Headers, field: str, value: str) -> None:
    response = app.client.post("/v1/shows", json={**SHOW, field: value}, headers=host)
    assert response.status_code == 422 and field in response.json()["error"]["message"]


def test_artwork_upload_and_serving(app: MediaApp, host: Headers) -> None:
    _create(app, host)
    jpeg = image()
    stored = app.client.put("/v1/shows/morning-talks/artwork", content=jpeg, headers=host)
    assert stored.status_code == 200, stored.text
    url = stored.json()["artwork_url"]
    assert url.endswith(".jpg")
    path = url.removeprefix("http://127.0.0.1:8000")
    served = app.client.get(path)
    assert served.content == jpeg and served.headers["content-type"] == "image/jpeg"
    head = app.client.head(path)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(jpeg))
    assert app.client.head("/v1/shows/morning-talks/artwork").status_code == 200
    assert app.client.get("/v1/shows/morning-talks/artwork.png").status_code == 404

    png = image("PNG", (3000, 3000))
    replaced = app.client.put("/v1/shows/morning-talks/artwork", content=png, headers=host)
    assert replaced.json()["artwork_url"].endswith(".png")
    assert app.client.get("/v1/shows/morning-talks/artwork").content == png
    assert [info.key.rsplit(".", 1)[-1] for info in app.storage.list("shows/")] == ["png"]

    other = new_user(app.client, "other@example.com")
    refused = app.client.put("/v1/shows/morning-talks/artwork", content=jpeg, headers=other)
    assert refused.status_code == 403 and _code(refused) == "show_owner_only"


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (image("GIF", (1400, 1400), "P"), "artwork_wrong_type", "JPEG or PNG"),
        (b"not an image at all", "artwork_wrong_type", "readable"),
        (image("JPEG", (1400, 1500)), "artwork_not_square", "1400×1500"),
        (image("PNG", (1000, 1000)), "artwork_wrong_size", "1400–3000"),
        (image("PNG", (3001, 3001)), "artwork_wrong_size", "3001"),
        (image("JPEG", (1400, 1400), "CMYK"), "artwork_not_rgb", "CMYK"),
        (image("PNG", (1400, 1400), "RGBA"), "artwork_not_rgb", "RGBA"),
    ],
)
def test_bad_artwork_is_422_saying_why(
    app: MediaApp, host: Headers, data: bytes, code: str, words: str
) -> None:
    _create(app, host)
    response = app.client.put("/v1/shows/morning-talks/artwork", content=data, headers=host)
    assert response.status_code == 422
    assert _code(response) == code and words in response.json()["error"]["message"]
    assert app.client.get("/v1/shows/morning-talks").json()["artwork_url"] is None


def test_oversized_artwork_is_413(app: MediaApp, host: Headers) -> None:
    _create(app, host)
    big = image() + bytes(MAX_ARTWORK_BYTES)
    response = app.client.put("/v1/shows/morning-talks/artwork", content=big, headers=host)
    assert response.status_code == 413 and _code(response) == "artwork_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap applies while reading
        for _ in range(9):
            yield bytes(1024 * 1024)

    streamed = app.client.put("/v1/shows/morning-talks/artwork", content=chunks(), headers=host)
    assert streamed.status_code == 413


def _publish(app: MediaApp, headers: Headers, replay_id: str, **fields: Any) -> Any:
    body = {
        "replay_id": replay_id,
        "title": "Episode one",
        "description": "The first one.",
        **fields,
    }
    return app.client.post("/v1/shows/morning-talks/episodes", json=body, headers=headers)


def test_publish_schedule_unpublish_republish(app: MediaApp, host: Headers) -> None:
    _create(app, host)
    host_id = user_id(app.client, host)
    now_replay = seed_replay(app.settings, app.storage, host_id)
    later_replay = seed_replay(app.settings, app.storage, host_id)
    published = _publish(app, host, now_replay.replay_id, season=1, episode=1)
    assert published.status_code == 201, published.text
    episode = published.json()
    assert episode["state"] == "published" and episode["season"] == 1
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    scheduled = _publish(app, host, later_replay.replay_id, publish_at=later, episode_type="bonus")
    assert scheduled.json()["state"] == "scheduled"

    mine = app.client.get("/v1/shows/morning-talks/episodes", headers=host).json()["episodes"]
    assert {e["state"] for e in mine} == {"published", "scheduled"}
    public = app.client.get("/v1/shows/morning-talks/episodes").json()["episodes"]
    assert [e["id"] for e in public] == [episode["id"]]

    base = f"/v1/shows/morning-talks/episodes/{episode['id']}"
    assert app.client.post(f"{base}/unpublish", headers=host).json()["state"] == "unpublished"
    assert app.client.get("/v1/shows/morning-talks/episodes").json()["episodes"] == []
    again = app.client.post(f"{base}/publish", headers=host).json()
    assert again["state"] == "published" and again["guid"] == episode["guid"]

    duplicate = _publish(app, host, now_replay.replay_id)
    assert duplicate.status_code == 409 and _code(duplicate) == "episode_exists"


def test_publish_refusals(app: MediaApp, host: Headers) -> None:
    _create(app, host)
    host_id = user_id(app.client, host)
    other = new_user(app.client, "other@example.com")
    private = seed_replay(app.settings, app.storage, host_id, private=True)
    processing = seed_replay(app.settings, app.storage, host_id, status="processing")
    theirs = seed_replay(app.settings, app.storage, user_id(app.client, other))
    cases = [
        (host, private.replay_id, 409, "replay_private"),
        (host, processing.replay_id, 409, "replay_not_ready"),
        (host, theirs.replay_id, 403, "replay_not_yours"),
        (host, "missing", 404, "replay_not_found"),
        (other, theirs.replay_id, 403, "show_owner_only"),
    ]
    for headers, replay_id, status, code in cases:
        response = _publish(app, headers, replay_id)
        assert (response.status_code, _code(response)) == (status, code), replay_id
    naive = _publish(app, host, theirs.replay_id, publish_at="2030-01-01T10:00:00")
    assert naive.status_code == 422

"""Clips over the real app on SQLite and local storage: create, limits, privacy, rate, page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from core import clips, jobs
from core.adapters.db.engine import make_engine
from core.adapters.db.models import Clip
from core.settings import Settings
from tests.api.accounts import new_user
from tests.api.replay_seed import MediaApp, media_app, seed_replay, user_id

Headers = dict[str, str]


@pytest.fixture
def limited(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"clips": settings.clips.model_copy(update={"per_user_limit": 3})}
    )


@pytest.fixture
def app(limited: Settings) -> Iterator[MediaApp]:
    with media_app(limited) as app:
        yield app


@pytest.fixture
def host(app: MediaApp) -> Headers:
    return new_user(app.client, "host@example.com", "Hana Host")


@pytest.fixture
def fan(app: MediaApp) -> Headers:
    return new_user(app.client, "fan@example.com", "Fay Fan")


def _replay(app: MediaApp, host: Headers, **kwargs: Any) -> str:
    seeded = seed_replay(
        app.settings, app.storage, user_id(app.client, host), duration=300.0, **kwargs
    )
    return seeded.replay_id


def _clip(app: MediaApp, replay_id: str, headers: Headers, **body: Any) -> Any:
    return app.client.post(f"/v1/replays/{replay_id}/clips", json=body, headers=headers)


def _code(response: Any) -> str:
    code: str = response.json()["error"]["code"]
    return code


def test_anyone_signed_in_makes_a_default_clip_and_a_job_is_queued(
    app: MediaApp, host: Headers, fan: Headers
) -> None:
    replay_id = _replay(app, host)
    response = _clip(app, replay_id, fan, start_seconds=12.5)
    assert response.status_code == 202, response.text
    clip = response.json()
    assert clip["status"] == "pending" and clip["replay_id"] == replay_id
    assert (clip["start_seconds"], clip["duration_seconds"]) == (12.5, 30.0)
    assert clip["room_title"] == "Past room"
    assert clip["page_url"].endswith(f"/clips/{clip['id']}")
    assert app.queue.sent == [(jobs.CLIP_RENDER, (clip["id"],), jobs.DEFAULT_QUEUE)]
    assert app.client.get(f"/v1/clips/{clip['id']}").json() == clip


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"start_seconds": 0, "duration_seconds": 61}, "clip_too_long"),
        ({"start_seconds": 0, "duration_seconds": 0.2}, "invalid_clip"),
        ({"start_seconds": 300}, "clip_out_of_range"),
        ({"start_seconds": -1}, "invalid_input"),
        ({"start_seconds": 1, "title": "extra"}, "invalid_input"),
    ],
)
def test_bad_windows_are_422(app: MediaApp, host: Headers, body: dict[str, Any], code: str) -> None:
    response = _clip(app, _replay(app, host), host, **body)
    assert response.status_code == 422 and _code(response) == code
    assert app.queue.sent == []


def test_a_clip_past_the_end_is_shortened(app: MediaApp, host: Headers) -> None:
    response = _clip(app, _replay(app, host), host, start_seconds=290, duration_seconds=60)
    assert response.status_code == 202
    assert response.json()["duration_seconds"] == 10.0


def test_sign_in_required_and_replay_must_be_ready(app: MediaApp, host: Headers) -> None:
    replay_id = _replay(app, host)
    assert _clip(app, replay_id, {}, start_seconds=0).status_code == 401
    processing = _replay(app, host, status="processing")
    response = _clip(app, processing, host, start_seconds=0)
    assert response.status_code == 409 and _code(response) == "replay_not_ready"
    missing = _clip(app, "nope", host, start_seconds=0)
    assert missing.status_code == 404 and _code(missing) == "replay_not_found"


def test_private_replays_clips_are_hidden_from_outsiders(
    app: MediaApp, host: Headers, fan: Headers
) -> None:
    member = new_user(app.client, "member@example.com")
    replay_id = _replay(
        app, host, private=True, members=((user_id(app.client, member), "listener"),)
    )
    refused = _clip(app, replay_id, fan, start_seconds=0)
    assert refused.status_code == 404 and _code(refused) == "replay_not_found"
    made = _clip(app, replay_id, member, start_seconds=0)
    assert made.status_code == 202
    clip_id = made.json()["id"]
    for path in (f"/v1/clips/{clip_id}", f"/clips/{clip_id}", f"/v1/clips/{clip_id}/audio.mp3"):
        for headers in ({}, fan):
            response = app.client.get(path, headers=headers)
            assert response.status_code == 404, path
            assert _code(response) == "clip_not_found"
    assert app.client.get(f"/v1/clips/{clip_id}", headers=host).status_code == 200


def test_clips_are_rate_limited_per_user(app: MediaApp, host: Headers, fan: Headers) -> None:
    replay_id = _replay(app, host)
    for start in range(3):
        assert _clip(app, replay_id, fan, start_seconds=start).status_code == 202
    refused = _clip(app, replay_id, fan, start_seconds=10)
    assert refused.status_code == 429 and _code(refused) == "clip_rate_limited"
    retry_after = int(refused.headers["Retry-After"])
    assert 3590 <= retry_after <= 3600
    assert len(app.queue.sent) == 3
    # Another user has their own allowance.
    assert _clip(app, replay_id, host, start_seconds=10).status_code == 202


def _finish(app: MediaApp, clip_id: str, audio: bytes) -> None:
    """What the render worker leaves behind."""
    app.storage.put_bytes(clips.audio_key(clip_id), audio, content_type="audio/mpeg")
    app.storage.put_bytes(
        clips.waveform_key(clip_id), b'{"data":[0,1]}', content_type="application/json"
    )
    engine = make_engine(app.settings)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.update(Clip)
                .where(Clip.id == clip_id)
                .values(status="ready", key=clips.audio_key(clip_id))
            )
    finally:
        engine.dispose()


def test_shareable_page_and_files(app: MediaApp, host: Headers) -> None:
    replay_id = _replay(app, host, title="Jazz <b>night</b>")
    clip_id = _clip(app, replay_id, host, start_seconds=75).json()["id"]
    pending = app.client.get(f"/clips/{clip_id}")
    assert pending.status_code == 200 and "<audio" not in pending.text
    assert app.client.get(f"/v1/clips/{clip_id}/audio.mp3").status_code == 404
    audio = bytes(range(256)) * 8
    _finish(app, clip_id, audio)
    page = app.client.get(f"/clips/{clip_id}")
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>Jazz &lt;b&gt;night&lt;/b&gt; — clip at 1:15</title>" in page.text
    assert (
        f'<audio controls preload="metadata" src="http://127.0.0.1:8000/v1/clips/{clip_id}/audio.mp3">'
        in page.text
    )
    full = app.client.get(f"/v1/clips/{clip_id}/audio.mp3")
    assert full.status_code == 200 and full.content == audio
    assert full.headers["content-type"] == "audio/mpeg"
    part = app.client.get(f"/v1/clips/{clip_id}/audio.mp3", headers={"Range": "bytes=0-1"})
    assert part.status_code == 206 and part.content == audio[:2]
    head = app.client.head(f"/v1/clips/{clip_id}/audio.mp3")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(audio))
    wave = app.client.get(f"/v1/clips/{clip_id}/waveform.json")
    assert wave.status_code == 200 and json.loads(wave.content) == {"data": [0, 1]}
    assert app.client.get(f"/v1/clips/{clip_id}").json()["status"] == "ready"

"""Replays over the real app: the range matrix and HEAD on local storage and on S3 (moto's
server over HTTP), presigned redirects fetched with a plain HTTP client, privacy on every URL,
detail, listing and trim."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from core import jobs
from core.settings import Settings
from tests.api.accounts import new_user
from tests.api.replay_seed import MediaApp, SeededReplay, media_app, seed_replay, user_id

Headers = dict[str, str]


@pytest.fixture
def app(settings: Settings) -> Iterator[MediaApp]:
    with media_app(settings) as app:
        yield app


@pytest.fixture
def s3_app(s3_settings: Settings) -> Iterator[MediaApp]:
    with media_app(s3_settings) as app:
        yield app


@pytest.fixture
def host(app: MediaApp) -> Headers:
    return new_user(app.client, "host@example.com", "Hana Host")


def _public(app: MediaApp, headers: Headers | None = None) -> SeededReplay:
    headers = headers or new_user(app.client, "host@example.com", "Hana Host")
    return seed_replay(app.settings, app.storage, user_id(app.client, headers))


# -- local storage: the range matrix ----------------------------------------------------------


def test_local_range_matrix(app: MediaApp, host: Headers) -> None:
    seeded = _public(app, host)
    body = seeded.files["mp3"]
    size = len(body)
    url = f"/v1/replays/{seeded.replay_id}/audio.mp3"
    client = app.client

    full = client.get(url)
    assert full.status_code == 200 and full.content == body
    assert full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-length"] == str(size)
    assert full.headers["content-type"] == "audio/mpeg"
    etag = full.headers["etag"]
    assert etag.startswith('"') and full.headers["last-modified"].endswith("GMT")

    cases = [
        ("bytes=0-1", 0, 1),
        ("bytes=100-199", 100, 199),
        ("bytes=-500", size - 500, size - 1),
        ("bytes=19000-", 19000, size - 1),
        ("bytes=19990-99999", 19990, size - 1),
    ]
    for header, first, last in cases:
        part = client.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert part.content == body[first : last + 1]
        assert part.headers["content-length"] == str(last - first + 1)
        assert part.headers["etag"] == etag

    for header in (f"bytes={size}-", "bytes=999999-", "bytes=-0"):
        refused = client.get(url, headers={"Range": header})
        assert refused.status_code == 416, header
        assert refused.headers["content-range"] == f"bytes */{size}"
        assert refused.headers["content-length"] == "0" and refused.content == b""

    # Malformed or multi-range headers are ignored: the whole body.
    for header in ("bytes=5-1", "items=0-1", "bytes=0-1,5-9"):
        ignored = client.get(url, headers={"Range": header})
        assert ignored.status_code == 200 and ignored.content == body

    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(url, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    since = client.get(url, headers={"If-Modified-Since": full.headers["last-modified"]})
    assert since.status_code == 304 and since.headers["etag"] == etag
    stale = client.get(url, headers={"Range": "bytes=0-1", "If-Range": '"old"'})
    assert stale.status_code == 200 and stale.content == body
    fresh = client.get(url, headers={"Range": "bytes=0-1", "If-Range": etag})
    assert fresh.status_code == 206 and fresh.content == body[:2]


def test_local_head_answers_like_get_without_body(app: MediaApp, host: Headers) -> None:
    seeded = _public(app, host)
    size = len(seeded.files["m4a"])
    url = f"/v1/replays/{seeded.replay_id}/audio.m4a"
    head = app.client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size)
    assert head.headers["content-type"] == "audio/mp4"
    assert head.headers["etag"] == app.client.get(url).headers["etag"]
    probe = app.client.head(url, headers={"Range": "bytes=0-1"})
    assert probe.status_code == 206 and probe.headers["content-range"] == f"bytes 0-1/{size}"
    assert probe.headers["content-length"] == "2"
    past = app.client.head(url, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
    assert app.client.head(url, headers={"If-None-Match": head.headers["etag"]}).status_code == 304


def test_hls_waveform_chapters_and_downloads(app: MediaApp, host: Headers) -> None:
    seeded = _public(app, host)
    base = f"/v1/replays/{seeded.replay_id}"
    playlist = app.client.get(f"{base}/hls/index.m3u8")
    assert playlist.status_code == 200 and b"#EXT-X-ENDLIST" in playlist.content
    assert playlist.headers["content-type"] == "application/vnd.apple.mpegurl"
    segment = app.client.get(f"{base}/hls/seg-00000.m4s", headers={"Range": "bytes=0-9"})
    assert segment.status_code == 206 and len(segment.content) == 10
    assert app.client.head(f"{base}/hls/init.mp4").headers["content-length"] == "500"
    for name in ("..%2Fstems.zip", ".hidden", "a%2F..%2Fstems.zip", "nope.m4s", "...."):
        missing = app.client.get(f"{base}/hls/{name}")
        assert missing.status_code == 404, name
    chapters = app.client.get(f"{base}/chapters.json")
    assert chapters.headers["content-type"] == "application/json+chapters"
    assert chapters.json()["chapters"][1]["title"] == "Guest"
    assert app.client.get(f"{base}/waveform.json").json() == {"peaks": [0.1, 0.5, 0.2]}
    download = app.client.get(f"{base}/audio.mp3?download=1")
    assert download.headers["content-disposition"].startswith("attachment;")
    assert app.client.get(f"{base}/nothing.bin").json()["error"]["code"] == "output_not_found"
    stems = app.client.get(f"{base}/stems.zip", headers=host)
    assert stems.status_code == 200 and stems.content == seeded.files["stems"]
    assert "attachment" in stems.headers["content-disposition"]
    other = new_user(app.client, "listener@example.com")
    refused = app.client.get(f"{base}/stems.zip", headers=other)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "hosts_only"
    assert app.client.get(f"{base}/stems.zip").status_code == 403


# -- S3: redirects to presigned URLs, HEAD answered directly ----------------------------------


def test_s3_get_redirects_to_presigned_url_with_content_type(s3_app: MediaApp) -> None:
    seeded = _public(s3_app)
    body = seeded.files["mp3"]
    size = len(body)
    url = f"/v1/replays/{seeded.replay_id}/audio.mp3"
    redirect = s3_app.client.get(url)
    assert redirect.status_code == 302
    assert redirect.headers["cache-control"] == "no-store"
    location = redirect.headers["location"]
    assert location.startswith(s3_app.settings.storage.s3_endpoint_url)
    assert "X-Amz-Signature" in location

    with httpx.Client() as plain:  # a plain client: no app, no boto3
        fetched = plain.get(location)
        assert fetched.status_code == 200 and fetched.content == body
        assert fetched.headers["content-type"] == "audio/mpeg"
        # The range matrix still holds behind the redirect (S3 serves the ranges).
        part = plain.get(location, headers={"Range": "bytes=0-1"})
        assert part.status_code == 206 and part.content == body[:2]
        assert part.headers["content-range"] == f"bytes 0-1/{size}"
        tail = plain.get(location, headers={"Range": "bytes=-500"})
        assert tail.status_code == 206 and tail.content == body[-500:]
        assert plain.get(location, headers={"Range": f"bytes={size}-"}).status_code == 416

    m4a = s3_app.client.get(f"/v1/replays/{seeded.replay_id}/audio.m4a")
    with httpx.Client() as plain:
        fetched = plain.get(m4a.headers["location"])
        assert fetched.headers["content-type"] == "audio/mp4"
        assert fetched.content == seeded.files["m4a"]

    stems_host = new_user(s3_app.client, "other-host@example.com")
    own = seed_replay(s3_app.settings, s3_app.storage, user_id(s3_app.client, stems_host))
    stems = s3_app.client.get(f"/v1/replays/{own.replay_id}/stems.zip", headers=stems_host)
    with httpx.Client() as plain:
        fetched = plain.get(stems.headers["location"])
        assert fetched.content == own.files["stems"]
        assert "attachment" in fetched.headers["content-disposition"]


def test_s3_head_and_conditionals_are_answered_directly(s3_app: MediaApp) -> None:
    seeded = _public(s3_app)
    size = len(seeded.files["mp3"])
    url = f"/v1/replays/{seeded.replay_id}/audio.mp3"
    head = s3_app.client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size)
    assert head.headers["content-type"] == "audio/mpeg"
    assert head.headers["accept-ranges"] == "bytes"
    etag = head.headers["etag"]
    assert etag == f'"{s3_app.storage.head(seeded.keys["mp3"]).etag}"'
    probe = s3_app.client.head(url, headers={"Range": "bytes=0-1"})
    assert probe.status_code == 206 and probe.headers["content-range"] == f"bytes 0-1/{size}"
    past = s3_app.client.head(url, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
    assert s3_app.client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert s3_app.client.head(url, headers={"If-None-Match": etag}).status_code == 304


# -- privacy ----------------------------------------------------------------------------------

PRIVATE_PATHS = (
    "",
    "/audio.mp3",
    "/audio.m4a",
    "/hls/index.m3u8",
    "/hls/seg-00000.m4s",
    "/stems.zip",
    "/waveform.json",
    "/timeline.json",
    "/chapters.json",
    "/nothing.bin",
)


def test_private_replays_are_404_for_outsiders_on_every_url(app: MediaApp, host: Headers) -> None:
    member = new_user(app.client, "member@example.com")
    cohost = new_user(app.client, "cohost@example.com")
    outsider = new_user(app.client, "outsider@example.com")
    seeded = seed_replay(
        app.settings,
        app.storage,
        user_id(app.client, host),
        private=True,
        members=(
            (user_id(app.client, member), "listener"),
            (user_id(app.client, cohost), "cohost"),
        ),
    )
    base = f"/v1/replays/{seeded.replay_id}"
    for headers in ({}, outsider):
        for path in PRIVATE_PATHS:
            for method in ("GET", "HEAD") if path else ("GET",):
                response = app.client.request(method, base + path, headers=headers)
                assert response.status_code == 404, (method, path)
                if method == "GET":
                    assert response.json()["error"]["code"] == "replay_not_found", path
        patch = app.client.patch(base, json={"trim_start": 1.0}, headers=headers)
        assert patch.status_code in (401, 404)
        assert seeded.replay_id not in str(app.client.get("/v1/replays", headers=headers).json())
    # Members see it; only the host and co-hosts get the stems.
    assert app.client.get(base + "/audio.mp3", headers=member).status_code == 200
    assert app.client.get(base + "/stems.zip", headers=member).status_code == 403
    assert app.client.get(base + "/stems.zip", headers=cohost).status_code == 200
    listed = app.client.get("/v1/replays", headers=member).json()["replays"]
    assert [r["id"] for r in listed] == [seeded.replay_id]
    assert app.client.get(base + "/audio.mp3", headers=member).headers["cache-control"] == (
        "private, no-cache"
    )


# -- detail, listing, trim ----------------------------------------------------------------------


def test_detail_lists_speakers_timeline_chapters_and_outputs(app: MediaApp, host: Headers) -> None:
    seeded = _public(app, host)
    anonymous = app.client.get(f"/v1/replays/{seeded.replay_id}").json()
    assert anonymous["status"] == "ready" and anonymous["duration_seconds"] == 8.0
    assert anonymous["loudness"]["integrated_lufs"] == -16.1
    speakers = {s["name"]: s["speaking_seconds"] for s in anonymous["speakers"]}
    assert speakers == {"Hana Host": 5.0, "Gil Guest": 2.5}
    assert [t["start"] for t in anonymous["timeline"]] == [0.0, 4.5, 7.0]
    assert [c["title"] for c in anonymous["chapters"]] == ["Hello", "Guest"]
    outputs = {o["kind"]: o for o in anonymous["outputs"]}
    assert "stems" not in outputs and anonymous["can_download_stems"] is False
    assert outputs["mp3"]["size"] == len(seeded.files["mp3"])
    assert outputs["mp3"]["url"] == f"http://127.0.0.1:8000/v1/replays/{seeded.replay_id}/audio.mp3"
    assert anonymous["hls_url"].endswith("/hls/index.m3u8")
    assert anonymous["waveform_url"].endswith("/waveform.json")
    own = app.client.get(f"/v1/replays/{seeded.replay_id}", headers=host).json()
    assert own["can_download_stems"] is True
    assert {o["kind"] for o in own["outputs"]} >= {"stems", "mp3", "m4a", "hls"}
    missing = app.client.get("/v1/replays/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "replay_not_found"


def test_listing_shows_ready_and_processing_newest_first(app: MediaApp, host: Headers) -> None:
    host_id = user_id(app.client, host)
    first = seed_replay(app.settings, app.storage, host_id, title="First")
    second = seed_replay(app.settings, app.storage, host_id, title="Second", status="processing")
    seed_replay(app.settings, app.storage, host_id, title="Broken", status="failed")
    listed = app.client.get("/v1/replays").json()["replays"]
    assert [r["id"] for r in listed] == [second.replay_id, first.replay_id]
    assert listed[0]["status"] == "processing" and listed[1]["title"] == "First"


def test_host_trims_and_a_rerender_is_enqueued(app: MediaApp, host: Headers) -> None:
    seeded = _public(app, host)
    url = f"/v1/replays/{seeded.replay_id}"
    response = app.client.patch(url, json={"trim_start": 1.5, "trim_end": 7.0}, headers=host)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["trim_start"], body["trim_end"]) == (1.5, 7.0)
    assert body["rerender_job_id"] == "job-1"
    assert app.queue.sent == [(jobs.POSTPROD_RENDER, (app.queue.sent[0][1][0],), jobs.MEDIA_QUEUE)]
    assert app.client.get(url).json()["trim_start"] == 1.5

    for trim in (
        {"trim_start": 9.0},
        {"trim_end": 8.5},
        {"trim_start": 5.0, "trim_end": 4.0},
        {"trim_start": 3.0, "trim_end": 3.5},
    ):
        bad = app.client.patch(url, json=trim, headers=host)
        assert bad.status_code == 422, trim
        assert bad.json()["error"]["code"] == "invalid_trim"
    assert app.client.patch(url, json={"trim_start": -1}, headers=host).status_code == 422
    assert app.client.get(url).json()["trim_end"] == 7.0  # refusals changed nothing

    other = new_user(app.client, "listener@example.com")
    forbidden = app.client.patch(url, json={"trim_start": 1.0}, headers=other)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "host_only"
    assert app.client.patch(url, json={"trim_start": 1.0}).status_code == 401

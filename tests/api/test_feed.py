"""The RSS feed served from the database: parsed by feedparser and podcastparser, checked
against shared/reference/podcast.md, on S3 (no signature may leak) and local storage."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import feedparser
import httpx
import podcastparser
import pytest
import sqlalchemy as sa
from lxml import etree

from core.adapters.db.engine import make_engine
from core.adapters.db.models import Episode, Room, Show
from core.feeds import podcast_guid
from core.settings import Settings
from tests.api.accounts import new_user
from tests.api.replay_seed import MediaApp, media_app, seed_replay, user_id
from tests.api.test_shows import SHOW, image

Headers = dict[str, str]
NS = {
    "itunes": "http://www.itunes.com/dtds/podcast-1.0.dtd",
    "podcast": "https://podcastindex.org/namespace/1.0",
    "atom": "http://www.w3.org/2005/Atom",
}
BASE = "http://127.0.0.1:8000"
FEED = "/feeds/morning-talks.xml"


@pytest.fixture(scope="module")
def mp3(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, float]:
    """A real 5 s MP3 (ffmpeg) and its duration as ffprobe measures it."""
    path = Path(tmp_path_factory.mktemp("mp3")) / "tone.mp3"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=5",
            "-ac",
            "1",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "64k",
            str(path),
        ],
        check=True,
        timeout=60,
    )
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return path.read_bytes(), float(probe.stdout.strip())


def _show_with_artwork(app: MediaApp, host: Headers) -> dict[str, Any]:
    assert app.client.post("/v1/shows", json=SHOW, headers=host).status_code == 201
    stored = app.client.put("/v1/shows/morning-talks/artwork", content=image(), headers=host)
    assert stored.status_code == 200
    show: dict[str, Any] = stored.json()
    return show


def _publish(app: MediaApp, host: Headers, replay_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "replay_id": replay_id,
        "title": "Episode",
        "description": "<p>About it &amp; more</p>",
        **fields,
    }
    response = app.client.post("/v1/shows/morning-talks/episodes", json=body, headers=host)
    assert response.status_code == 201, response.text
    episode: dict[str, Any] = response.json()
    return episode


def _relative(url: str) -> str:
    assert url.startswith(BASE), url
    return url.removeprefix(BASE)


@pytest.fixture
def s3_app(s3_settings: Settings) -> Iterator[MediaApp]:
    with media_app(s3_settings) as app:
        yield app


@pytest.fixture
def app(settings: Settings) -> Iterator[MediaApp]:
    with media_app(settings) as app:
        yield app


def test_feed_passes_the_podcast_checks(s3_app: MediaApp, mp3: tuple[bytes, float]) -> None:
    audio, measured = mp3
    client = s3_app.client
    host = new_user(client, "host@example.com", "Hana Host")
    show = _show_with_artwork(s3_app, host)
    host_id = user_id(client, host)
    seeded = seed_replay(
        s3_app.settings,
        s3_app.storage,
        host_id,
        title="Launch",
        mp3=audio,
        duration=5.0,
        speakers=("Hana Host", "Gil Guest"),
    )
    later = seed_replay(s3_app.settings, s3_app.storage, host_id, title="Later")
    episode = _publish(s3_app, host, seeded.replay_id, season=1, episode=3, title="Launch day")
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    _publish(s3_app, host, later.replay_id, publish_at=future, title="Not yet")

    response = client.get(FEED)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/rss+xml; charset=utf-8"
    xml = response.content
    assert b"Signature" not in xml and b"X-Amz" not in xml  # stable URLs only

    parsed = feedparser.parse(xml)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.title == "Morning Talks"
    assert [entry.title for entry in parsed.entries] == ["Launch day"]  # the scheduled one waits
    stored_size = s3_app.storage.head(seeded.keys["mp3"]).size
    enclosure = parsed.entries[0].enclosures[0]
    assert int(enclosure.length) == stored_size == len(audio)
    assert enclosure.type == "audio/mpeg"
    assert enclosure.href == f"{BASE}/v1/replays/{seeded.replay_id}/audio.mp3"

    podcast = podcastparser.parse(f"{BASE}{FEED}", io.BytesIO(xml))
    assert podcast["title"] == "Morning Talks"
    (item,) = podcast["episodes"]
    assert item["enclosures"][0]["file_size"] == stored_size
    assert item["guid"] == episode["guid"]
    assert abs(item["total_time"] - measured) <= 1.0  # itunes:duration within 1 s of the file

    root = etree.fromstring(xml)
    assert root.nsmap["itunes"] == NS["itunes"] and root.nsmap["podcast"] == NS["podcast"]
    channel = root.find("channel")
    assert channel is not None
    feed_url = f"{BASE}{FEED}"
    assert channel.findtext("podcast:guid", namespaces=NS) == podcast_guid(feed_url)
    assert podcast_guid("https://podnews.net/rss") == "9b024349-ccf0-5f69-a609-6b82873eab3c"
    assert channel.findtext("podcast:locked", namespaces=NS) == "yes"
    self_link = channel.find("atom:link", NS)
    assert self_link is not None and self_link.get("href") == feed_url
    assert channel.findtext("itunes:explicit", namespaces=NS) == "false"
    assert channel.findtext("itunes:owner/itunes:email", namespaces=NS) == "owner@example.com"
    category = channel.find("itunes:category", NS)
    assert category is not None and category.get("text") == "Technology"
    artwork = channel.find("itunes:image", NS)
    assert artwork is not None and artwork.get("href") == show["artwork_url"]
    assert client.head(_relative(show["artwork_url"])).status_code == 200  # Apple HEADs it

    items = channel.findall("item")
    assert len(items) == 1 and len(items[0].findall("enclosure")) == 1
    pub_date = items[0].findtext("pubDate")
    assert pub_date is not None
    parsed_date = parsedate_to_datetime(pub_date)
    assert pub_date.startswith(parsed_date.strftime("%a, "))  # the weekday matches the date
    assert items[0].findtext("itunes:duration", namespaces=NS) == "5"
    assert items[0].findtext("itunes:season", namespaces=NS) == "1"
    people = [(p.text, p.get("role")) for p in items[0].findall("podcast:person", NS)]
    assert people == [("Hana Host", "host"), ("Gil Guest", "guest")]
    chapters = items[0].find("podcast:chapters", NS)
    assert chapters is not None
    assert client.get(_relative(chapters.get("url", ""))).status_code == 302

    # The enclosure's stable URL redirects to a presigned one serving those very bytes.
    redirect = client.get(_relative(enclosure.href))
    assert redirect.status_code == 302
    with httpx.Client() as plain:
        fetched = plain.get(redirect.headers["location"])
        assert fetched.content == audio and fetched.headers["content-type"] == "audio/mpeg"


def test_feed_conditionals_head_and_schedule(app: MediaApp) -> None:
    client = app.client
    host = new_user(client, "host@example.com", "Hana Host")
    assert client.post("/v1/shows", json=SHOW, headers=host).status_code == 201
    incomplete = client.get(FEED)
    assert incomplete.status_code == 409
    assert incomplete.json()["error"]["code"] == "feed_incomplete"
    assert client.get("/feeds/nope.xml").json()["error"]["code"] == "show_not_found"
    client.put("/v1/shows/morning-talks/artwork", content=image(), headers=host)

    host_id = user_id(client, host)
    seeded = seed_replay(app.settings, app.storage, host_id)
    future = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    episode = _publish(app, host, seeded.replay_id, publish_at=future)

    first = client.get(FEED)
    assert first.status_code == 200 and b"<item>" not in first.content
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert client.get(FEED, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(FEED, headers={"If-Modified-Since": modified}).status_code == 304
    head = client.head(FEED)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(first.content))
    assert head.headers["etag"] == etag

    # Once publish_at passes, the episode appears and the validators change.
    engine = make_engine(app.settings)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.update(Episode)
                .where(Episode.id == episode["id"])
                .values(publish_at=datetime.now(UTC) - timedelta(minutes=1))
            )
    finally:
        engine.dispose()
    second = client.get(FEED, headers={"If-None-Match": etag})
    assert second.status_code == 200 and second.headers["etag"] != etag
    assert feedparser.parse(second.content).entries[0].id == episode["guid"]

    # A room made private after publishing leaves the feed (its URLs now 404 for the public).
    engine = make_engine(app.settings)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.update(Room).where(Room.id == seeded.room_id).values(is_private=True)
            )
    finally:
        engine.dispose()
    assert feedparser.parse(client.get(FEED).content).entries == []


def test_live_items_for_the_shows_rooms(app: MediaApp) -> None:
    client = app.client
    host = new_user(client, "host@example.com", "Hana Host")
    _show_with_artwork(app, host)
    start = datetime.now(UTC) + timedelta(days=1)
    scheduled = client.post(
        "/v1/rooms", json={"title": "Tomorrow", "scheduled_start": start.isoformat()}, headers=host
    ).json()
    live = client.post("/v1/rooms", json={"title": "Right now"}, headers=host).json()
    hidden = client.post(
        "/v1/rooms", json={"title": "Secret", "is_private": True}, headers=host
    ).json()
    engine = make_engine(app.settings)
    try:
        with engine.begin() as connection:
            show_id = connection.scalar(sa.select(Show.id).where(Show.slug == "morning-talks"))
            connection.execute(
                sa.update(Room)
                .where(Room.id.in_([scheduled["id"], live["id"], hidden["id"]]))
                .values(show_id=show_id)
            )
    finally:
        engine.dispose()
    root = etree.fromstring(client.get(FEED).content)
    items = {item.findtext("title"): item for item in root.iterfind("channel/podcast:liveItem", NS)}
    assert set(items) == {"Tomorrow", "Right now"}
    assert items["Tomorrow"].get("status") == "pending"
    assert items["Right now"].get("status") == "live"
    link = items["Right now"].find("podcast:contentLink", NS)
    assert link is not None and link.get("href") == f"{BASE}/rooms/{live['id']}"
    assert len(items["Tomorrow"].findall("enclosure")) == 1

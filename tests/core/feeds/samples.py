"""A show with every feature the feed writer supports, for golden and round-trip tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from core.feeds import (
    Chapter,
    Enclosure,
    Episode,
    LiveItem,
    Person,
    Show,
    Soundbite,
    Transcript,
    podcast_guid,
)

BASE = "https://roomcast.example.com"
SELF_URL = f"{BASE}/v1/shows/deep-dives/feed.xml"
EPISODE_BYTES = 21_604_351


def show() -> Show:
    return Show(
        title="Deep Dives Live",
        description="Weekly rooms about <em>audio engineering</em> & podcasting, recorded live.",
        link=f"{BASE}/shows/deep-dives",
        language="en-us",
        image_url=f"{BASE}/v1/shows/deep-dives/artwork.png",
        category="Technology",
        explicit=False,
        owner_name="Ada Host",
        owner_email="ada@roomcast.example.com",
        author="Ada Host",
        guid=podcast_guid(SELF_URL),
        copyright="© 2024 Ada Host",
        people=(Person("Ada Host", href=f"{BASE}/people/ada"),),
    )


def episodes() -> list[Episode]:
    # Deliberately out of order: the writer sorts newest first.
    older = Episode(
        guid="roomcast:episode:0001",
        title="Trailer: what Deep Dives is",
        description="Two minutes on what to expect.",
        pub_date=datetime(2024, 2, 26, 9, 0, tzinfo=UTC),
        enclosure=Enclosure(f"{BASE}/v1/replays/0001/audio.mp3", 1_440_000, "audio/mpeg"),
        duration_seconds=120.2,
        episode_type="trailer",
    )
    newer = Episode(
        guid="roomcast:episode:0002",
        title="Loudness, measured",
        description="Why −16 LUFS? A room with <b>three</b> engineers.",
        # 19:30 in New York on a Thursday is 00:30 GMT on the Friday: the weekday must follow.
        pub_date=datetime(2024, 2, 29, 19, 30, tzinfo=timezone(timedelta(hours=-5))),
        enclosure=Enclosure(f"{BASE}/v1/replays/0002/audio.mp3", EPISODE_BYTES, "audio/mpeg"),
        duration_seconds=3600.4,
        episode_type="full",
        episode_number=1,
        season=1,
        link=f"{BASE}/replays/0002",
        chapters_url=f"{BASE}/v1/replays/0002/chapters.json",
        transcripts=(Transcript(f"{BASE}/v1/replays/0002/transcript.vtt", language="en"),),
        people=(Person("Ada Host"), Person("Grace Guest", role="guest")),
        soundbites=(Soundbite(start_time=754.0, duration=42.5, title="The −1 dBTP ceiling"),),
        alternate_enclosures=(
            Enclosure(f"{BASE}/v1/replays/0002/hls/index.m3u8", 0, "application/x-mpegURL"),
        ),
    )
    return [older, newer]


def live_items() -> list[LiveItem]:
    return [
        LiveItem(
            guid="roomcast:room:77",
            title="Live: mixing rooms at scale",
            description="Join us on stage.",
            status="pending",
            start=datetime(2024, 3, 7, 18, 0, tzinfo=UTC),
            end=datetime(2024, 3, 7, 19, 0, tzinfo=UTC),
            enclosure=Enclosure(f"{BASE}/v1/rooms/77/live.mp3", 0, "audio/mpeg"),
            content_link_url=f"{BASE}/rooms/77",
        )
    ]


def chapters() -> list[Chapter]:
    return [
        Chapter(start_time=754.25, title="True peak"),
        Chapter(start_time=0, title="Welcome"),
        Chapter(start_time=180, title="What LUFS measures", url=f"{BASE}/notes/lufs"),
    ]

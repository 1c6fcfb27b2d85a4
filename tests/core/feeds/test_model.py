"""Validation of the feed model: what Apple or a Podcasting 2.0 app would refuse, we refuse."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import pytest

from core.errors import InvalidFeed, InvalidInput
from core.feeds import Enclosure, Episode, LiveItem, Person, Show, Soundbite, Transcript
from core.feeds.vocab import is_category, is_language
from tests.core.feeds import samples


def _show(**changes: Any) -> Show:
    return dataclasses.replace(samples.show(), **changes)


def _episode(**changes: Any) -> Episode:
    return dataclasses.replace(samples.episodes()[1], **changes)


def test_samples_are_valid_and_frozen() -> None:
    show = samples.show()
    with pytest.raises(dataclasses.FrozenInstanceError):
        show.title = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": ""}, "show.title"),
        ({"title": " padded"}, "show.title"),
        ({"title": "t" * 256}, "show.title"),
        ({"description": "é" * 2001}, "show.description"),  # 4002 bytes
        ({"description": "ends the CDATA ]]> early"}, "show.description"),
        ({"language": "english"}, "show.language"),
        ({"language": "xx"}, "show.language"),
        ({"category": "Technologies"}, "show.category"),
        ({"category": "Arts", "subcategory": "Tech News"}, "show.category"),
        ({"explicit": "yes"}, "show.explicit"),
        ({"explicit": 0}, "show.explicit"),
        ({"image_url": "https://example.com/art.gif"}, "show.image_url"),
        ({"link": "ftp://example.com/"}, "show.link"),
        ({"owner_email": "not-an-address"}, "show.owner_email"),
        ({"locked": "yes"}, "show.locked"),
    ],
)
def test_show_refuses(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidFeed) as caught:
        _show(**changes)
    assert caught.value.field == field
    assert caught.value.code == "invalid_feed"
    assert isinstance(caught.value, InvalidInput)


def test_limits_are_inclusive() -> None:
    assert _show(title="t" * 255).title == "t" * 255
    assert len(_show(description="d" * 4000).description) == 4000
    assert _show(language="EN-GB").language == "EN-GB"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"episode_type": "preview"}, "episode.episode_type"),
        ({"pub_date": datetime(2024, 1, 1)}, "episode.pub_date"),
        ({"episode_number": 0}, "episode.episode_number"),
        ({"season": True}, "episode.season"),
        ({"duration_seconds": 0}, "episode.duration_seconds"),
        ({"duration_seconds": float("nan")}, "episode.duration_seconds"),
        ({"explicit": "no"}, "episode.explicit"),
        (
            {"enclosure": Enclosure("https://e.com/a.m3u8", 10, "application/x-mpegURL")},
            "episode.enclosure.type",
        ),
        (
            {"enclosure": Enclosure("https://e.com/a.mp3", 0, "audio/mpeg")},
            "episode.enclosure.length",
        ),
        ({"soundbites": (Soundbite(3590, 30),)}, "episode.soundbites"),
        (
            {"chapters_url": "https://bucket.s3.amazonaws.com/c.json?X-Amz-Signature=ab"},
            "episode.chapters_url",
        ),
    ],
)
def test_episode_refuses(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidFeed) as caught:
        _episode(**changes)
    assert caught.value.field == field


@pytest.mark.parametrize(
    "url",
    [
        "https://bucket.s3.amazonaws.com/a.mp3?X-Amz-Algorithm=AWS4&X-Amz-Signature=abc",
        "https://bucket.s3.amazonaws.com/a.mp3?AWSAccessKeyId=x&Signature=abc&Expires=1",
        "https://cdn.example.com/a.mp3?x-amz-credential=abc",
    ],
)
def test_presigned_enclosure_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidFeed) as caught:
        Enclosure(url, 100, "audio/mpeg")
    assert "presigned" in str(caught.value)


@pytest.mark.parametrize("length", [-1, 1.5, True, "100"])
def test_enclosure_length_is_a_byte_count(length: Any) -> None:
    with pytest.raises(InvalidFeed):
        Enclosure("https://e.com/a.mp3", length, "audio/mpeg")


@pytest.mark.parametrize("duration", [14.9, 120.1])
def test_soundbite_duration_bounds(duration: float) -> None:
    with pytest.raises(InvalidFeed):
        Soundbite(0, duration)
    assert Soundbite(0, 15).duration == 15 and Soundbite(0, 120).duration == 120


def test_transcript_and_person_checks() -> None:
    with pytest.raises(InvalidFeed):
        Transcript("https://e.com/t.doc", type="application/msword")
    with pytest.raises(InvalidFeed):
        Transcript("https://e.com/t.vtt", language="klingon")
    with pytest.raises(InvalidFeed):
        Person("Name\nWith newline")


def test_live_item_checks() -> None:
    live = samples.live_items()[0]
    with pytest.raises(InvalidFeed) as caught:
        dataclasses.replace(live, status="started")  # type: ignore[arg-type]
    assert caught.value.field == "live_item.status"
    with pytest.raises(InvalidFeed) as caught:
        dataclasses.replace(live, end=live.start)
    assert caught.value.field == "live_item.end"
    assert isinstance(dataclasses.replace(live, status="live"), LiveItem)


def test_vocabularies() -> None:
    assert is_language("en") and is_language("pt-BR") and is_language("es-419")
    assert not is_language("en_US") and not is_language("eng")
    assert is_category("Society & Culture", "Documentary")
    assert not is_category("Society & Culture", "Comedy Fiction")

"""podcast:guid derivation (Podcasting 2.0 test vector)."""

from __future__ import annotations

import uuid

import pytest

from core.errors import InvalidFeed
from core.feeds import podcast_guid

VECTOR = "9b024349-ccf0-5f69-a609-6b82873eab3c"


@pytest.mark.parametrize(
    "url",
    ["podnews.net/rss", "https://podnews.net/rss", "http://podnews.net/rss/", "podnews.net/rss//"],
)
def test_published_vector_with_and_without_scheme_and_slashes(url: str) -> None:
    assert podcast_guid(url) == VECTOR


def test_is_a_version_5_uuid_and_differs_per_feed() -> None:
    guid = uuid.UUID(podcast_guid("https://roomcast.example.com/v1/shows/a/feed.xml"))
    assert guid.version == 5
    assert str(guid) != podcast_guid("https://roomcast.example.com/v1/shows/b/feed.xml")


def test_empty_url_is_refused() -> None:
    with pytest.raises(InvalidFeed):
        podcast_guid("https://")

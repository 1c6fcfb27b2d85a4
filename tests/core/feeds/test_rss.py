"""The RSS writer: golden output, and what two independent podcast parsers read back."""

from __future__ import annotations

import io
import os
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import feedparser
import podcastparser
import pytest
from lxml import etree

from core.errors import InvalidFeed
from core.feeds import render_feed
from core.feeds.rss import ATOM, CONTENT, ITUNES, PODCAST, whole_seconds
from tests.core.feeds import samples

GOLDEN = Path(__file__).parent / "golden" / "deep-dives.xml"
NS = {"itunes": ITUNES, "podcast": PODCAST, "atom": ATOM, "content": CONTENT}


@pytest.fixture(scope="module")
def feed() -> bytes:
    return render_feed(
        samples.show(), samples.episodes(), samples.live_items(), self_url=samples.SELF_URL
    )


@pytest.fixture(scope="module")
def tree(feed: bytes) -> etree._Element:
    return etree.fromstring(feed)


def test_matches_golden_file(feed: bytes) -> None:
    if os.environ.get("ROOMCAST_UPDATE_GOLDEN") == "1":
        GOLDEN.write_bytes(feed)
    assert feed == GOLDEN.read_bytes(), "feed changed; set ROOMCAST_UPDATE_GOLDEN=1 if intended"


def test_output_is_deterministic_and_order_independent() -> None:
    args = (samples.show(), samples.episodes(), samples.live_items())
    first = render_feed(*args, self_url=samples.SELF_URL)
    shuffled = render_feed(
        samples.show(),
        list(reversed(samples.episodes())),
        samples.live_items(),
        self_url=samples.SELF_URL,
    )
    assert first == shuffled


def test_declares_the_four_namespaces(tree: etree._Element) -> None:
    assert tree.tag == "rss" and tree.get("version") == "2.0"
    assert tree.nsmap == {"itunes": ITUNES, "podcast": PODCAST, "atom": ATOM, "content": CONTENT}


@pytest.mark.parametrize(
    "path",
    [
        "title",
        "description",
        "link",
        "language",
        "itunes:image[@href]",
        "itunes:category[@text='Technology']",
        "itunes:explicit",
        "itunes:owner/itunes:email",
        "atom:link[@rel='self']",
        "itunes:author",
        "podcast:guid",
        "podcast:locked[@owner]",
    ],
)
def test_channel_has_required_tag(tree: etree._Element, path: str) -> None:
    found = tree.xpath(f"channel/{path}", namespaces=NS)
    assert len(found) == 1, path


def test_channel_values(tree: etree._Element) -> None:
    channel = tree.find("channel")
    assert channel is not None
    assert channel.findtext(f"{{{ITUNES}}}explicit") == "false"
    assert channel.findtext(f"{{{PODCAST}}}locked") == "yes"
    assert channel.find(f"{{{ATOM}}}link").get("href") == samples.SELF_URL
    assert channel.findtext(f"{{{PODCAST}}}guid") == samples.show().guid


def test_each_item_has_exactly_one_enclosure_and_a_non_permalink_guid(
    tree: etree._Element,
) -> None:
    items = tree.findall("channel/item")
    assert len(items) == 2
    for item in items:
        enclosures = item.findall("enclosure")
        assert len(enclosures) == 1
        assert set(enclosures[0].keys()) == {"url", "length", "type"}
        assert int(enclosures[0].get("length", "0")) > 0
        assert item.find("guid").get("isPermaLink") == "false"


def test_pubdate_weekday_matches_date(tree: etree._Element) -> None:
    for item in tree.findall("channel/item"):
        text = item.findtext("pubDate") or ""
        parsed = parsedate_to_datetime(text)
        assert text.startswith(parsed.strftime("%a, ")), text
    newest = tree.find("channel/item")
    assert newest is not None
    # 2024-02-29 19:30 −05:00 is Friday 1 March 00:30 GMT.
    assert newest.findtext("pubDate") == "Fri, 01 Mar 2024 00:30:00 GMT"


def test_podcasting_2_item_tags(tree: etree._Element) -> None:
    item = tree.find("channel/item")
    assert item is not None
    assert item.findtext(f"{{{ITUNES}}}duration") == "3600"
    assert item.findtext(f"{{{ITUNES}}}episodeType") == "full"
    chapters = item.find(f"{{{PODCAST}}}chapters")
    assert chapters is not None and chapters.get("type") == "application/json+chapters"
    transcript = item.find(f"{{{PODCAST}}}transcript")
    assert transcript is not None and transcript.get("type") == "text/vtt"
    persons = item.findall(f"{{{PODCAST}}}person")
    assert [(p.text, p.get("role")) for p in persons] == [
        ("Ada Host", "host"),
        ("Grace Guest", "guest"),
    ]
    bite = item.find(f"{{{PODCAST}}}soundbite")
    assert bite is not None and (bite.get("startTime"), bite.get("duration")) == ("754", "42.5")
    source = item.find(f"{{{PODCAST}}}alternateEnclosure/{{{PODCAST}}}source")
    assert source is not None and source.get("uri", "").endswith("index.m3u8")
    assert "<b>three</b>" in (item.findtext(f"{{{CONTENT}}}encoded") or "")


def test_live_item(tree: etree._Element) -> None:
    live = tree.find(f"channel/{{{PODCAST}}}liveItem")
    assert live is not None
    assert live.get("status") == "pending"
    assert live.get("start") == "2024-03-07T18:00:00+00:00"
    assert live.get("end") == "2024-03-07T19:00:00+00:00"
    link = live.find(f"{{{PODCAST}}}contentLink")
    assert link is not None and link.get("href") == f"{samples.BASE}/rooms/77"
    assert len(live.findall("enclosure")) == 1


def test_no_presigned_url_in_the_feed(feed: bytes) -> None:
    assert b"X-Amz-Signature" not in feed
    assert b"Signature=" not in feed


def test_feedparser_reads_it_back(feed: bytes) -> None:
    parsed = feedparser.parse(feed)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    assert {ITUNES, PODCAST, CONTENT} <= set(parsed.namespaces.values())
    assert parsed.feed.title == "Deep Dives Live"
    assert parsed.feed.language == "en-us"
    # feedparser 6 only maps the old yes/clean values of itunes:explicit; podcastparser below
    # checks true/false.
    assert parsed.feed.author == "Ada Host"
    newest = parsed.entries[0]
    assert newest.id == "roomcast:episode:0002"
    assert newest.itunes_duration == "3600"
    assert newest.published_parsed[:6] == (2024, 3, 1, 0, 30, 0)
    assert len(newest.enclosures) == 1
    assert int(newest.enclosures[0].length) == samples.EPISODE_BYTES
    assert newest.enclosures[0].type == "audio/mpeg"


def test_podcastparser_reads_it_back(feed: bytes) -> None:
    parsed = podcastparser.parse(samples.SELF_URL, io.BytesIO(feed))
    assert parsed["title"] == "Deep Dives Live"
    assert parsed["explicit"] is False
    assert parsed["itunes_owner"]["email"] == "ada@roomcast.example.com"
    assert parsed["itunes_categories"] == [["Technology"]]
    by_guid = {episode["guid"]: episode for episode in parsed["episodes"]}
    full = by_guid["roomcast:episode:0002"]
    assert full["total_time"] == 3600
    assert full["published"] == int(datetime(2024, 3, 1, 0, 30, tzinfo=UTC).timestamp())
    assert full["number"] == 1 and full["season"] == 1 and full["type"] == "full"
    assert [(e["url"], e["file_size"], e["mime_type"]) for e in full["enclosures"]] == [
        (f"{samples.BASE}/v1/replays/0002/audio.mp3", samples.EPISODE_BYTES, "audio/mpeg")
    ]
    assert by_guid["roomcast:episode:0001"]["type"] == "trailer"
    assert by_guid["roomcast:episode:0001"]["total_time"] == 120


def test_duplicate_episode_guids_are_refused() -> None:
    episode = samples.episodes()[0]
    with pytest.raises(InvalidFeed) as caught:
        render_feed(samples.show(), [episode, episode], self_url=samples.SELF_URL)
    assert caught.value.field == "episode.guid"


def test_feed_without_episodes_is_still_valid() -> None:
    feed = render_feed(samples.show(), [], self_url=samples.SELF_URL)
    parsed = feedparser.parse(feed)
    assert not parsed.bozo
    assert parsed.entries == []
    assert re.search(rb"<lastBuildDate>", feed) is None


@pytest.mark.parametrize(
    ("seconds", "written"), [(0.5, 1), (1.49, 1), (2.5, 3), (3600.4, 3600), (3599.5, 3600)]
)
def test_duration_is_the_nearest_whole_second(seconds: float, written: int) -> None:
    assert whole_seconds(seconds) == written

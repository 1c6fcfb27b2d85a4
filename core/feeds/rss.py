"""RSS 2.0 for a show: Apple Podcasts tags, Podcasting 2.0, atom self link.

:func:`render_feed` is pure and deterministic (same values → same bytes): items are ordered by
publication date, newest first, ties by guid; nothing depends on the clock. Dates are written
in GMT with :func:`email.utils.format_datetime`, so the weekday always matches the date.
HTML descriptions go in CDATA (and, for items, ``content:encoded`` too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Final

from lxml import etree

from core.errors import InvalidFeed
from core.feeds import checks
from core.feeds.model import HLS_TYPES, Enclosure, Episode, LiveItem, Person, Show

ITUNES: Final = "http://www.itunes.com/dtds/podcast-1.0.dtd"
PODCAST: Final = "https://podcastindex.org/namespace/1.0"
ATOM: Final = "http://www.w3.org/2005/Atom"
CONTENT: Final = "http://purl.org/rss/1.0/modules/content/"
NSMAP: Final = {"itunes": ITUNES, "podcast": PODCAST, "atom": ATOM, "content": CONTENT}
GENERATOR: Final = "Roomcast"
CHAPTERS_TYPE: Final = "application/json+chapters"


def render_feed(
    show: Show,
    episodes: Sequence[Episode],
    live_items: Sequence[LiveItem] = (),
    *,
    self_url: str,
) -> bytes:
    """The feed document (UTF-8 bytes with an XML declaration) served at ``self_url``."""
    checks.url("self_url", self_url)
    _require_unique("episode.guid", [episode.guid for episode in episodes])
    _require_unique("live_item.guid", [item.guid for item in live_items])
    rss = etree.Element("rss", nsmap=NSMAP)
    rss.set("version", "2.0")
    channel = _sub(rss, "channel")
    _channel_head(channel, show, self_url)
    if episodes:
        newest = max(episode.pub_date for episode in episodes)
        _sub(channel, "lastBuildDate", _rfc2822(newest))
    for live in sorted(live_items, key=lambda item: (item.start, item.guid)):
        _live_item(channel, live)
    ordered = sorted(episodes, key=lambda e: e.guid)
    ordered.sort(key=lambda e: e.pub_date, reverse=True)
    for episode in ordered:
        _item(channel, episode, show)
    document: bytes = etree.tostring(rss, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return document


def _channel_head(channel: etree._Element, show: Show, self_url: str) -> None:
    _sub(channel, "title", show.title)
    _description(channel, show.description)
    _sub(channel, "link", show.link)
    _sub(channel, "language", show.language)
    _sub(channel, "generator", GENERATOR)
    if show.copyright is not None:
        _sub(channel, "copyright", show.copyright)
    _sub(channel, f"{{{ATOM}}}link", href=self_url, rel="self", type="application/rss+xml")
    _sub(channel, f"{{{ITUNES}}}author", show.author)
    _sub(channel, f"{{{ITUNES}}}image", href=show.image_url)
    category = _sub(channel, f"{{{ITUNES}}}category", text=show.category)
    if show.subcategory is not None:
        _sub(category, f"{{{ITUNES}}}category", text=show.subcategory)
    _sub(channel, f"{{{ITUNES}}}explicit", _bool(show.explicit))
    _sub(channel, f"{{{ITUNES}}}type", "episodic")
    owner = _sub(channel, f"{{{ITUNES}}}owner")
    _sub(owner, f"{{{ITUNES}}}name", show.owner_name)
    _sub(owner, f"{{{ITUNES}}}email", show.owner_email)
    _sub(channel, f"{{{PODCAST}}}guid", show.guid)
    _sub(channel, f"{{{PODCAST}}}locked", "yes" if show.locked else "no", owner=show.owner_email)
    for person in show.people:
        _person(channel, person)


def _item(channel: etree._Element, episode: Episode, show: Show) -> None:
    item = _sub(channel, "item")
    _sub(item, "title", episode.title)
    _description(item, episode.description)
    if _looks_like_html(episode.description):
        _sub(item, f"{{{CONTENT}}}encoded").text = etree.CDATA(episode.description)
    if episode.link is not None:
        _sub(item, "link", episode.link)
    _enclosure(item, episode.enclosure)
    _sub(item, "guid", episode.guid, isPermaLink="false")
    _sub(item, "pubDate", _rfc2822(episode.pub_date))
    _sub(item, f"{{{ITUNES}}}title", episode.title)
    _sub(item, f"{{{ITUNES}}}duration", str(whole_seconds(episode.duration_seconds)))
    _sub(item, f"{{{ITUNES}}}episodeType", episode.episode_type)
    if episode.season is not None:
        _sub(item, f"{{{ITUNES}}}season", str(episode.season))
    if episode.episode_number is not None:
        _sub(item, f"{{{ITUNES}}}episode", str(episode.episode_number))
    explicit = show.explicit if episode.explicit is None else episode.explicit
    _sub(item, f"{{{ITUNES}}}explicit", _bool(explicit))
    if episode.image_url is not None:
        _sub(item, f"{{{ITUNES}}}image", href=episode.image_url)
    for transcript in episode.transcripts:
        attrs = {"url": transcript.url, "type": transcript.type}
        if transcript.language is not None:
            attrs["language"] = transcript.language
        if transcript.rel is not None:
            attrs["rel"] = transcript.rel
        _sub(item, f"{{{PODCAST}}}transcript", **attrs)
    if episode.chapters_url is not None:
        _sub(item, f"{{{PODCAST}}}chapters", url=episode.chapters_url, type=CHAPTERS_TYPE)
    for person in episode.people:
        _person(item, person)
    for bite in episode.soundbites:
        _sub(
            item,
            f"{{{PODCAST}}}soundbite",
            bite.title,
            startTime=_number(bite.start_time),
            duration=_number(bite.duration),
        )
    for alternate in episode.alternate_enclosures:
        _alternate_enclosure(item, alternate)


def _live_item(channel: etree._Element, live: LiveItem) -> None:
    item = _sub(
        channel,
        f"{{{PODCAST}}}liveItem",
        status=live.status,
        start=_iso(live.start),
        end=_iso(live.end),
    )
    _sub(item, "title", live.title)
    _description(item, live.description)
    _sub(item, "guid", live.guid, isPermaLink="false")
    _enclosure(item, live.enclosure)
    _sub(item, f"{{{PODCAST}}}contentLink", live.content_link_text, href=live.content_link_url)


def _enclosure(parent: etree._Element, enclosure: Enclosure) -> None:
    _sub(parent, "enclosure", url=enclosure.url, length=str(enclosure.length), type=enclosure.type)


def _alternate_enclosure(parent: etree._Element, enclosure: Enclosure) -> None:
    attrs = {"type": enclosure.type}
    if enclosure.length:
        attrs["length"] = str(enclosure.length)
    if enclosure.type in HLS_TYPES:
        attrs["title"] = "HLS"
    alternate = _sub(parent, f"{{{PODCAST}}}alternateEnclosure", **attrs)
    _sub(alternate, f"{{{PODCAST}}}source", uri=enclosure.url)


def _person(parent: etree._Element, person: Person) -> None:
    attrs = {"role": person.role, "group": person.group}
    if person.href is not None:
        attrs["href"] = person.href
    if person.img is not None:
        attrs["img"] = person.img
    _sub(parent, f"{{{PODCAST}}}person", person.name, **attrs)


def _description(parent: etree._Element, text: str) -> None:
    element = _sub(parent, "description")
    element.text = etree.CDATA(text) if _looks_like_html(text) else text


def _sub(
    parent: etree._Element, tag: str, value: str | None = None, /, **attrs: str
) -> etree._Element:
    # Attributes are set in the order given, so output is stable across runs. ``value`` is
    # positional-only because ``text`` is itself an attribute name (itunes:category text=...).
    element = etree.SubElement(parent, tag)
    for name, attr in attrs.items():
        element.set(name, attr)
    if value is not None:
        element.text = value
    return element


def whole_seconds(duration: float) -> int:
    """``itunes:duration``: nearest whole second, halves rounded up, at least 1."""
    # round() would send 0.5 to 0 and 2.5 to 2 (banker's rounding).
    return max(1, math.floor(duration + 0.5))


def _require_unique(field: str, guids: list[str]) -> None:
    seen: set[str] = set()
    for guid in guids:
        if guid in seen:
            raise InvalidFeed(field, f"duplicate guid {guid!r}; every item needs its own")
        seen.add(guid)


def _looks_like_html(text: str) -> bool:
    return "<" in text or "&" in text


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _rfc2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _number(seconds: float) -> str:
    rounded = round(float(seconds), 3)
    return str(int(rounded)) if rounded.is_integer() else repr(rounded)

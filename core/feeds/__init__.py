"""Podcast feeds: the show/episode model, RSS rendering, chapters and ``podcast:guid``.

Pure: values in, bytes out. The API serves what these functions return; nothing here does I/O.
"""

from __future__ import annotations

from core.feeds.chapters import parse_chapters, render_chapters
from core.feeds.guid import podcast_guid
from core.feeds.model import (
    Chapter,
    Enclosure,
    Episode,
    LiveItem,
    Person,
    Show,
    Soundbite,
    Transcript,
)
from core.feeds.rss import render_feed

__all__ = [
    "Chapter",
    "Enclosure",
    "Episode",
    "LiveItem",
    "Person",
    "Show",
    "Soundbite",
    "Transcript",
    "parse_chapters",
    "podcast_guid",
    "render_chapters",
    "render_feed",
]

"""Podcasting 2.0 chapters files (JSON, version 1.2.0).

Served as ``application/json+chapters`` and linked from an item's ``podcast:chapters``. The
writer sorts chapters by ascending ``startTime`` (the format requires it) and refuses two
chapters starting at the same moment; the reader accepts what the writer produces and any
file from another tool that follows the format, and refuses the rest with
:class:`~core.errors.InvalidFeed`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, Final

from core.errors import InvalidFeed
from core.feeds import checks
from core.feeds.model import Chapter

CHAPTERS_VERSION: Final = "1.2.0"
MEDIA_TYPE: Final = "application/json+chapters"


def chapters_document(
    chapters: Sequence[Chapter], *, title: str | None = None, podcast_name: str | None = None
) -> dict[str, Any]:
    """The chapters file as a JSON-ready dict, chapters in ascending ``startTime``."""
    checks.optional_text("chapters.title", title)
    checks.optional_text("chapters.podcast_name", podcast_name)
    ordered = sorted(chapters, key=lambda chapter: chapter.start_time)
    for before, after in pairwise(ordered):
        if before.start_time == after.start_time:
            raise InvalidFeed("chapters", f"two chapters start at {after.start_time} s")
    document: dict[str, Any] = {"version": CHAPTERS_VERSION}
    if title is not None:
        document["title"] = title
    if podcast_name is not None:
        document["podcastName"] = podcast_name
    document["chapters"] = [_chapter(chapter) for chapter in ordered]
    return document


def render_chapters(
    chapters: Sequence[Chapter], *, title: str | None = None, podcast_name: str | None = None
) -> bytes:
    """The chapters file as UTF-8 JSON bytes (stable key order, golden-testable)."""
    document = chapters_document(chapters, title=title, podcast_name=podcast_name)
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def parse_chapters(data: bytes | str) -> tuple[Chapter, ...]:
    """Chapters read back from a chapters file, in ascending ``startTime``."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidFeed("chapters", f"not JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("version"), str):
        raise InvalidFeed("chapters", "a chapters file is an object with a 'version' string")
    entries = document.get("chapters")
    if not isinstance(entries, list):
        raise InvalidFeed("chapters", "'chapters' must be a list")
    parsed: list[Chapter] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InvalidFeed(f"chapters[{index}]", "must be an object")
        start = entry.get("startTime")
        if isinstance(start, bool) or not isinstance(start, (int, float)):
            raise InvalidFeed(f"chapters[{index}].startTime", "must be a number of seconds")
        parsed.append(
            Chapter(
                start_time=start,
                title=_str(entry, "title", index) or "",
                end_time=_optional_number(entry, "endTime", index),
                img=_str(entry, "img", index),
                url=_str(entry, "url", index),
                toc=entry.get("toc", True),
            )
        )
    if any(a.start_time > b.start_time for a, b in pairwise(parsed)):
        raise InvalidFeed("chapters", "startTime values must be ascending")
    return tuple(parsed)


def _chapter(chapter: Chapter) -> dict[str, Any]:
    entry: dict[str, Any] = {"startTime": _seconds(chapter.start_time), "title": chapter.title}
    if chapter.end_time is not None:
        entry["endTime"] = _seconds(chapter.end_time)
    if chapter.img is not None:
        entry["img"] = chapter.img
    if chapter.url is not None:
        entry["url"] = chapter.url
    if not chapter.toc:
        entry["toc"] = False
    return entry


def _seconds(value: float) -> int | float:
    # Whole seconds print as integers; fractions keep millisecond precision.
    rounded = round(float(value), 3)
    return int(rounded) if rounded.is_integer() else rounded


def _str(entry: dict[str, Any], key: str, index: int) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidFeed(f"chapters[{index}].{key}", "must be a string")
    return value


def _optional_number(entry: dict[str, Any], key: str, index: int) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidFeed(f"chapters[{index}].{key}", "must be a number of seconds")
    return float(value)

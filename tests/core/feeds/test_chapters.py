"""Podcasting 2.0 chapters files."""

from __future__ import annotations

import json

import pytest

from core.errors import InvalidFeed
from core.feeds import Chapter, parse_chapters, render_chapters
from tests.core.feeds import samples


def test_document_is_version_1_2_0_sorted_by_start_time() -> None:
    data = render_chapters(samples.chapters(), title="Loudness, measured")
    document = json.loads(data)
    assert document["version"] == "1.2.0"
    assert document["title"] == "Loudness, measured"
    assert [c["startTime"] for c in document["chapters"]] == [0, 180, 754.25]
    assert document["chapters"][1] == {
        "startTime": 180,
        "title": "What LUFS measures",
        "url": f"{samples.BASE}/notes/lufs",
    }


def test_round_trip() -> None:
    original = samples.chapters()
    parsed = parse_chapters(render_chapters(original))
    assert parsed == tuple(sorted(original, key=lambda c: c.start_time))


def test_hidden_chapter_keeps_toc_false() -> None:
    data = render_chapters([Chapter(0, "Intro"), Chapter(30, "Ad", toc=False, end_time=60)])
    entry = json.loads(data)["chapters"][1]
    assert entry == {"startTime": 30, "title": "Ad", "endTime": 60, "toc": False}
    assert parse_chapters(data)[1].toc is False


def test_two_chapters_at_the_same_time_are_refused() -> None:
    with pytest.raises(InvalidFeed):
        render_chapters([Chapter(10, "A"), Chapter(10, "B")])


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"chapters": []}',
        b'{"version": "1.2.0", "chapters": {}}',
        b'{"version": "1.2.0", "chapters": [{"title": "no start"}]}',
        (
            b'{"version": "1.2.0", "chapters": [{"startTime": 5, "title": "B"},'
            b' {"startTime": 1, "title": "A"}]}'
        ),
        b'{"version": "1.2.0", "chapters": [{"startTime": 0, "title": "A", "toc": "no"}]}',
    ],
)
def test_malformed_files_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidFeed):
        parse_chapters(data)


def test_negative_start_is_refused() -> None:
    with pytest.raises(InvalidFeed):
        Chapter(-1, "Before the start")

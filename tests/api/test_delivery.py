"""Pure pieces of file delivery and replay media: validators, If-Range, trims, the timeline."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from api.delivery import etag_matches, http_date, not_modified, quote_etag, range_header
from api.replay_media import hls_key, parse_timeline, validate_trim
from core.errors import InvalidInput, NotFound

MODIFIED = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def test_etag_matching_is_weak_and_accepts_lists_and_star() -> None:
    tag = quote_etag("abc")
    assert tag == '"abc"' and quote_etag(tag) == tag
    assert etag_matches('"abc"', tag) and etag_matches('W/"abc"', tag)
    assert etag_matches('"x", "abc"', tag) and etag_matches("*", tag)
    assert not etag_matches('"abcd"', tag) and not etag_matches(None, tag)


def test_not_modified_prefers_if_none_match_over_dates() -> None:
    date = http_date(MODIFIED)
    assert date == "Sun, 01 Mar 2026 12:30:15 GMT"
    assert not_modified({"if-modified-since": date}, '"a"', MODIFIED)
    assert not not_modified({"if-modified-since": "Sun, 01 Mar 2026 12:30:14 GMT"}, '"a"', MODIFIED)
    assert not not_modified({"if-none-match": '"b"', "if-modified-since": date}, '"a"', MODIFIED)
    assert not not_modified({"if-modified-since": "garbage"}, '"a"', MODIFIED)


def test_if_range_keeps_the_range_only_for_the_current_version() -> None:
    wanted = {"range": "bytes=0-1"}
    assert range_header(wanted, '"a"', MODIFIED) == "bytes=0-1"
    assert range_header({**wanted, "if-range": '"a"'}, '"a"', MODIFIED) == "bytes=0-1"
    assert range_header({**wanted, "if-range": '"b"'}, '"a"', MODIFIED) is None
    assert range_header({**wanted, "if-range": 'W/"a"'}, '"a"', MODIFIED) is None
    assert range_header({**wanted, "if-range": http_date(MODIFIED)}, '"a"', MODIFIED) == "bytes=0-1"
    assert (
        range_header({**wanted, "if-range": "Mon, 02 Mar 2026 00:00:00 GMT"}, '"a"', MODIFIED)
        is None
    )


@pytest.mark.parametrize(
    ("start", "end", "duration"),
    [(None, None, 10.0), (1.0, 9.0, 10.0), (0.0, 10.0, 10.0), (None, 1.0, 10.0), (2.0, None, None)],
)
def test_valid_trims(start: float | None, end: float | None, duration: float | None) -> None:
    validate_trim(start, end, duration)


@pytest.mark.parametrize(
    ("start", "end", "duration"),
    [
        (-1.0, None, 10.0),
        (10.0, None, 10.0),
        (None, 10.5, 10.0),
        (5.0, 4.0, 10.0),
        (5.0, 5.5, 10.0),
        (9.5, None, 10.0),
        (float("nan"), None, 10.0),
    ],
)
def test_invalid_trims(start: float | None, end: float | None, duration: float | None) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_trim(start, end, duration)
    assert caught.value.code == "invalid_trim"


def test_timeline_totals_speaking_time_and_sorts_turns() -> None:
    document = {
        "speakers": [{"id": "a", "name": "Ann"}, {"id": "b", "display_name": "Bo"}, {"id": "c"}],
        "turns": [
            {"speaker_id": "b", "start": 5, "end": 6.5},
            {"speaker": "a", "start": 0, "end": 4},
            {"speaker": "z", "start": 7, "end": 8},
        ],
    }
    timeline = parse_timeline(json.dumps(document).encode())
    assert [(s.name, s.speaking_seconds) for s in timeline.speakers] == [
        ("Ann", 4.0),
        ("Bo", 1.5),
        ("c", 0.0),
        ("z", 1.0),
    ]
    assert [t.speaker_id for t in timeline.turns] == ["a", "b", "z"]
    for bad in (
        b"[]",
        b"{",
        b'{"turns": [{"speaker": "a", "start": 3, "end": 1}]}',
        b'{"turns": [{"speaker": "a", "start": true, "end": 1}]}',
    ):
        with pytest.raises(InvalidInput):
            parse_timeline(bad)


def test_hls_names_stay_inside_the_playlist_directory() -> None:
    assert hls_key("replays/r/hls/index.m3u8", "seg-1.m4s") == "replays/r/hls/seg-1.m4s"
    for name in ("..", "../x", "a/b", ".hidden", "", "a..b", "x" * 200):
        with pytest.raises(NotFound):
            hls_key("replays/r/hls/index.m3u8", name)

"""The pure helpers of the storage port (core/storage.py): ranges, Content-Disposition."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidInput, InvalidRange
from core.storage import RangeReader, content_disposition, resolve_range


@pytest.mark.parametrize(
    ("size", "start", "end", "expected"),
    [
        (10, None, None, (0, 9)),
        (10, 0, 1, (0, 1)),
        (10, 3, 6, (3, 6)),
        (10, 4, None, (4, 9)),
        (10, None, 4, (0, 4)),
        (10, 9, 9, (9, 9)),
        (10, 5, 1000, (5, 9)),
        (0, None, None, None),
    ],
)
def test_resolve_range(size: int, start: int | None, end: int | None, expected: object) -> None:
    assert resolve_range(size, start, end) == expected


@pytest.mark.parametrize(
    ("size", "start", "end"),
    [(10, 10, None), (10, 12, 20), (10, 5, 4), (0, 0, None), (0, None, 0)],
)
def test_unsatisfiable_ranges(size: int, start: int | None, end: int | None) -> None:
    with pytest.raises(InvalidRange) as caught:
        resolve_range(size, start, end)
    assert caught.value.code == "range_not_satisfiable"


def test_negative_bounds_are_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="negative"):
        resolve_range(10, -1, None)


@given(st.integers(1, 10_000), st.integers(0, 20_000), st.integers(0, 20_000))
def test_a_resolved_range_lies_inside_the_object(size: int, start: int, end: int) -> None:
    try:
        first, last = resolve_range(size, start, end) or (0, -1)
    except InvalidRange:
        assert start >= size or end < start
        return
    assert 0 <= first <= last < size
    assert first == start and last == min(end, size - 1)


def test_content_disposition_ascii() -> None:
    assert content_disposition("episode-12.mp3") == 'attachment; filename="episode-12.mp3"'
    assert content_disposition("a.mp3", "inline") == 'inline; filename="a.mp3"'


def test_content_disposition_unicode_gets_an_rfc5987_form() -> None:
    value = content_disposition("Épisode 1 — café.mp3")
    assert value == (
        'attachment; filename="_pisode 1 _ caf_.mp3";'
        " filename*=UTF-8''%C3%89pisode%201%20%E2%80%94%20caf%C3%A9.mp3"
    )


def test_content_disposition_cannot_be_broken_by_the_filename() -> None:
    value = content_disposition('evil"; filename="x.exe\r\n\\/')
    assert value == 'attachment; filename="evil; filename=x.exe"'
    assert content_disposition('"\\/') == 'attachment; filename="download"'


def test_range_reader_reads_exactly_the_length_in_chunks_and_closes() -> None:
    stream = io.BytesIO(bytes(range(100)))
    stream.seek(10)
    reader = RangeReader(stream, 25, 10)
    assert [len(chunk) for chunk in reader] == [10, 10, 5]
    assert stream.closed


def test_range_reader_stops_when_the_stream_ends_early() -> None:
    stream = io.BytesIO(b"abc")
    assert list(RangeReader(stream, 10, 2)) == [b"ab", b"c"]
    assert stream.closed


def test_range_reader_refuses_a_zero_chunk_size_and_closes_the_stream() -> None:
    stream = io.BytesIO(b"abc")
    with pytest.raises(InvalidInput):
        RangeReader(stream, 3, 0)
    assert stream.closed

"""Byte-range decisions (RFC 9110 §14): the full matrix, plus properties over random input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.http_ranges import ByteRange, RangeResult, parse_range, unsatisfiable_content_range

N = 10_000


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-1", 0, 1),  # Apple's probe
        ("bytes=0-0", 0, 0),
        ("bytes=100-199", 100, 199),
        ("bytes=9999-9999", 9999, 9999),
        ("bytes=500-", 500, 9999),
        ("bytes=0-", 0, 9999),
        ("bytes=9000-20000", 9000, 9999),  # last clamped to the end
        ("bytes=-500", 9500, 9999),
        ("bytes=-1", 9999, 9999),
        ("bytes=-20000", 0, 9999),  # suffix longer than the body: the whole body
        ("BYTES=0-1", 0, 1),  # the unit is case-insensitive
        (" bytes=0-1 ", 0, 1),
    ],
)
def test_satisfiable_single_range_is_206(header: str, start: int, end: int) -> None:
    result = parse_range(header, N)
    assert result.status == 206
    assert result.range == ByteRange(start, end, N)
    assert result.offset == start
    assert result.content_length == end - start + 1
    assert result.headers() == {
        "Accept-Ranges": "bytes",
        "Content-Length": str(end - start + 1),
        "Content-Range": f"bytes {start}-{end}/{N}",
    }


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=10000-", N),  # first position == size
        ("bytes=10000-10005", N),
        ("bytes=99999-", N),
        ("bytes=-0", N),  # empty suffix
        ("bytes=0-", 0),  # empty body: nothing is satisfiable
        ("bytes=-5", 0),
    ],
)
def test_unsatisfiable_is_416(header: str, size: int) -> None:
    result = parse_range(header, size)
    assert result.status == 416
    assert result.range is None
    assert result.content_length == 0
    assert result.content_range == f"bytes */{size}"
    assert result.headers()["Content-Range"] == unsatisfiable_content_range(size)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes",
        "bytes=",
        "bytes=-",
        "bytes=abc",
        "bytes=1-a",
        "bytes=5-1",  # last before first: invalid, so ignored
        "bytes=+1-2",
        "bytes=1 - 2",
        "bytes=0x10-20",
        "items=0-1",  # unknown unit
        "bytes 0-1",
        "bytes=0-1,",  # trailing empty element
        "bytes=0-1,5-9",  # several ranges: whole body (documented decision)
        "bytes=0-1, -5",
        "bytes=99999-,0-1",
        "bytes=" + "1" * 2000 + "-",  # absurdly long header: ignored
    ],
)
def test_absent_malformed_or_multiple_ranges_get_the_whole_body(header: str | None) -> None:
    result = parse_range(header, N)
    assert result == RangeResult(status=200, size=N)
    assert result.offset == 0
    assert result.content_range is None
    assert result.headers() == {"Accept-Ranges": "bytes", "Content-Length": str(N)}


def test_size_must_be_a_byte_count() -> None:
    with pytest.raises(ValueError):
        parse_range("bytes=0-1", -1)


@given(
    size=st.integers(min_value=0, max_value=10**12),
    first=st.integers(min_value=0, max_value=10**13),
    last=st.one_of(st.none(), st.integers(min_value=0, max_value=10**13)),
)
def test_content_length_always_equals_bytes_sent(size: int, first: int, last: int | None) -> None:
    header = f"bytes={first}-" + ("" if last is None else str(last))
    result = parse_range(header, size)
    if result.status == 206:
        assert result.range is not None
        assert 0 <= result.range.start <= result.range.end < size
        assert result.content_length == result.range.end - result.range.start + 1
        assert result.range.start == first
    elif result.status == 416:
        assert first >= size
    else:
        assert last is not None and last < first
        assert result.content_length == size


@given(size=st.integers(min_value=1, max_value=10**9), suffix=st.integers(1, 10**10))
def test_suffix_ranges_end_at_the_last_byte(size: int, suffix: int) -> None:
    result = parse_range(f"bytes=-{suffix}", size)
    assert result.status == 206 and result.range is not None
    assert result.range.end == size - 1
    assert result.content_length == min(size, suffix)


@given(st.text(max_size=40))
def test_any_header_gives_a_consistent_answer(header: str) -> None:
    result = parse_range(header, N)
    assert result.status in (200, 206, 416)
    assert int(result.headers()["Content-Length"]) == result.content_length

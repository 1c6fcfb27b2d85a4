"""The mix plan: golden layouts, overlap policy, trims, and coverage properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.audio.timeline_plan import (
    PlanBlock,
    Read,
    Segment,
    Span,
    Track,
    output_span,
    plan_mix,
)
from core.errors import InvalidTimeline

HOST = Track("host", (Segment("h0", 0, 10), Segment("h1", 14, 6)))
GUEST = Track("guest", (Segment("g0", 8, 4),))


def test_golden_plan_of_two_tracks_with_a_gap() -> None:
    span = output_span([HOST, GUEST])
    assert span == Span(0, 20)
    blocks = list(plan_mix([HOST, GUEST], span, 8))
    assert blocks == [
        PlanBlock(0, 0, 8, (Read("host", "h0", 0, 0, 8),), ()),
        PlanBlock(
            1,
            8,
            8,
            (
                Read("host", "h0", 8, 0, 2),
                Read("host", "h1", 0, 6, 2),
                Read("guest", "g0", 0, 0, 4),
            ),
            (Span(4, 6),),
        ),
        PlanBlock(2, 16, 4, (Read("host", "h1", 2, 0, 4),), ()),
    ]
    assert blocks[1].gaps("host") == (Span(2, 6),)
    assert blocks[1].gaps("guest") == (Span(4, 8),)
    assert blocks[1].gaps("nobody") == (Span(0, 8),)


def test_trims_and_explicit_spans_beyond_the_audio() -> None:
    assert output_span([HOST, GUEST], trim_start=3, trim_end=5) == Span(3, 15)
    blocks = list(plan_mix([GUEST], Span(0, 16), 16))
    assert blocks == [
        PlanBlock(0, 0, 16, (Read("guest", "g0", 0, 8, 4),), (Span(0, 8), Span(12, 16)))
    ]


def test_overlapping_segments_of_one_track_are_read_once() -> None:
    track = Track("t", (Segment("late", 5, 10), Segment("early", 0, 8), Segment("inner", 2, 3)))
    (block,) = plan_mix([track], Span(0, 15), 100)
    assert block.reads == (Read("t", "early", 0, 0, 8), Read("t", "late", 3, 8, 7))
    assert block.silence == ()


def test_empty_recording_and_empty_span() -> None:
    assert output_span([Track("t", ())]) == Span(0, 0)
    assert list(plan_mix([HOST], Span(5, 5), 4)) == []


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: output_span([HOST], trim_start=15, trim_end=10), "longer than"),
        (lambda: output_span([HOST], trim_start=-1), ">= 0"),
        (lambda: list(plan_mix([HOST], Span(0, 10), 0)), "block_frames"),
        (lambda: list(plan_mix([HOST], Span(10, 0), 4)), "not a valid range"),
        (lambda: list(plan_mix([HOST, HOST], Span(0, 10), 4)), "twice"),
        (lambda: output_span([Track("t", (Segment("s", -4, 2),))]), "negative"),
    ],
)
def test_bad_requests_get_a_stable_code(call: object, needle: str) -> None:
    with pytest.raises(InvalidTimeline) as info:
        call()  # type: ignore[operator]
    assert info.value.code == "invalid_timeline"
    assert needle in info.value.message


segments = st.lists(st.tuples(st.integers(0, 200), st.integers(0, 60)), max_size=6).map(
    lambda items: tuple(Segment(f"s{i}", start, frames) for i, (start, frames) in enumerate(items))
)


@given(
    st.lists(segments, min_size=1, max_size=3),
    st.integers(1, 50),
    st.integers(0, 100),
    st.integers(0, 300),
)
def test_every_sample_is_read_once_or_silent(
    layouts: list[tuple[Segment, ...]], block_frames: int, span_start: int, span_frames: int
) -> None:
    tracks = [Track(f"t{i}", layout) for i, layout in enumerate(layouts)]
    span = Span(span_start, span_start + span_frames)
    blocks = list(plan_mix(tracks, span, block_frames))
    assert sum(block.frames for block in blocks) == span.frames
    for track in tracks:
        expected = {t for s in track.segments for t in range(s.start, s.start + s.frames)} & set(
            range(span.start, span.end)
        )
        seen: list[int] = []
        for block in blocks:
            for read in block.reads:
                if read.track_id == track.track_id:
                    segment = next(s for s in track.segments if s.key == read.segment_key)
                    first = block.start + read.block_offset
                    assert first == segment.start + read.segment_offset
                    assert read.segment_offset + read.frames <= segment.frames
                    seen.extend(range(first, first + read.frames))
            for gap in block.gaps(track.track_id):
                assert not set(range(block.start + gap.start, block.start + gap.end)) & expected
        assert sorted(seen) == sorted(expected)  # each sample exactly once
    for block in blocks:
        sounding = {block.start + r.block_offset + k for r in block.reads for k in range(r.frames)}
        silent = {block.start + k for gap in block.silence for k in range(gap.start, gap.end)}
        assert not sounding & silent
        assert sounding | silent == set(range(block.start, block.start + block.frames))

"""The mix plan: which slices of which tracks' segments make up each output block.

Pure. The workers' mixer walks the plan block by block: it starts each block as silence, adds
every :class:`Read` (decoded samples of one segment, gain applied), and never has to search the
timeline itself. Positions are integer samples at the mix rate on the room timeline (sample 0
is the room's recording epoch), so nothing drifts however long the room.

Policies:

- Gaps between a track's segments (lost packets, DTX, a muted speaker) are silence; the
  timeline never shifts.
- Segments of one track that overlap (a reconnect that re-sent audio) are resolved
  deterministically: the segment that starts first (then the smaller key) keeps the overlap,
  the later one is read from where the earlier one ends. Tracks never mask one another: they
  are mixed.
- The output span defaults to first sound .. last sound; trims cut frames off either end.

:func:`plan_mix` is a generator, so the plan of a ten-hour room costs one block at a time.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from core.errors import InvalidTimeline


@dataclass(frozen=True)
class Span:
    """Half-open range of samples [start, end)."""

    start: int
    end: int

    @property
    def frames(self) -> int:
        """Number of samples in the span."""
        return self.end - self.start


@dataclass(frozen=True)
class Segment:
    """One decoded segment of a track, placed on the room timeline."""

    key: str
    start: int
    frames: int


@dataclass(frozen=True)
class Track:
    """One speaker's recording: their segments on the room timeline."""

    track_id: str
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Read:
    """Copy ``frames`` samples of a segment, from ``segment_offset`` on, to ``block_offset``."""

    track_id: str
    segment_key: str
    segment_offset: int
    block_offset: int
    frames: int


@dataclass(frozen=True)
class PlanBlock:
    """One output block: ``frames`` samples from timeline sample ``start``."""

    index: int
    start: int
    frames: int
    reads: tuple[Read, ...]
    #: Block-relative spans where no track sounds.
    silence: tuple[Span, ...]

    def gaps(self, track_id: str) -> tuple[Span, ...]:
        """Block-relative spans where ``track_id`` is silent (for per-speaker stems)."""
        covered = [
            Span(read.block_offset, read.block_offset + read.frames)
            for read in self.reads
            if read.track_id == track_id
        ]
        return _complement(covered, self.frames)


@dataclass(frozen=True)
class _Piece:
    """A non-overlapping part of a segment: timeline [start, end), read from ``offset``."""

    key: str
    start: int
    end: int
    offset: int


def _validate(tracks: Sequence[Track]) -> None:
    seen: set[str] = set()
    for track in tracks:
        if track.track_id in seen:
            raise InvalidTimeline(f"track {track.track_id!r} appears twice")
        seen.add(track.track_id)
        for segment in track.segments:
            if segment.start < 0 or segment.frames < 0:
                raise InvalidTimeline(
                    f"segment {segment.key!r} of track {track.track_id!r} has a negative "
                    f"start or length ({segment.start}, {segment.frames})"
                )


def _pieces(track: Track) -> list[_Piece]:
    """The track's segments in time order with overlaps resolved (earliest start wins)."""
    pieces: list[_Piece] = []
    covered_to = 0
    for segment in sorted(track.segments, key=lambda s: (s.start, s.key)):
        end = segment.start + segment.frames
        start = max(segment.start, covered_to)
        if start >= end:
            continue
        pieces.append(_Piece(segment.key, start, end, start - segment.start))
        covered_to = end
    return pieces


def _complement(covered: list[Span], length: int) -> tuple[Span, ...]:
    """Spans of [0, length) not covered by any of ``covered``."""
    gaps = []
    cursor = 0
    for span in sorted(covered, key=lambda s: s.start):
        if span.start > cursor:
            gaps.append(Span(cursor, span.start))
        cursor = max(cursor, span.end)
    if cursor < length:
        gaps.append(Span(cursor, length))
    return tuple(gaps)


def output_span(tracks: Sequence[Track], *, trim_start: int = 0, trim_end: int = 0) -> Span:
    """First sound .. last sound over all tracks, minus ``trim_start`` / ``trim_end`` frames."""
    _validate(tracks)
    if trim_start < 0 or trim_end < 0:
        raise InvalidTimeline("trims must be >= 0 frames")
    segments = [s for track in tracks for s in track.segments if s.frames > 0]
    if not segments:
        return Span(0, 0)
    start = min(s.start for s in segments) + trim_start
    end = max(s.start + s.frames for s in segments) - trim_end
    if end < start:
        raise InvalidTimeline(
            f"trims of {trim_start} + {trim_end} frames are longer than the recording"
        )
    return Span(start, end)


def plan_mix(tracks: Sequence[Track], span: Span, block_frames: int) -> Iterator[PlanBlock]:
    """Blocks of ``block_frames`` (the last may be shorter) covering ``span``, with their reads."""
    _validate(tracks)
    if block_frames <= 0:
        raise InvalidTimeline(f"block_frames must be > 0, got {block_frames}")
    if span.start < 0 or span.end < span.start:
        raise InvalidTimeline(f"output span [{span.start}, {span.end}) is not a valid range")
    layout = [(track.track_id, _pieces(track)) for track in tracks]
    ends = [[piece.end for piece in pieces] for _, pieces in layout]
    for index, block_start in enumerate(range(span.start, span.end, block_frames)):
        block_end = min(block_start + block_frames, span.end)
        reads: list[Read] = []
        for (track_id, pieces), track_ends in zip(layout, ends, strict=True):
            # Pieces are disjoint and sorted, so their ends are sorted too.
            position = bisect.bisect_right(track_ends, block_start)
            while position < len(pieces) and pieces[position].start < block_end:
                piece = pieces[position]
                first = max(piece.start, block_start)
                last = min(piece.end, block_end)
                reads.append(
                    Read(
                        track_id=track_id,
                        segment_key=piece.key,
                        segment_offset=piece.offset + (first - piece.start),
                        block_offset=first - block_start,
                        frames=last - first,
                    )
                )
                position += 1
        covered = [Span(r.block_offset, r.block_offset + r.frames) for r in reads]
        length = block_end - block_start
        yield PlanBlock(index, block_start, length, tuple(reads), _complement(covered, length))

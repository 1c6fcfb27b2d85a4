"""Host edits: a replay re-rendered from an earlier render's stems, never from the segments.

A trim (or clearing one) changes only which part of the room timeline is published. The
earlier render of the same manifest and audio options already holds everything pass 1 of
:func:`workers.audio.pipeline.render_replay` would produce again:

- ``stems.zip``: each speaker's aligned track over that render's span, *before* any gain (the
  stems are the pass-1 spills as written, FLAC s16), so they are exactly what pass 2 mixes;
- ``render.json``: the span those stems cover on the room timeline and the per-speaker
  levelling decided from the whole room.

:func:`render_from_stems` seeks each stem to the new span (FLAC frames are decoded from the
seek point, never from the start), spills and meters them as pass 1 does, and hands the room
to :func:`workers.audio.pipeline.render_decoded` for mixing, limiting, encoding, measuring,
extras and publishing. The levelling is the earlier render's (a whole-room decision: a
trimmed replay sounds like the untrimmed one); the mix's normalisation is measured again on
the trimmed programme, so the loudness target still holds. Not one Opus segment is read.

:func:`load_previous` raises :class:`~core.errors.StemsUnusable` for a render that cannot serve
(no stems, another track list, a span that does not cover the new one); the caller then
renders from the segments as usual.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
import numpy as np
from numpy.typing import NDArray

from core.audio.timeline_plan import Span, output_span
from core.errors import InvalidManifest, StemsUnusable
from core.recording.manifest import Manifest
from workers.audio.levels import GramMeter
from workers.audio.pipeline import (
    RenderOptions,
    RenderResult,
    render_decoded,
    render_replay,
    trimmed_span,
)
from workers.audio.render import SAMPLE_RATE, DecodedRoom, Progress, plan_tracks
from workers.audio.sources import SegmentSource
from workers.audio.staging import stem_filename

log = logging.getLogger(__name__)

STEMS_FILE = "stems.zip"
REPORT_FILE = "render.json"


@dataclass(frozen=True)
class PreviousRender:
    """What a re-render takes from an earlier render: its stems and its whole-room decisions."""

    stems: Path  #: the ``stems.zip`` archive
    members: tuple[str, ...]  #: archive member of each track, in manifest order
    track_ids: tuple[str, ...]
    span: Span  #: what the stems cover on the room timeline (48 kHz frames)
    levelling_db: Mapping[str, float]


def load_previous(directory: Path, manifest: Manifest) -> PreviousRender:
    """The earlier render in ``directory`` (its ``stems.zip`` and ``render.json``).

    Raises :class:`~core.errors.StemsUnusable` when either is missing or does not belong to
    ``manifest`` (another recording, other tracks).
    """
    directory = Path(directory)
    stems, report = directory / STEMS_FILE, directory / REPORT_FILE
    if not stems.is_file() or not report.is_file():
        raise StemsUnusable(f"{directory}: no {STEMS_FILE} and {REPORT_FILE} to re-render from")
    try:
        document: dict[str, Any] = json.loads(report.read_bytes())
        with zipfile.ZipFile(stems) as archive:
            names = set(archive.namelist())
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise StemsUnusable(f"{directory}: unreadable earlier render ({exc})") from exc
    if document.get("recording_id") != manifest.recording_id:
        raise StemsUnusable(f"{report} is the render of another recording")
    tracks, _shift = plan_tracks(manifest)
    ids = tuple(track.track_id for track in tracks)
    members = tuple(f"stems/{stem_filename(i, tid)}" for i, tid in enumerate(ids))
    absent = [m for m in members if m not in names]
    if absent or len(names) != len(members):
        raise StemsUnusable(f"{stems} does not hold the manifest's tracks (missing {absent})")
    levelling = document.get("levelling_db") or {}
    return PreviousRender(
        stems=stems,
        members=members,
        track_ids=ids,
        span=_previous_span(document, manifest),
        levelling_db={tid: float(levelling.get(tid, 0.0)) for tid in ids},
    )


def _previous_span(document: Mapping[str, Any], manifest: Manifest) -> Span:
    span = document.get("span")
    if isinstance(span, dict) and span.get("sample_rate") == SAMPLE_RATE:
        return Span(int(span["start"]), int(span["end"]))
    # A render.json without a span (older renders, the live render): usable when untrimmed.
    tracks, _shift = plan_tracks(manifest)
    whole = output_span(tracks)
    duration = float(document.get("duration_seconds") or 0.0)
    # render.json rounds the duration to the millisecond.
    if abs(duration * SAMPLE_RATE - whole.frames) <= SAMPLE_RATE / 2000 + 1:
        return whole
    raise StemsUnusable("the earlier render.json does not say which span its stems cover")


def render_from_stems(
    previous: Path | PreviousRender,
    manifest: Manifest,
    out_dir: Path,
    options: RenderOptions | None = None,
    *,
    progress: Progress | None = None,
) -> RenderResult:
    """Render ``options``'s outputs (its trim included) from an earlier render's stems.

    ``previous`` is a directory holding that render's ``stems.zip`` and ``render.json`` (or
    what :func:`load_previous` made of it). Raises :class:`~core.errors.InvalidTimeline` for a
    trim that keeps nothing (as :func:`~workers.audio.pipeline.render_replay` does) and
    :class:`~core.errors.StemsUnusable` when the stems do not cover the new span.
    """
    opts = options or RenderOptions()
    before = previous if isinstance(previous, PreviousRender) else load_previous(previous, manifest)
    tracks, _shift = plan_tracks(manifest)
    span = trimmed_span(tracks, opts)
    if span.frames == 0:
        raise InvalidManifest(f"recording {manifest.recording_id} has no audio to render")
    if span.start < before.span.start or span.end > before.span.end:
        raise StemsUnusable(
            f"the stems cover frames {before.span.start}..{before.span.end},"
            f" not {span.start}..{span.end}"
        )

    def decode(work: Path, block: int, warn: Any) -> DecodedRoom:
        return stems_pass(before, span, work, block_frames=block, progress=progress)

    return render_decoded(
        manifest, decode, out_dir, opts,
        levelling_db=before.levelling_db, source="stems", progress=progress,
    )  # fmt: skip


def render_edit(
    manifest: Manifest,
    source: SegmentSource,
    previous: Path | None,
    out_dir: Path,
    options: RenderOptions | None = None,
    *,
    progress: Progress | None = None,
) -> RenderResult:
    """A host edit: from ``previous``'s stems when they serve, else from the segments.

    ``previous`` is a directory with an earlier render's ``stems.zip`` and ``render.json`` of
    the same manifest and audio options (None: there is none). ``source`` is read only when
    the stems cannot serve (:class:`~core.errors.StemsUnusable`, logged). A trim that keeps
    nothing raises before anything is read, as :func:`render_replay` does.
    """
    opts = options or RenderOptions()
    if previous is not None:
        try:
            return render_from_stems(previous, manifest, out_dir, opts, progress=progress)
        except StemsUnusable as exc:
            log.warning("recording %s: rendering from segments: %s", manifest.recording_id, exc)
    return render_replay(manifest, source, out_dir, opts, progress=progress)


def stems_pass(
    previous: PreviousRender,
    span: Span,
    spill_dir: Path,
    *,
    block_frames: int,
    progress: Progress | None = None,
) -> DecodedRoom:
    """Pass 1 from stems: each stem from ``span``'s start, spilled and metered block by block."""
    first = span.start - previous.span.start
    spills = tuple(spill_dir / f"track-{i:03d}.f32" for i in range(len(previous.track_ids)))
    meter = GramMeter(SAMPLE_RATE, len(spills))
    # Python 3.11 seeks in a zip member by reading from its start: extract (a plain copy, the
    # archive is stored) so the FLAC demuxer's seek is a file seek.
    with zipfile.ZipFile(previous.stems) as archive:
        paths = [Path(archive.extract(m, spill_dir)) for m in previous.members]
    readers: list[StemReader] = []
    files: list[BinaryIO] = [open(path, "wb") for path in spills]  # noqa: SIM115
    try:
        readers = [StemReader(path, first) for path in paths]
        done = 0
        while done < span.frames:
            count = min(block_frames, span.frames - done)
            samples = np.zeros((len(readers), count), dtype=np.float32)
            for row, reader in enumerate(readers):
                samples[row] = reader.read(count)
                files[row].write(samples[row].tobytes())
            meter.add(samples)
            done += count
            if progress is not None:
                progress("decode", done, span.frames)
    finally:
        for handle in files:
            handle.close()
        for reader in readers:
            reader.close()
        for path in paths:
            path.unlink(missing_ok=True)
    return DecodedRoom(previous.track_ids, spills, span, meter)


class StemReader:
    """A FLAC stem read as float32 mono from frame ``start`` on, after one seek."""

    def __init__(self, path: Path, start: int) -> None:
        self.name = path.name
        self._container: Any = av.open(str(path), "r")
        self._stream: Any = self._container.streams.audio[0]
        stream = self._stream
        if (
            stream.sample_rate != SAMPLE_RATE
            or stream.codec_context.channels != 1
            or stream.time_base != Fraction(1, SAMPLE_RATE)
        ):
            self.close()
            raise StemsUnusable(f"{self.name} is not a mono {SAMPLE_RATE} Hz FLAC stem")
        self._position = start  #: next frame of the stem to hand out
        self._pending = np.zeros(0, dtype=np.float32)
        if start > 0:
            # Seek to the FLAC frame at or before ``start`` (pts in 1/48000 s); _trimmed drops
            # the samples before it: sample-exact, and only the stem's tail is decoded.
            self._container.seek(start, stream=stream, backward=True, any_frame=False)
        self._frames = self._container.decode(stream)

    def read(self, count: int) -> NDArray[np.float32]:
        """The next ``count`` frames; raises ``StemsUnusable`` if the stem ends first."""
        parts, have = [self._pending], len(self._pending)
        while have < count:
            try:
                frame = next(self._frames)
            except StopIteration:
                raise StemsUnusable(f"{self.name} ends at frame {self._position + have}") from None
            samples = self._trimmed(frame, self._position + have)
            parts.append(samples)
            have += len(samples)
        joined = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self._pending = joined[count:]
        self._position += count
        return joined[:count]

    def _trimmed(self, frame: Any, wanted: int) -> NDArray[np.float32]:
        """``frame``'s samples from stem frame ``wanted`` on (a seek lands a little before)."""
        if frame.pts is None:
            raise StemsUnusable(f"{self.name}: a FLAC frame without a timestamp")
        if frame.pts > wanted:
            raise StemsUnusable(f"{self.name}: seek landed at {frame.pts}, after {wanted}")
        samples = _as_float(frame)
        return samples[wanted - frame.pts :] if frame.pts < wanted else samples

    def close(self) -> None:
        self._container.close()


def _as_float(frame: Any) -> NDArray[np.float32]:
    array: NDArray[Any] = frame.to_ndarray()
    row = array.reshape(-1)
    if array.dtype == np.int16:
        return row.astype(np.float32) / np.float32(32768.0)
    if array.dtype == np.int32:  # s32: 24-bit FLAC, left-aligned
        return (row.astype(np.float64) / 2147483648.0).astype(np.float32)
    return row.astype(np.float32)

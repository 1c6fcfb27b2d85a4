"""The streaming render: two passes over the room timeline in blocks, never the whole room.

Pass 1 (:func:`decode_pass`) follows :func:`core.audio.timeline_plan.plan_mix` block by block:
each track's slices are decoded (:class:`~workers.audio.decode.TrackDecoder`), placed on the
timeline (gaps and late starts are zeros), appended to the track's spill file (raw float32 in
a work directory: the stems, and what pass 2 reads instead of decoding twice), and fed to a
:class:`~workers.audio.levels.GramMeter`. From the meter alone the caller decides every gain
(per-speaker levelling, then the mix's normalisation) before any output sample is written.

Pass 2 (:func:`mix_pass`) reads the spills block by block, mixes with those gains, runs the
true-peak limiter and hands each finished block to every sink (encoders, waveform). Memory is
a few blocks of samples whatever the room's length (10 s blocks: ~2 MB per speaker).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
from numpy.typing import NDArray

from core.audio.gain import TruePeakLimiter, db_to_linear
from core.audio.timeline_plan import Read, Span, plan_mix
from core.audio.timeline_plan import Segment as PlanSegment
from core.audio.timeline_plan import Track as PlanTrack
from core.recording.manifest import Manifest
from workers.audio.decode import TrackDecoder, Warn
from workers.audio.decode_ahead import DecodeAhead
from workers.audio.levels import GramMeter, integrated_lufs
from workers.audio.sources import SegmentSource

SAMPLE_RATE = 48_000
#: Threads decoding a block's tracks in :func:`decode_pass` (libopus releases the GIL).
DECODE_THREADS = 2
#: (stage, frames done, frames in total).
Progress = Callable[[str, int, int], None]


class Sink(Protocol):
    """Anything that takes the finished programme block by block."""

    def write(self, block: NDArray[np.floating]) -> None: ...


def plan_tracks(manifest: Manifest) -> tuple[list[PlanTrack], int]:
    """The manifest's tracks as mix-plan tracks, and the shift applied to keep offsets >= 0."""
    starts = [s.start_offset for t in manifest.tracks for s in t.segments]
    shift = -min(0, min(starts, default=0))
    tracks = [
        PlanTrack(
            track.participant_id,
            tuple(PlanSegment(s.key, s.start_offset + shift, s.duration) for s in track.segments),
        )
        for track in manifest.tracks
    ]
    return tracks, shift


@dataclass(frozen=True)
class DecodedRoom:
    """What pass 1 leaves: one spill file per track and the loudness facts of every track."""

    track_ids: tuple[str, ...]
    spills: tuple[Path, ...]
    span: Span
    meter: GramMeter

    @property
    def frames(self) -> int:
        return self.span.frames


def decode_pass(
    manifest: Manifest,
    source: SegmentSource,
    span: Span,
    tracks: Sequence[PlanTrack],
    spill_dir: Path,
    *,
    block_frames: int,
    warn: Warn,
    progress: Progress | None = None,
    threads: int = DECODE_THREADS,
) -> DecodedRoom:
    """Pass 1: decode every track onto the timeline, spill it, meter it (see module doc).

    The tracks are decoded on ``threads`` threads (libopus runs without the GIL), each track
    ahead of the block being spilled (:class:`~workers.audio.decode_ahead.DecodeAhead`), and
    each block is spilled and metered on one more thread while the next ones decode; warnings
    are still reported in block and track order, so a render's record is the same whatever
    the scheduling.
    """
    ids = tuple(track.track_id for track in tracks)
    by_id = {track.participant_id: track for track in manifest.tracks}
    notes: list[list[str]] = [[] for _ in ids]
    decoders = [
        TrackDecoder(source, by_id[tid].segments, notes[row].append) for row, tid in enumerate(ids)
    ]

    def taken(row: int) -> list[str]:
        found, notes[row][:] = list(notes[row]), []
        return found

    place = [functools.partial(_place, decoder) for decoder in decoders]
    blocks = list(plan_mix(tracks, span, block_frames))
    ahead = DecodeAhead(blocks, {tid: row for row, tid in enumerate(ids)}, place, taken,
                        threads=threads)  # fmt: skip
    spills = tuple(spill_dir / f"track-{index:03d}.f32" for index in range(len(ids)))
    meter = GramMeter(SAMPLE_RATE, len(ids))
    files: list[BinaryIO] = [open(path, "wb") for path in spills]  # noqa: SIM115
    # Spilling and metering block k (one thread, in order) overlaps decoding the next ones.
    spiller = ThreadPoolExecutor(1, "spill")
    spilled: Future[None] | None = None
    try:
        for block, samples, warnings in ahead:
            for message in warnings:
                warn(message)
            if spilled is not None:
                spilled.result()
            spilled = spiller.submit(_spill, files, meter, samples)
            if progress is not None:
                progress("decode", block.start + block.frames - span.start, span.frames)
        if spilled is not None:
            spilled.result()
    finally:
        ahead.close()
        spiller.shutdown(wait=True, cancel_futures=True)
        for handle in files:
            handle.close()
        for decoder in decoders:
            decoder.close()
    return DecodedRoom(ids, spills, span, meter)


def _spill(files: Sequence[BinaryIO], meter: GramMeter, samples: NDArray[np.float32]) -> None:
    """Append a decoded block to the tracks' spill files and the loudness meter."""
    for row, handle in enumerate(files):
        samples[row].tofile(handle)
    meter.add(samples)


def _place(decoder: TrackDecoder, target: NDArray[np.float32], reads: Sequence[Read]) -> None:
    """Decode one track's reads of a block into its row (one thread per call at most)."""
    for read in reads:
        target[read.block_offset : read.block_offset + read.frames] = decoder.read(
            read.segment_key, read.segment_offset, read.frames
        )


@dataclass(frozen=True)
class MixGains:
    """Linear gain per track (levelling and normalisation together) and the limiter ceiling."""

    track_gains: tuple[float, ...]
    ceiling_dbtp: float

    @classmethod
    def from_db(cls, levelling_db: Sequence[float], mix_db: float, ceiling_dbtp: float) -> MixGains:
        return cls(tuple(db_to_linear(g + mix_db) for g in levelling_db), ceiling_dbtp)


def mix_pass(
    room: DecodedRoom,
    gains: MixGains,
    sinks: Sequence[Sink],
    *,
    track_sinks: Sequence[Sequence[Sink]] = (),
    block_frames: int,
    progress: Progress | None = None,
) -> None:
    """Pass 2: mix the spills with ``gains``, limit, and feed ``sinks``.

    ``track_sinks[i]`` receive track ``i`` unprocessed (the stems), from the same reads.
    """
    limiter = TruePeakLimiter(SAMPLE_RATE, 1, ceiling_dbtp=gains.ceiling_dbtp)
    weights = np.asarray(gains.track_gains, dtype=np.float32)
    files = [open(path, "rb") for path in room.spills]  # noqa: SIM115
    done = 0
    try:
        while done < room.frames:
            count = min(block_frames, room.frames - done)
            tracks = np.stack([np.fromfile(f, dtype=np.float32, count=count) for f in files])
            if tracks.shape[1] != count:
                raise OSError(f"spill files ended at frame {done + tracks.shape[1]}")
            for row, row_sinks in enumerate(track_sinks):
                for sink in row_sinks:
                    sink.write(tracks[row])
            mixed = weights @ tracks if len(files) else np.zeros(count, np.float32)
            _emit(limiter.process(mixed[:, None].astype(np.float64)), sinks)
            done += count
            if progress is not None:
                progress("mix", done, room.frames)
        _emit(limiter.flush(), sinks)
    finally:
        for handle in files:
            handle.close()


def limiter_loss_db(
    room: DecodedRoom,
    gains: MixGains,
    *,
    chunk_frames: int = SAMPLE_RATE,
    period_frames: int = 10 * SAMPLE_RATE,
    lead_in: int = SAMPLE_RATE // 2,
    threads: int = DECODE_THREADS,
) -> float:
    """An estimate of the loudness (dB) the true-peak limiter will take off the programme.

    The final trim (the limiter takes a little loudness off the peaks) must be known before
    the mix pass so that the encoders can run *during* it instead of in a pass of their own.
    The first ``chunk_frames`` of every ``period_frames`` are mixed and limited — after
    ``lead_in`` frames, so the limiter's state is that of the full pass — and the gated
    loudness of those chunks is compared before and after limiting. The encoded outputs are
    measured afterwards, and one that misses the target is corrected
    (:mod:`workers.audio.pipeline`), so the estimate only decides how often that happens.
    NaN when nothing was loud enough to meter.

    Many short chunks follow a room's turns better than a few long blocks: on the 1 h
    benchmark room, 1 s in every 10 s came within 0.03 dB of limiting everything (at three
    gains), where every 4th 10 s block was up to 0.24 dB off, for half the work. The chunks
    are independent, so ``threads`` limit them at once (numpy and SciPy release the GIL);
    they are metered in order, so the estimate does not depend on the threads.
    """
    before = GramMeter(SAMPLE_RATE, 1)
    after = GramMeter(SAMPLE_RATE, 1)
    starts = range(0, room.frames, max(1, period_frames))

    def limited(start: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        return _limited_block(room, gains, start, min(chunk_frames, room.frames - start), lead_in)

    with ThreadPoolExecutor(max(1, threads), "loss") as pool:
        pending: list[Future[tuple[NDArray[np.float32], NDArray[np.float32]]]] = []
        # A few chunks in flight, not the whole room's.
        for start in starts:
            pending.append(pool.submit(limited, start))
            if len(pending) < 4 * max(1, threads):
                continue
            _meter_pair(before, after, *pending.pop(0).result())
        for future in pending:
            _meter_pair(before, after, *future.result())
    loudness_before = integrated_lufs(before.powers([1.0]))
    loudness_after = integrated_lufs(after.powers([1.0]))
    if not (math.isfinite(loudness_before) and math.isfinite(loudness_after)):
        return math.nan
    return max(0.0, loudness_before - loudness_after)


def _limited_block(
    room: DecodedRoom, gains: MixGains, start: int, count: int, lead_in: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The mix of frames [start, start + count) and the same limited, after a lead-in."""
    first = max(0, start - lead_in)
    span = start + count - first
    tracks = np.stack(
        [np.fromfile(path, dtype=np.float32, count=span, offset=first * 4) for path in room.spills]
    ) if room.spills else np.zeros((0, span), np.float32)  # fmt: skip
    if tracks.shape[1] != span:
        raise OSError(f"spill files ended before frame {start + count}")
    weights = np.asarray(gains.track_gains, dtype=np.float32)
    mixed = (weights @ tracks if len(room.spills) else np.zeros(span, np.float32))[:, None]
    limiter = TruePeakLimiter(SAMPLE_RATE, 1, ceiling_dbtp=gains.ceiling_dbtp)
    out = np.concatenate([limiter.process(mixed.astype(np.float64)), limiter.flush()])
    return mixed[-count:, 0], out[-count:, 0].astype(np.float32)


def _meter_pair(
    before: GramMeter, after: GramMeter, mixed: NDArray[np.float32], limited: NDArray[np.float32]
) -> None:
    whole = len(mixed) // before.subblock * before.subblock
    if whole:
        before.add(mixed[None, :whole])
        after.add(limited[None, :whole])


class Scaled:
    """A sink that multiplies every block by ``scale`` and hands it to ``sinks``."""

    def __init__(self, sinks: Sequence[Sink], scale: float) -> None:
        self._sinks = list(sinks)
        self._scale = np.float32(scale)

    def write(self, block: NDArray[np.floating]) -> None:
        scaled = np.asarray(block, dtype=np.float32) * self._scale
        for sink in self._sinks:
            sink.write(scaled)


class ProgrammeRecorder:
    """Sink for pass 2: spills the finished programme (float32) and meters its loudness.

    The limiter takes a little loudness off the peaks; measuring what it produced, at 48 kHz
    before any encoder, lets pass 3 trim the programme onto the target exactly.
    """

    def __init__(self, path: Path, *, meter: bool = True) -> None:
        self.path = path
        self.frames = 0
        self.meter = GramMeter(SAMPLE_RATE, 1)
        self._metering = meter
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._carry = np.zeros(0, dtype=np.float32)

    def write(self, block: NDArray[np.floating]) -> None:
        samples = np.asarray(block, dtype=np.float32).reshape(-1)
        self._file.write(samples.tobytes())
        self.frames += len(samples)
        if not self._metering:
            return
        joined = np.concatenate([self._carry, samples])
        whole = len(joined) // self.meter.subblock * self.meter.subblock
        if whole:
            self.meter.add(joined[None, :whole])
        self._carry = joined[whole:]

    def close(self) -> None:
        self._file.close()


def programme_pass(
    path: Path,
    frames: int,
    trim_db: float,
    sinks: Sequence[Sink],
    *,
    block_frames: int,
    progress: Progress | None = None,
) -> None:
    """Pass 3: read the programme spill, apply the final trim, feed every encoder."""
    scale = np.float32(db_to_linear(trim_db))
    done = 0
    with open(path, "rb") as handle:
        while done < frames:
            block = np.fromfile(handle, dtype=np.float32, count=min(block_frames, frames - done))
            if len(block) == 0:
                raise OSError(f"programme spill ended at frame {done} of {frames}")
            block *= scale
            for sink in sinks:
                sink.write(block)
            done += len(block)
            if progress is not None:
                progress("encode", done, frames)


def _emit(block: NDArray[np.float64], sinks: Sequence[Sink]) -> None:
    if block.shape[0] == 0:
        return
    mono = block[:, 0].astype(np.float32)
    for sink in sinks:
        sink.write(mono)


def finite_or(value: float, default: float) -> float:
    """``value`` unless it is infinite or NaN (silence measures ``-inf``)."""
    return value if math.isfinite(value) else default

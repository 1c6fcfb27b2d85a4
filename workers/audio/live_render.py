"""``LiveRender``: a single-pass render that follows a room while it is live.

The offline render (:func:`workers.audio.pipeline.render_replay`) starts at room end and reads
the room twice. This one is advanced as the recorder stores segments: :meth:`LiveRender.advance`
takes the manifest implied by the sidecars stored so far and the recorder's watermark (every
segment starting before it is stored, :mod:`core.recording.progress`) and processes the room
timeline in blocks up to the watermark: decode the newly covered part of each track
(:class:`~workers.audio.decode.TrackDecoder`, one per track, kept open across calls), place,
level, mix, normalise, limit (:class:`~core.audio.gain.TruePeakLimiter`) and feed every encoder,
stem, waveform and meter, which all stay open. :meth:`LiveRender.finish` processes the last
blocks, closes the files and publishes the same outputs as the offline render, with
``"mode": "live"`` in ``render.json``. Time from room end to a finished render is then the last
few blocks plus closing files, whatever the room's length.

Gains are causal (:mod:`workers.audio.live_gains`): decided from everything processed so far
including the block itself, ramped at most 2 dB/s. They can miss, so :meth:`finish` accepts the
result only when (1) the final manifest places every segment where this render did (within
1 ms; a stream's anchor can still move once the room ends) and (2) every lossy output, measured
on its encoded data while it was written (``BlockEncoder(measure=True)``), is within
``tolerance_lu`` of the target and under the ceiling. Otherwise it raises
:class:`~core.errors.LiveRenderMissed` and the caller runs the full render.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.audio.gain import TruePeakLimiter
from core.audio.timeline_plan import Segment as PlanSegment
from core.audio.timeline_plan import Span, plan_mix
from core.audio.timeline_plan import Track as PlanTrack
from core.errors import InvalidManifest, LiveRenderMissed
from core.recording.manifest import Manifest
from workers.audio.analysis import WaveformBuilder
from workers.audio.decode import TrackDecoder
from workers.audio.encode import BlockEncoder, ThreadedEncoder
from workers.audio.levels import GramMeter, integrated_lufs, range_lu
from workers.audio.live_checks import placement_problem, within_goal
from workers.audio.live_gains import (
    MAX_RATE_DB_PER_S,
    decide_levelling,
    decide_normalisation,
    ramp_curve,
)
from workers.audio.live_stems import LiveStems
from workers.audio.options import LOSSY, OutputInfo, RenderOptions, RenderResult
from workers.audio.sources import SegmentSource
from workers.audio.staging import publish_staged, write_extras, write_json, write_waveform

SAMPLE_RATE = 48_000
SUBBLOCK = SAMPLE_RATE // 10
#: The normalisation gain also makes up what the limiter took off so far, up to this much. It
#: acts before the limiter, so unlike the offline render's post-limiter trim it cannot raise
#: the peaks; more would only drive the limiter harder.
MAX_LIMITER_COMPENSATION_DB = 3.0


@dataclass
class _Track:
    """One speaker as the render follows it."""

    track_id: str
    decoder: TrackDecoder
    joined: int  #: output frame at which the track entered the render
    meter: GramMeter = field(default_factory=lambda: GramMeter(SAMPLE_RATE, 1))
    gain_db: float | None = None


class LiveRender:
    """Advance with :meth:`advance`, end with :meth:`finish` or :meth:`abort` (see module doc)."""

    def __init__(
        self,
        options: RenderOptions,
        work_dir: Path,
        source: SegmentSource,
        *,
        recording_id: str = "",
        tolerance_lu: float = 0.5,
        max_rate_db_per_s: float = MAX_RATE_DB_PER_S,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        if options.trim_start_seconds or options.trim_end_seconds:
            raise InvalidManifest("a live render covers the whole room: trims need a re-render")
        self.options = options
        self.recording_id = recording_id
        self.tolerance_lu = tolerance_lu
        self.max_rate = max_rate_db_per_s
        self.warnings: list[str] = []
        self._warn_hook = warn
        self._source = source
        self.staging = Path(work_dir) / "live-staging"
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        self.origin: int | None = None  #: room offset (manifest units) of output frame 0
        self.position = 0  #: output frames processed
        self._tracks: dict[str, _Track] = {}
        self._placed: dict[str, int] = {}  #: segment key → start_offset rendered with
        self._mix_meter = GramMeter(SAMPLE_RATE, 1)  # the levelled mix, before normalisation
        self._pre_meter = GramMeter(SAMPLE_RATE, 1)  # the programme into the limiter
        self._post_meter = GramMeter(SAMPLE_RATE, 1)  # ... and out of it
        self._post_carry = np.zeros(0, dtype=np.float32)
        self._norm_db: float | None = None
        self._mix_lufs = float("-inf")
        ceiling = options.ceiling_dbtp - options.limiter_headroom_db
        self._limiter = TruePeakLimiter(SAMPLE_RATE, 1, ceiling_dbtp=ceiling)
        # Each lossy encoder decodes and meters its own output as it writes it (measure=True):
        # nothing is re-read at room end.
        self._encoders = {
            fmt: ThreadedEncoder(
                BlockEncoder(self.staging / options.filename(fmt), options.spec(fmt),
                             measure=fmt in LOSSY)
            )
            for fmt in options.formats
        }  # fmt: skip
        self._block = max(SUBBLOCK, round(options.block_seconds * 10) * SUBBLOCK)
        self._waveform = WaveformBuilder(SAMPLE_RATE) if options.extras else None
        with_stems = options.extras and options.stems
        self._stems = LiveStems(self.staging / "stems", self._block) if with_stems else None

    # -- advancing ---------------------------------------------------------------------------

    def advance(self, manifest: Manifest, watermark: int) -> int:
        """Process whole 100 ms sub-blocks of the room up to ``watermark``; returns the output
        frames processed so far. Segments starting before ``watermark`` must all be listed."""
        if self.origin is None:
            starts = [s.start_offset for t in manifest.tracks for s in t.segments]
            if not starts or min(starts) >= watermark:
                return 0
            self.origin = min(starts)
        limit = watermark - self.origin
        end = self.position + (limit - self.position) // SUBBLOCK * SUBBLOCK
        self._run(manifest, end)
        return self.position

    def _plan(self, manifest: Manifest) -> list[PlanTrack]:
        origin = self.origin or 0
        tracks = []
        for track in manifest.tracks:
            segments = []
            for s in track.segments:
                start = s.start_offset - origin
                if start < 0:
                    raise LiveRenderMissed(
                        f"segment {s.key} starts before the room's first sound as rendered"
                    )
                segments.append(PlanSegment(s.key, start, s.duration))
            tracks.append(PlanTrack(track.participant_id, tuple(segments)))
        return tracks

    def _run(self, manifest: Manifest, end: int) -> None:
        if end <= self.position:
            return
        plan = self._plan(manifest)
        by_id = {t.participant_id: t for t in manifest.tracks}
        for track in manifest.tracks:
            found = self._tracks.get(track.participant_id)
            if found is None:
                decoder = TrackDecoder(self._source, track.segments, self._warn)
                found = self._join(track.participant_id, decoder)
            else:
                # New segments of a known track: the decoder keeps its Opus state across them.
                found.decoder.add_segments(track.segments)
        for block in plan_mix(plan, Span(self.position, end), self._block):
            for read in block.reads:
                segment = next(s for s in by_id[read.track_id].segments
                               if s.key == read.segment_key)  # fmt: skip
                self._placed.setdefault(segment.key, segment.start_offset)
            self._process(block.frames, block.reads)

    def _join(self, track_id: str, decoder: TrackDecoder) -> _Track:
        track = _Track(track_id, decoder, joined=self.position)
        if self._stems is not None:
            self._stems.join(track_id, self.position)
        self._tracks[track_id] = track
        return track

    def _process(self, frames: int, reads: tuple[Any, ...]) -> None:
        ids = list(self._tracks)
        rows = np.zeros((len(ids), frames), dtype=np.float32)
        for read in reads:
            row = ids.index(read.track_id)
            rows[row, read.block_offset : read.block_offset + read.frames] = self._tracks[
                read.track_id
            ].decoder.read(read.segment_key, read.segment_offset, read.frames)
        seconds = frames / SAMPLE_RATE
        for row, tid in enumerate(ids):
            self._tracks[tid].meter.add(rows[row][None, :])
        lufs = {tid: integrated_lufs(t.meter.speaker_powers(0)) for tid, t in self._tracks.items()}
        levelling = decide_levelling(
            lufs, {t: v.gain_db for t, v in self._tracks.items() if v.gain_db is not None},
            seconds, enabled=self.options.level_speakers, max_rate_db_per_s=self.max_rate,
        )  # fmt: skip
        levelled = np.zeros(frames, dtype=np.float32)
        for row, tid in enumerate(ids):
            track = self._tracks[tid]
            end_db = levelling.levelling_db[tid]
            start_db = end_db if track.gain_db is None else track.gain_db
            levelled += rows[row] * ramp_curve(start_db, end_db, frames)
            track.gain_db = end_db
            if self._stems is not None:
                self._stems.write(tid, rows[row])
        self._mix_meter.add(levelled[None, :])
        mix_all = self._mix_meter.powers([1.0])
        self._mix_lufs = integrated_lufs(mix_all)
        loss = integrated_lufs(self._pre_meter.powers([1.0])) - integrated_lufs(
            self._post_meter.powers([1.0])
        )
        block_powers = mix_all[len(mix_all) - frames // SUBBLOCK :]
        _wanted, norm_end = decide_normalisation(
            self._mix_lufs, self._pre_meter.powers([1.0]), block_powers, loss, self._norm_db,
            seconds,
            target_lufs=self.options.target_lufs, ceiling_dbtp=self.options.ceiling_dbtp,
            max_compensation_db=MAX_LIMITER_COMPENSATION_DB,
            max_rate_db_per_s=self.max_rate,
        )  # fmt: skip
        norm_start = norm_end if self._norm_db is None else self._norm_db
        self._norm_db = norm_end
        programme = levelled * ramp_curve(norm_start, norm_end, frames)
        self._pre_meter.add(programme[None, :])
        self._emit(self._limiter.process(programme[:, None].astype(np.float64)))
        self.position += frames

    def _emit(self, limited: NDArray[np.float64]) -> None:
        if limited.shape[0] == 0:
            return
        mono = limited[:, 0].astype(np.float32)
        for encoder in self._encoders.values():
            encoder.write(mono)
        if self._waveform is not None:
            self._waveform.write(mono)
        joined = np.concatenate([self._post_carry, mono])
        whole = len(joined) // SUBBLOCK * SUBBLOCK
        if whole:
            self._post_meter.add(joined[None, :whole])
        self._post_carry = joined[whole:]

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            if self._warn_hook is not None:
                self._warn_hook(message)

    # -- finishing ---------------------------------------------------------------------------

    def finish(self, manifest: Manifest, out_dir: Path) -> RenderResult:
        """Render the rest of the final ``manifest``, check it (see module doc), publish into
        ``out_dir``. Raises :class:`~core.errors.LiveRenderMissed` (nothing published)."""
        try:
            return self._finish(manifest, Path(out_dir))
        finally:
            self.abort()

    def _finish(self, manifest: Manifest, out_dir: Path) -> RenderResult:
        starts = [s.start_offset for t in manifest.tracks for s in t.segments if s.duration > 0]
        if not starts:
            raise InvalidManifest(f"recording {manifest.recording_id} has no audio to render")
        if self.origin is None:
            self.origin = min(starts)
        self._check_placement(manifest)
        span_end = max(s.start_offset + s.duration for t in manifest.tracks
                       for s in t.segments) - self.origin  # fmt: skip
        self._run(manifest, span_end)
        self._emit(self._limiter.flush())
        outputs: dict[str, OutputInfo] = {}
        encoders, self._encoders = self._encoders, {}
        try:
            for fmt, encoder in encoders.items():
                outputs[fmt] = OutputInfo(fmt, encoder.close())
        except BaseException:
            for encoder in encoders.values():
                encoder.abort()
            raise
        for fmt, encoder in encoders.items():
            if fmt not in LOSSY:
                continue
            loudness = encoder.encoder.loudness
            problem = within_goal(loudness.integrated_lufs, loudness.true_peak_dbtp,
                                  target_lufs=self.options.target_lufs,
                                  ceiling_dbtp=self.options.ceiling_dbtp,
                                  tolerance_lu=self.tolerance_lu)  # fmt: skip
            if problem is not None:
                raise LiveRenderMissed(f"{fmt} {problem}")
            outputs[fmt] = replace(outputs[fmt], loudness=loudness)
        outputs.update(self._close_extras(manifest))
        speaker_lufs = {
            tid: _rounded(integrated_lufs(t.meter.speaker_powers(0)))
            for tid, t in self._tracks.items()
        }
        result = RenderResult(
            recording_id=manifest.recording_id,
            duration_seconds=self.position / SAMPLE_RATE,
            outputs=outputs,
            speaker_lufs=speaker_lufs,
            levelling_db={tid: t.gain_db or 0.0 for tid, t in self._tracks.items()},
            mix_lufs_before_gain=_rounded(self._mix_lufs),
            mix_lra_lu=_rounded(range_lu(self._mix_meter.powers([1.0]))),
            gain_db=self._norm_db or 0.0,
            warnings=tuple(self.warnings),
        )
        write_json(self.staging / "render.json", {**result.to_json(), "mode": "live"})
        out_dir.mkdir(parents=True, exist_ok=True)
        return publish_staged(self.staging, out_dir, result)

    def _check_placement(self, manifest: Manifest) -> None:
        problem = placement_problem(manifest, self._placed, self.origin or 0, self.position)
        if problem is not None:
            raise LiveRenderMissed(problem)

    def _close_extras(self, manifest: Manifest) -> dict[str, OutputInfo]:
        outputs: dict[str, OutputInfo] = {}
        if self._stems is not None:
            archive = self._stems.close(manifest, self.staging / "stems.zip")
            if archive is not None:
                outputs["stems"] = OutputInfo("stems", archive)
        if self._waveform is not None:
            outputs["waveform"] = write_waveform(self.staging, self._waveform)
        if self.options.extras:
            powers = {
                tid: np.concatenate([np.zeros(t.joined // SUBBLOCK), t.meter.speaker_powers(0)])
                for tid, t in self._tracks.items()
            }
            outputs.update(write_extras(manifest, powers, span_start=self.origin or 0,
                                        frames=self.position, staging=self.staging))  # fmt: skip
        return outputs

    def abort(self) -> None:
        """Close every open file and drop what was staged (idempotent)."""
        for encoder in self._encoders.values():
            encoder.abort()
        self._encoders = {}
        for track in self._tracks.values():
            track.decoder.close()
        if self._stems is not None:
            self._stems.abort()
        shutil.rmtree(self.staging, ignore_errors=True)


def _rounded(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None

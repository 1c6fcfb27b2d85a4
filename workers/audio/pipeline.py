"""``render_replay``: a recording manifest in, a directory of finished replay outputs out.

Pass 1, decode + place + spill + meter → per-speaker levelling gains, the mix's normalisation
gain and the limiter's estimated loudness loss (the trim), decided before any output sample →
pass 2, mix + true-peak limit + trim into every encoder at once (each measuring its own encoded
output as it goes), the FLAC stems and a programme spill → re-encode (encoder only, from the
spill) any lossy output that missed the target by more than ``tolerance_lu`` → zip stems,
waveform, speaker timeline, chapters, ``render.json`` → publish.

Everything is written into a staging directory inside ``out_dir`` and moved into place only when
all of it succeeded, so a reader never finds a half-written output; on any error the staging
directory is removed and the error propagates (docs/post-production.md, "Bad input").

The values a render takes and returns live in :mod:`workers.audio.options`, its encoders in
:mod:`workers.audio.output_encoders`, its staging and publishing in :mod:`workers.audio.staging`.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from core.audio.gain import db_to_linear, levelling_gains, normalization_gain
from core.audio.timeline_plan import Span, output_span
from core.audio.timeline_plan import Track as PlanTrack
from core.errors import InvalidManifest
from core.recording.manifest import Manifest
from workers.audio.analysis import WaveformBuilder
from workers.audio.levels import integrated_lufs, range_lu
from workers.audio.options import OutputInfo, RenderOptions, RenderResult, rounded
from workers.audio.output_encoders import (
    close_encoders,
    corrected,
    measured,
    open_encoders,
    stem_encoders,
)
from workers.audio.render import (
    SAMPLE_RATE,
    DecodedRoom,
    MixGains,
    ProgrammeRecorder,
    Progress,
    Scaled,
    Sink,
    decode_pass,
    limiter_loss_db,
    mix_pass,
    plan_tracks,
)
from workers.audio.sources import SegmentSource
from workers.audio.staging import (
    publish_staged,
    write_extras,
    write_json,
    write_waveform,
    zip_stems,
)

__all__ = ["OutputInfo", "RenderOptions", "RenderResult", "render_decoded",
           "render_replay", "trimmed_span"]  # fmt: skip


def trimmed_span(tracks: Sequence[PlanTrack], opts: RenderOptions) -> Span:
    """The span a render of ``tracks`` with ``opts``'s trim covers (48 kHz frames).

    Raises :class:`~core.errors.InvalidTimeline` for a trim longer than the recording.
    """
    return output_span(
        tracks,
        trim_start=round(opts.trim_start_seconds * SAMPLE_RATE),
        trim_end=round(opts.trim_end_seconds * SAMPLE_RATE),
    )


def render_replay(
    manifest: Manifest,
    segment_source: SegmentSource,
    out_dir: Path,
    options: RenderOptions | None = None,
    *,
    progress: Progress | None = None,
) -> RenderResult:
    """Render every output of ``options`` for ``manifest`` into ``out_dir`` (see module doc).

    Raises :class:`~core.errors.SegmentMissing` naming a segment that cannot be found,
    :class:`~core.errors.InvalidManifest` for a manifest with no audio, and lets transient
    :class:`~core.errors.StorageUnavailable` through for the caller to retry.
    """
    opts = options or RenderOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tracks, _shift = plan_tracks(manifest)
    span = trimmed_span(tracks, opts)
    if span.frames == 0:
        raise InvalidManifest(f"recording {manifest.recording_id} has no audio to render")

    def decode(work: Path, block: int, warn: Callable[[str], None]) -> DecodedRoom:
        return decode_pass(
            manifest, segment_source, span, tracks, work,
            block_frames=block, warn=warn, progress=progress,
        )  # fmt: skip

    return render_decoded(manifest, decode, out_dir, opts, progress=progress)


#: Pass 1 as :func:`render_decoded` calls it: (work directory, block frames, warn) → the room.
DecodePass = Callable[[Path, int, Callable[[str], None]], DecodedRoom]


def render_decoded(
    manifest: Manifest,
    decode: DecodePass,
    out_dir: Path,
    opts: RenderOptions,
    *,
    levelling_db: Mapping[str, float] | None = None,
    source: str = "segments",
    progress: Progress | None = None,
) -> RenderResult:
    """Every pass after pass 1, around any pass 1: ``decode`` fills a work directory with the
    room's spills and meter, then mix, limit, encode, measure, extras and publish as
    :func:`render_replay` does. ``levelling_db`` (track id → dB) replaces the levelling
    decision taken from the meter (a re-render keeps the whole room's; see
    :mod:`workers.audio.rerender`). Staging and publishing as the module doc says.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    block = max(4800, round(opts.block_seconds * 10) * 4800)
    warnings: list[str] = []

    def warn(message: str) -> None:
        if message not in warnings:
            warnings.append(message)

    staging = Path(tempfile.mkdtemp(prefix=".render-", dir=out_dir))
    try:
        with tempfile.TemporaryDirectory(prefix="roomcast-render-", dir=opts.work_dir) as work:
            room = decode(Path(work), block, warn)
            result = _produce(manifest, room, opts, staging, block, warn, progress,
                              levelling_override=levelling_db)  # fmt: skip
        result = replace(result, source=source)
        write_json(staging / "render.json", {**result.to_json(), "warnings": warnings})
        result = replace(result, warnings=tuple(warnings))
        published = publish_staged(staging, out_dir, result)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return published


def _produce(
    manifest: Manifest,
    room: DecodedRoom,
    opts: RenderOptions,
    staging: Path,
    block: int,
    warn: Callable[[str], None],
    progress: Progress | None,
    *,
    levelling_override: Mapping[str, float] | None = None,
) -> RenderResult:
    meter = room.meter
    speaker_lufs = {
        tid: integrated_lufs(meter.speaker_powers(i)) for i, tid in enumerate(room.track_ids)
    }
    if opts.level_speakers and levelling_override is not None:
        levelling = {tid: float(levelling_override.get(tid, 0.0)) for tid in room.track_ids}
    elif opts.level_speakers:
        levelling = levelling_gains(speaker_lufs)
    else:
        levelling = {tid: 0.0 for tid in room.track_ids}
    levelling_db = [levelling[tid] for tid in room.track_ids]
    powers = meter.powers([10.0 ** (g / 20.0) for g in levelling_db])
    mix_lufs = integrated_lufs(powers)
    decision = normalization_gain(
        mix_lufs, float("-inf"), target_lufs=opts.target_lufs, ceiling_dbtp=opts.ceiling_dbtp
    )
    ceiling = opts.ceiling_dbtp - opts.limiter_headroom_db
    gains = MixGains.from_db(levelling_db, decision.gain_db, ceiling)
    # The limiter takes a little loudness off the peaks: trim the programme back onto the
    # target, within what the limiter's headroom allows. The trim is estimated before the mix
    # so the encoders run during it (one pass, not two); the encoded outputs are measured and
    # corrected below if the estimate missed.
    loss = limiter_loss_db(room, gains)
    trim = min(loss, max(0.0, opts.limiter_headroom_db - 0.3)) if math.isfinite(loss) else 0.0
    outputs: dict[str, OutputInfo] = {}
    stems = stem_encoders(room, staging) if opts.extras and opts.stems else []
    programme = ProgrammeRecorder(room.spills[0].with_name("programme.f32"), meter=False)
    encoders = open_encoders(opts, opts.formats, staging)
    peaks = WaveformBuilder(SAMPLE_RATE) if opts.extras else None
    finished: list[Sink] = [*encoders.values(), *([peaks] if peaks is not None else [])]
    try:
        mix_pass(
            room, gains, [programme, Scaled(finished, db_to_linear(trim))],
            track_sinks=[[stem] for stem in stems], block_frames=block, progress=progress,
        )  # fmt: skip
        programme.close()
        outputs.update(close_encoders(encoders, opts))
        if stems:
            paths = [stem.close() for stem in stems]
            outputs["stems"] = OutputInfo("stems", zip_stems(staging / "stems.zip", paths))
            shutil.rmtree(staging / "stems")
    except BaseException:
        programme.close()
        for enc in [*encoders.values(), *stems]:
            enc.abort()
        raise
    if peaks is not None:
        outputs["waveform"] = write_waveform(staging, peaks)
    if opts.measure_outputs:
        outputs = measured(outputs, progress)
        outputs = corrected(programme, opts, outputs, trim, staging, block, progress, warn)
    if opts.extras:
        speakers = {tid: room.meter.speaker_powers(i) for i, tid in enumerate(room.track_ids)}
        outputs.update(write_extras(manifest, speakers, span_start=room.span.start,
                                    frames=room.frames, staging=staging))  # fmt: skip
    return RenderResult(
        recording_id=manifest.recording_id,
        duration_seconds=room.frames / SAMPLE_RATE,
        outputs=outputs,
        speaker_lufs={tid: rounded(v) for tid, v in speaker_lufs.items()},
        levelling_db=dict(levelling),
        mix_lufs_before_gain=rounded(mix_lufs),
        mix_lra_lu=rounded(range_lu(powers)),
        gain_db=decision.gain_db + trim,
        span=(room.span.start, room.span.end),
    )

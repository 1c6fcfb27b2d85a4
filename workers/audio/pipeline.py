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
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.audio.gain import db_to_linear, levelling_gains, normalization_gain
from core.audio.loudness import LoudnessResult
from core.audio.timeline_plan import Span, output_span
from core.audio.timeline_plan import Track as PlanTrack
from core.errors import InvalidManifest
from core.feeds.chapters import render_chapters
from core.recording.manifest import Manifest
from core.settings import AudioSettings
from workers.audio.analysis import (
    WaveformBuilder,
    chapters_from,
    speaker_turns,
    timeline_document,
)
from workers.audio.encode import (
    ENCODER_TRIM_DB,
    BlockEncoder,
    EncodeSpec,
    Format,
    ThreadedEncoder,
    measure_file,
)
from workers.audio.levels import integrated_lufs, range_lu
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
    programme_pass,
)
from workers.audio.shared_aac import SharedAacEncoder
from workers.audio.sources import SegmentSource

LOSSY: frozenset[str] = frozenset({"mp3", "m4a", "hls"})
#: The key of the one encoder that writes both the M4A and the HLS segments.
_SHARED_AAC = "m4a+hls"


@dataclass(frozen=True)
class RenderOptions:
    """What to produce and how; :meth:`from_settings` fills it from ``AudioSettings``."""

    formats: tuple[Format, ...] = ("mp3", "m4a", "hls")
    stems: bool = True
    extras: bool = True  #: waveform, speaker timeline, chapters
    target_lufs: float = -16.0
    ceiling_dbtp: float = -1.0
    #: The limiter holds this far under the ceiling: lossy encoders overshoot true peak.
    limiter_headroom_db: float = 1.0
    level_speakers: bool = True
    mp3_bitrate_kbps: int = 96
    mp3_channels: int = 1
    mp3_sample_rate: int = 44_100
    mp3_quality: int = 3  #: LAME -q (0 best … 9 fastest); 3 is LAME's and ffmpeg's default
    aac_bitrate_kbps: int = 96
    block_seconds: float = 10.0
    trim_start_seconds: float = 0.0
    trim_end_seconds: float = 0.0
    measure_outputs: bool = True
    tolerance_lu: float = 0.3
    basename: str = "replay"
    work_dir: Path | None = None

    @classmethod
    def from_settings(cls, audio: AudioSettings, **changes: Any) -> RenderOptions:
        base = cls(
            target_lufs=audio.target_lufs,
            ceiling_dbtp=audio.true_peak_dbtp,
            level_speakers=audio.level_speakers,
            mp3_bitrate_kbps=audio.mp3_bitrate_kbps,
            mp3_channels=audio.mp3_channels,
            mp3_sample_rate=audio.mp3_sample_rate,
            mp3_quality=audio.mp3_quality,
        )
        return replace(base, **changes)

    def spec(self, fmt: Format) -> EncodeSpec:
        trim = ENCODER_TRIM_DB.get(fmt, 0.0) if self.mp3_bitrate_kbps <= 128 else 0.0
        if fmt == "mp3":
            return EncodeSpec("mp3", self.mp3_sample_rate, self.mp3_channels,
                              self.mp3_bitrate_kbps, trim_db=trim,
                              mp3_quality=self.mp3_quality)  # fmt: skip
        if fmt in ("m4a", "hls"):
            return EncodeSpec(fmt, SAMPLE_RATE, 1, self.aac_bitrate_kbps)
        return EncodeSpec(fmt)

    def filename(self, fmt: Format) -> str:
        return "hls" if fmt == "hls" else f"{self.basename}.{fmt}"


@dataclass(frozen=True)
class OutputInfo:
    """One published output; ``loudness`` measured on the encoded file (None if not audio)."""

    name: str
    path: Path
    loudness: LoudnessResult | None = None
    correction_db: float = 0.0
    #: Which encoder wrote it: "system" (the system's libmp3lame) or "pyav" (FFmpeg in PyAV).
    encoder: str | None = None

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": self.name,
            "path": self.path.name,
            "loudness": self.loudness.to_json() if self.loudness else None,
            "correction_db": round(self.correction_db, 2),
        }
        if self.encoder is not None:
            document["encoder"] = self.encoder
        return document


@dataclass(frozen=True)
class RenderResult:
    """What a render produced and measured."""

    recording_id: str
    duration_seconds: float
    outputs: dict[str, OutputInfo]
    speaker_lufs: dict[str, float | None]
    levelling_db: dict[str, float]
    mix_lufs_before_gain: float | None
    mix_lra_lu: float | None
    gain_db: float
    warnings: tuple[str, ...] = field(default=())
    #: The rendered span on the room timeline (48 kHz frames, after the manifest's shift):
    #: what a re-render from this render's stems maps a new trim onto.
    span: tuple[int, int] | None = None
    #: "segments" (decoded from the Opus segments) or "stems" (re-rendered from earlier stems).
    source: str = "segments"

    def to_json(self) -> dict[str, Any]:
        span = None
        if self.span is not None:
            span = {"start": self.span[0], "end": self.span[1], "sample_rate": SAMPLE_RATE}
        return {
            "recording_id": self.recording_id,
            "duration_seconds": round(self.duration_seconds, 3),
            "outputs": {name: info.to_json() for name, info in self.outputs.items()},
            "speaker_lufs": self.speaker_lufs,
            "levelling_db": {k: round(v, 2) for k, v in self.levelling_db.items()},
            "mix_lufs_before_gain": self.mix_lufs_before_gain,
            "mix_lra_lu": self.mix_lra_lu,
            "gain_db": round(self.gain_db, 2),
            "warnings": list(self.warnings),
            "span": span,
            "source": self.source,
        }


def _rounded(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None


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
        _write_json(staging / "render.json", {**result.to_json(), "warnings": warnings})
        result = replace(result, warnings=tuple(warnings))
        published = _publish(staging, out_dir, result)
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
    stems = _stem_encoders(room, staging) if opts.extras and opts.stems else []
    programme = ProgrammeRecorder(room.spills[0].with_name("programme.f32"), meter=False)
    encoders = _open_encoders(opts, opts.formats, staging)
    peaks = WaveformBuilder(SAMPLE_RATE) if opts.extras else None
    finished: list[Sink] = [*encoders.values(), *([peaks] if peaks is not None else [])]
    try:
        mix_pass(
            room, gains, [programme, Scaled(finished, db_to_linear(trim))],
            track_sinks=[[stem] for stem in stems], block_frames=block, progress=progress,
        )  # fmt: skip
        programme.close()
        outputs.update(_close_encoders(encoders, opts))
        if stems:
            paths = [stem.close() for stem in stems]
            outputs["stems"] = OutputInfo("stems", _zip(staging / "stems.zip", paths))
            shutil.rmtree(staging / "stems")
    except BaseException:
        programme.close()
        for enc in [*encoders.values(), *stems]:
            enc.abort()
        raise
    if peaks is not None:
        path = staging / "waveform.json"
        _write_json(path, peaks.document())
        outputs["waveform"] = OutputInfo("waveform", path)
    if opts.measure_outputs:
        outputs = _measure(outputs, progress)
        outputs = _correct(programme, opts, outputs, trim, staging, block, progress, warn)
    if opts.extras:
        outputs.update(_extras(manifest, room, staging))
    return RenderResult(
        recording_id=manifest.recording_id,
        duration_seconds=room.frames / SAMPLE_RATE,
        outputs=outputs,
        speaker_lufs={tid: _rounded(v) for tid, v in speaker_lufs.items()},
        levelling_db=dict(levelling),
        mix_lufs_before_gain=_rounded(mix_lufs),
        mix_lra_lu=_rounded(range_lu(powers)),
        gain_db=decision.gain_db + trim,
        span=(room.span.start, room.span.end),
    )


def _stem_encoders(room: DecodedRoom, staging: Path) -> list[ThreadedEncoder]:
    (staging / "stems").mkdir()
    return [
        ThreadedEncoder(BlockEncoder(staging / "stems" / stem_filename(i, tid), EncodeSpec("flac")))
        for i, tid in enumerate(room.track_ids)
    ]


def _encode(
    programme: ProgrammeRecorder,
    opts: RenderOptions,
    formats: tuple[Format, ...],
    trim_db: float,
    staging: Path,
    block: int,
    progress: Progress | None,
    *,
    waveform: bool = True,
) -> dict[str, OutputInfo]:
    """Re-encode ``formats`` from the programme spill with ``trim_db`` (a correction)."""
    encoders = _open_encoders(opts, formats, staging)
    peaks = WaveformBuilder(SAMPLE_RATE) if waveform and opts.extras else None
    sinks: list[Sink] = [*encoders.values(), *([peaks] if peaks is not None else [])]
    try:
        programme_pass(
            programme.path, programme.frames, trim_db, sinks, block_frames=block,
            progress=progress,
        )  # fmt: skip
        outputs = _close_encoders(encoders, opts)
    except BaseException:
        for enc in encoders.values():
            enc.abort()
        raise
    if peaks is not None:
        path = staging / "waveform.json"
        _write_json(path, peaks.document())
        outputs["waveform"] = OutputInfo("waveform", path)
    return outputs


def _open_encoders(
    opts: RenderOptions, formats: tuple[Format, ...], staging: Path
) -> dict[str, ThreadedEncoder]:
    """One threaded encoder per format. Each encoded output is decoded and metered as it is
    produced (what is measured is what is written), so nothing is read back afterwards."""
    encoders: dict[str, ThreadedEncoder] = {}
    shared = "m4a" in formats and "hls" in formats
    if shared:  # one AAC encode muxed into both (workers/audio/shared_aac.py)
        encoders[_SHARED_AAC] = ThreadedEncoder(
            BlockEncoder.shared_aac(
                staging / opts.filename("m4a"), staging / opts.filename("hls"),
                opts.spec("m4a"), measure=opts.measure_outputs,
            )
        )  # fmt: skip
    for fmt in formats:
        if shared and fmt in ("m4a", "hls"):
            continue
        encoder = BlockEncoder(
            staging / opts.filename(fmt), opts.spec(fmt), measure=opts.measure_outputs
        )
        encoders[fmt] = ThreadedEncoder(encoder)
    return encoders


def _close_encoders(
    encoders: dict[str, ThreadedEncoder], opts: RenderOptions
) -> dict[str, OutputInfo]:
    outputs: dict[str, OutputInfo] = {}
    for name, enc in encoders.items():
        written = enc.close()
        loudness = enc.loudness if opts.measure_outputs else None
        backend = enc.encoder.backend
        if isinstance(enc.encoder, SharedAacEncoder):
            for fmt, path in enc.encoder.paths.items():
                outputs[fmt] = OutputInfo(fmt, path, loudness, encoder=backend)
        else:
            outputs[name] = OutputInfo(name, written, loudness, encoder=backend)
    return outputs


def _measure(outputs: dict[str, OutputInfo], progress: Progress | None) -> dict[str, OutputInfo]:
    audio = [name for name in outputs if name in LOSSY or name in ("wav", "flac")]
    measured = dict(outputs)
    for done, name in enumerate(audio):
        if outputs[name].loudness is None:  # measured while encoding otherwise (see _encode)
            measured[name] = replace(outputs[name], loudness=measure_file(outputs[name].path))
        if progress is not None:
            progress("measure", done + 1, len(audio))
    return measured


def _correct(
    programme: ProgrammeRecorder,
    opts: RenderOptions,
    outputs: dict[str, OutputInfo],
    trim_db: float,
    staging: Path,
    block: int,
    progress: Progress | None,
    warn: Callable[[str], None],
) -> dict[str, OutputInfo]:
    """Re-encode, once, each output that measured off target or over the ceiling.

    Only the encoder runs again (from the programme spill), with the measured error taken off.
    """
    fixed = dict(outputs)
    for fmt in opts.formats:
        loud = outputs[fmt].loudness
        if loud is None or not math.isfinite(loud.integrated_lufs):
            continue
        error = opts.target_lufs - loud.integrated_lufs
        over = loud.true_peak_dbtp - opts.ceiling_dbtp
        if abs(error) <= opts.tolerance_lu and over <= 0.0:
            continue
        change = min(error, -over - 0.1) if over > 0.0 or error > 0.0 else error
        again = _encode(programme, opts, (fmt,), trim_db + change, staging, block, progress,
                        waveform=False)  # fmt: skip
        measured = again[fmt].loudness or measure_file(again[fmt].path)
        fixed[fmt] = replace(again[fmt], loudness=measured, correction_db=change)
        if (
            abs(opts.target_lufs - measured.integrated_lufs) > 2 * opts.tolerance_lu
            or measured.true_peak_dbtp > opts.ceiling_dbtp
        ):
            warn(
                f"{fmt}: measures {measured.integrated_lufs:.1f} LUFS /"
                f" {measured.true_peak_dbtp:.1f} dBTP after correction"
            )
    return fixed


def _extras(manifest: Manifest, room: DecodedRoom, staging: Path) -> dict[str, OutputInfo]:
    names = {t.participant_id: t.display_name or t.participant_id for t in manifest.tracks}
    duration = room.frames / SAMPLE_RATE
    powers = {tid: room.meter.speaker_powers(i) for i, tid in enumerate(room.track_ids)}
    turns = speaker_turns(powers)
    timeline = staging / "timeline.json"
    _write_json(timeline, timeline_document(turns, names, duration=duration))
    markers = [((m.offset - room.span.start) / SAMPLE_RATE, m.title) for m in manifest.markers]
    chapters = staging / "chapters.json"
    chapters.write_bytes(render_chapters(chapters_from(markers, turns, names, duration=duration)))
    return {
        "timeline": OutputInfo("timeline", timeline),
        "chapters": OutputInfo("chapters", chapters),
    }


def _publish(staging: Path, out_dir: Path, result: RenderResult) -> RenderResult:
    """Move every staged output into ``out_dir``; ``render.json`` last, as the commit marker."""
    moved: dict[str, OutputInfo] = {}
    for name, info in result.outputs.items():
        target = out_dir / info.path.name
        _move(info.path, target)
        moved[name] = replace(info, path=target)
    _move(staging / "render.json", out_dir / "render.json")
    return replace(result, outputs=moved)


def _move(source: Path, target: Path) -> None:
    if target.is_dir():
        shutil.rmtree(target)
    os.replace(source, target)


def _zip(path: Path, members: list[Path]) -> Path:
    partial = path.with_name(path.name + ".part")
    # A fixed timestamp keeps the archive byte-identical across re-renders (idempotent tasks).
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:
        for member in members:
            info = zipfile.ZipInfo(f"stems/{member.name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with member.open("rb") as source, archive.open(info, "w", force_zip64=True) as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
    os.replace(partial, path)
    return path


def _safe(identifier: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in identifier)
    return cleaned[:60] or "speaker"


def _write_json(path: Path, document: Any) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    os.replace(partial, path)


# Public helpers for other renders of the same outputs (workers.audio.live_render).


def publish_staged(staging: Path, out_dir: Path, result: RenderResult) -> RenderResult:
    """Move staged outputs and ``render.json`` (written last: the commit marker) into place."""
    return _publish(staging, out_dir, result)


def zip_stems(path: Path, members: list[Path]) -> Path:
    """The stems archive, byte-identical for identical members."""
    return _zip(path, members)


def stem_filename(index: int, track_id: str) -> str:
    """A stem's file name inside the archive (its track's index in the manifest)."""
    return f"{index:02d}-{_safe(track_id)}.flac"


def write_json(path: Path, document: Any) -> None:
    """Write ``document`` atomically."""
    _write_json(path, document)


def write_extras(
    manifest: Manifest,
    powers: dict[str, Any],
    *,
    span_start: int,
    frames: int,
    staging: Path,
) -> dict[str, OutputInfo]:
    """Speaker timeline and chapters from each speaker's 100 ms powers over the output span."""
    names = {t.participant_id: t.display_name or t.participant_id for t in manifest.tracks}
    duration = frames / SAMPLE_RATE
    turns = speaker_turns(powers)
    timeline = staging / "timeline.json"
    _write_json(timeline, timeline_document(turns, names, duration=duration))
    markers = [((m.offset - span_start) / SAMPLE_RATE, m.title) for m in manifest.markers]
    chapters = staging / "chapters.json"
    chapters.write_bytes(render_chapters(chapters_from(markers, turns, names, duration=duration)))
    return {
        "timeline": OutputInfo("timeline", timeline),
        "chapters": OutputInfo("chapters", chapters),
    }

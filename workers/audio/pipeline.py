"""``render_replay``: a recording manifest in, a directory of finished replay outputs out.

Pass 1, decode + place + spill + meter → per-speaker levelling gains and the mix's
normalisation gain, decided from the meter → pass 2, mix + true-peak limit into a programme
spill (metered) and the FLAC stems → pass 3, the programme trimmed onto the target (the
limiter took a little loudness off the peaks) into every encoder at once → re-measure every
encoded output by decoding it → re-encode (encoder only) any lossy output that missed the
target by more than ``tolerance_lu`` → zip stems, waveform, speaker timeline, chapters,
``render.json`` → publish.

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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.audio.gain import levelling_gains, normalization_gain
from core.audio.loudness import LoudnessResult
from core.audio.timeline_plan import output_span
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
    Sink,
    decode_pass,
    mix_pass,
    plan_tracks,
    programme_pass,
)
from workers.audio.sources import SegmentSource

LOSSY: frozenset[str] = frozenset({"mp3", "m4a", "hls"})


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
        )
        return replace(base, **changes)

    def spec(self, fmt: Format) -> EncodeSpec:
        trim = ENCODER_TRIM_DB.get(fmt, 0.0) if self.mp3_bitrate_kbps <= 128 else 0.0
        if fmt == "mp3":
            return EncodeSpec("mp3", self.mp3_sample_rate, self.mp3_channels,
                              self.mp3_bitrate_kbps, trim_db=trim)  # fmt: skip
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

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path.name,
            "loudness": self.loudness.to_json() if self.loudness else None,
            "correction_db": round(self.correction_db, 2),
        }


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

    def to_json(self) -> dict[str, Any]:
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
        }


def _rounded(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None


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
    span = output_span(
        tracks,
        trim_start=round(opts.trim_start_seconds * SAMPLE_RATE),
        trim_end=round(opts.trim_end_seconds * SAMPLE_RATE),
    )
    if span.frames == 0:
        raise InvalidManifest(f"recording {manifest.recording_id} has no audio to render")
    block = max(4800, round(opts.block_seconds * 10) * 4800)
    warnings: list[str] = []

    def warn(message: str) -> None:
        if message not in warnings:
            warnings.append(message)

    staging = Path(tempfile.mkdtemp(prefix=".render-", dir=out_dir))
    try:
        with tempfile.TemporaryDirectory(prefix="roomcast-render-", dir=opts.work_dir) as work:
            room = decode_pass(
                manifest, segment_source, span, tracks, Path(work),
                block_frames=block, warn=warn, progress=progress,
            )  # fmt: skip
            result = _produce(manifest, room, opts, staging, block, warn, progress)
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
) -> RenderResult:
    meter = room.meter
    speaker_lufs = {
        tid: integrated_lufs(meter.speaker_powers(i)) for i, tid in enumerate(room.track_ids)
    }
    if opts.level_speakers:
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
    outputs: dict[str, OutputInfo] = {}
    stems = _stem_encoders(room, staging) if opts.extras and opts.stems else []
    programme = ProgrammeRecorder(room.spills[0].with_name("programme.f32"))
    try:
        mix_pass(
            room, MixGains.from_db(levelling_db, decision.gain_db, ceiling), [programme],
            track_sinks=[[stem] for stem in stems], block_frames=block, progress=progress,
        )  # fmt: skip
        programme.close()
        if stems:
            paths = [stem.close() for stem in stems]
            outputs["stems"] = OutputInfo("stems", _zip(staging / "stems.zip", paths))
            shutil.rmtree(staging / "stems")
    except BaseException:
        programme.close()
        for stem in stems:
            stem.abort()
        raise
    # The limiter took a little loudness off the peaks: trim the programme back onto the
    # target, within what the limiter's headroom allows.
    limited = integrated_lufs(programme.meter.powers([1.0]))
    trim = 0.0
    if math.isfinite(limited):
        trim = min(opts.target_lufs - limited, max(0.0, opts.limiter_headroom_db - 0.3))
    outputs.update(_encode(programme, opts, opts.formats, trim, staging, block, progress))
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
    )


def _stem_encoders(room: DecodedRoom, staging: Path) -> list[ThreadedEncoder]:
    (staging / "stems").mkdir()
    return [
        ThreadedEncoder(
            BlockEncoder(staging / "stems" / f"{i:02d}-{_safe(tid)}.flac", EncodeSpec("flac"))
        )
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
    """Pass 3: every format of ``formats`` (and the waveform) from the programme spill."""
    encoders: dict[str, ThreadedEncoder] = {
        fmt: ThreadedEncoder(BlockEncoder(staging / opts.filename(fmt), opts.spec(fmt)))
        for fmt in formats
    }
    peaks = WaveformBuilder(SAMPLE_RATE) if waveform and opts.extras else None
    sinks: list[Sink] = [*encoders.values(), *([peaks] if peaks is not None else [])]
    try:
        programme_pass(
            programme.path, programme.frames, trim_db, sinks, block_frames=block,
            progress=progress,
        )  # fmt: skip
        outputs: dict[str, OutputInfo] = {
            fmt: OutputInfo(fmt, enc.close()) for fmt, enc in encoders.items()
        }
    except BaseException:
        for enc in encoders.values():
            enc.abort()
        raise
    if peaks is not None:
        path = staging / "waveform.json"
        _write_json(path, peaks.document())
        outputs["waveform"] = OutputInfo("waveform", path)
    return outputs


def _measure(outputs: dict[str, OutputInfo], progress: Progress | None) -> dict[str, OutputInfo]:
    audio = [name for name in outputs if name in LOSSY or name in ("wav", "flac")]
    measured = dict(outputs)
    for done, name in enumerate(audio):
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
        measured = measure_file(again[fmt].path)
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

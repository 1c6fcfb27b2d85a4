"""What a render is asked for (:class:`RenderOptions`) and what it produced (:class:`RenderResult`,
one :class:`OutputInfo` per output): the values :mod:`workers.audio.pipeline` and the renders
built on it (live, re-render from stems, ``roomcast export``) share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.audio.loudness import LoudnessResult
from core.settings import AudioSettings
from workers.audio.encode import ENCODER_TRIM_DB, EncodeSpec, Format
from workers.audio.render import SAMPLE_RATE

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


def rounded(value: float) -> float | None:
    """``value`` to 0.01, or None when it is not finite (silence measures -inf)."""
    return round(value, 2) if math.isfinite(value) else None

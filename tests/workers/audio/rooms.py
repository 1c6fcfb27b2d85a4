"""Real recorded rooms for the post-production tests: PCM → libopus → Ogg segments + manifest.

Segments are written the way the recorder writes them (recorder/ogg_opus.py, pre-skip 0, lost
packets replaced by silent Opus frames) and laid out like the spool (``<root>/tracks/<p>/``,
``<root>/manifest.json``), so ``roomcast export <root>/manifest.json`` finds them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray

from core.recording.manifest import Manifest, Marker, Segment, Track
from core.recording.opus import SILENCE_FRAMES
from recorder.ogg_opus import OggOpusWriter

RATE = 48_000
FRAME = 960


def opus_packets(pcm: NDArray[np.floating], bitrate: int = 32_000) -> list[bytes]:
    """20 ms Opus packets of a mono 48 kHz float signal (libopus, as a browser would send)."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = RATE
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = bitrate
    codec.open()
    n = len(pcm) // FRAME
    ints = (np.clip(pcm[: n * FRAME], -1.0, 1.0) * 32767).astype(np.int16)
    out: list[bytes] = []
    for i in range(n):
        frame = av.AudioFrame.from_ndarray(
            ints[None, i * FRAME : (i + 1) * FRAME], format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        frame.pts = i * FRAME
        out += [bytes(p) for p in codec.encode(frame)]
    out += [bytes(p) for p in codec.encode(None)]
    return out[:n]


@dataclass
class Speaker:
    """One speaker: their signal, where it starts on the room timeline, which packets are lost."""

    participant_id: str
    pcm: NDArray[np.floating]
    start: int = 0
    lost: frozenset[int] = field(default_factory=frozenset)
    display_name: str = ""
    #: Pre-encoded 20 ms packets to write instead of encoding ``pcm`` (benchmarks).
    packets: list[bytes] | None = None


def write_room(
    root: Path,
    speakers: list[Speaker],
    *,
    recording_id: str = "rec-1",
    segment_seconds: float = 2.0,
    markers: tuple[Marker, ...] = (),
) -> Manifest:
    """Write segments and ``manifest.json`` under ``root``; returns the manifest."""
    per_segment = int(segment_seconds * RATE) // FRAME
    tracks = []
    for speaker in speakers:
        packets = speaker.packets if speaker.packets is not None else opus_packets(speaker.pcm)
        segments = []
        for index, first in enumerate(range(0, len(packets), per_segment)):
            chunk = packets[first : first + per_segment]
            key = f"recordings/{recording_id}/tracks/{speaker.participant_id}/{index:05d}.opus"
            path = root / "tracks" / speaker.participant_id / f"{index:05d}.opus"
            path.parent.mkdir(parents=True, exist_ok=True)
            lost = 0
            with open(path, "wb") as handle:
                writer = OggOpusWriter(handle, serial=index + 1)
                for number, payload in enumerate(chunk, start=first):
                    if number in speaker.lost:
                        writer.write_packet(SILENCE_FRAMES[FRAME], FRAME)
                        lost += 1
                    else:
                        writer.write_packet(payload, FRAME)
                writer.close()
            data = path.read_bytes()
            segments.append(
                Segment(
                    key=key, index=index, stream=0, rtp_first_timestamp=first * FRAME,
                    rtp_last_timestamp=(first + len(chunk) - 1) * FRAME,
                    start_offset=speaker.start + first * FRAME, duration=len(chunk) * FRAME,
                    packets=len(chunk) - lost, lost_packets=lost, size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                )
            )  # fmt: skip
        tracks.append(
            Track(speaker.participant_id, speaker.display_name or speaker.participant_id,
                  tuple(segments))
        )  # fmt: skip
    manifest = Manifest(
        recording_id=recording_id, room_id="room-1", epoch=1_700_000_000.0, status="complete",
        tracks=tuple(tracks), markers=markers,
    )  # fmt: skip
    (root / "manifest.json").write_text(manifest.to_json())
    return manifest


def speech_like(seconds: float, *, seed: int, level: float = 0.3) -> NDArray[np.float64]:
    """Band-limited noise in syllables (~4 Hz) and phrases with pauses: speech-like loudness."""
    rng = np.random.default_rng(seed)
    frames = int(seconds * RATE)
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, frames))
    freqs = np.fft.rfftfreq(frames, 1.0 / RATE)
    spectrum *= (freqs > 90.0) / (1.0 + (freqs / 700.0) ** 2)
    voiced = np.fft.irfft(spectrum, frames)
    voiced /= np.max(np.abs(voiced)) + 1e-12
    t = np.arange(frames) / RATE
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0.0, None) ** 2
    phrases = (np.sin(2 * np.pi * t / 3.1 + rng.uniform(0, 6)) > -0.5).astype(np.float64)
    signal: NDArray[np.float64] = level * voiced * syllables * phrases
    return signal

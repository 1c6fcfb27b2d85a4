"""Real Opus packets for tests: a sine encoded by PyAV's libopus, 20 ms per packet."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np

RATE = 48_000
FRAME = 960


def sine_packets(seconds: float, frequency: float = 440.0) -> list[bytes]:
    """Opus packets (mono, 48 kHz, 20 ms) of a sine lasting ``seconds``."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = RATE
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = 32_000
    codec.open()
    n = int(seconds * RATE) // FRAME
    t = np.arange(n * FRAME) / RATE
    pcm = (np.sin(2 * np.pi * frequency * t) * 12_000).astype(np.int16)
    out: list[bytes] = []
    for i in range(n):
        frame = av.AudioFrame.from_ndarray(
            pcm[None, i * FRAME : (i + 1) * FRAME], format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        frame.pts = i * FRAME
        out += [bytes(p) for p in codec.encode(frame)]
    out += [bytes(p) for p in codec.encode(None)]
    return out[:n]


def decode_with_pyav(path: Path) -> np.ndarray:
    """All samples of an Ogg Opus file as one mono float array (PyAV / FFmpeg's decoder)."""
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks.append(frame.to_ndarray().reshape(-1, frame.samples)[0])
    return np.concatenate(chunks) if chunks else np.zeros(0)


def decode_with_ffmpeg(path: Path) -> int:
    """Samples the ffmpeg CLI decodes from ``path`` (mono s16, 48 kHz)."""
    raw = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-i",
            str(path),
            "-ac",
            "1",
            "-ar",
            "48000",
            "-f",
            "s16le",
            "-",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    return len(raw) // 2

"""Synthetic tones for live tests: a paced sine track and an FFT tone detector."""

from __future__ import annotations

import asyncio
import fractions

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame
from numpy.typing import NDArray

RATE = 48000
FRAME = 960


class ToneTrack(MediaStreamTrack):
    """A sine at ``frequency`` Hz (48 kHz mono s16, 20 ms frames) paced in real time.

    A little seeded noise makes every Opus packet distinct, so tests can match forwarded
    payloads byte for byte.
    """

    kind = "audio"

    def __init__(self, frequency: float, amplitude: float = 0.25, seed: int = 0) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self._rng = np.random.default_rng(seed)
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        delay = self._start + self._index * FRAME / RATE - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (np.arange(FRAME) + self._index * FRAME) / RATE
        wave = self.amplitude * np.sin(2 * np.pi * self.frequency * t)
        wave += self._rng.normal(0.0, 0.003, FRAME)
        samples = (np.clip(wave, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
        frame = AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._index * FRAME
        frame.time_base = fractions.Fraction(1, RATE)
        self._index += 1
        return frame


def tones_present(
    samples: NDArray[np.float32], candidates: list[float], *, min_fraction: float = 0.03
) -> set[float]:
    """Which candidate frequencies carry at least ``min_fraction`` of the signal's energy."""
    if samples.size < RATE // 10 or float(np.sqrt(np.mean(samples**2))) < 1e-3:
        return set()
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size))) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / RATE)
    total = float(spectrum.sum())
    found = set()
    for frequency in candidates:
        band = (freqs > frequency - 15) & (freqs < frequency + 15)
        if float(spectrum[band].sum()) / total >= min_fraction:
            found.add(frequency)
    return found

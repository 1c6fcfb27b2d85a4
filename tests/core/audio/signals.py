"""Synthesised test signals (EBU Tech 3341/3342 style) for the audio tests."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def sine(
    dbfs: float,
    seconds: float,
    *,
    rate: int = 48000,
    freq: float = 1000.0,
    channels: int = 2,
    phase: float = 0.0,
) -> NDArray[np.float64]:
    """A sine with peak amplitude ``dbfs`` on every channel, shape (frames, channels)."""
    t = np.arange(round(seconds * rate)) / rate
    wave = 10.0 ** (dbfs / 20.0) * np.sin(2.0 * np.pi * freq * t + phase)
    return np.repeat(wave[:, None], channels, axis=1)


def sequence(parts: list[tuple[float, float]], **kwargs: object) -> NDArray[np.float64]:
    """Concatenated 1 kHz sines: ``[(dbfs, seconds), ...]``."""
    return np.concatenate([sine(dbfs, seconds, **kwargs) for dbfs, seconds in parts])  # type: ignore[arg-type]


def speech_like(seconds: float, *, rate: int = 48000, seed: int = 7) -> NDArray[np.float64]:
    """Mono noise shaped like speech: band-limited, syllabic bursts, pauses, varying level."""
    rng = np.random.default_rng(seed)
    frames = int(seconds * rate)
    noise = rng.normal(0.0, 1.0, frames)
    # A crude vocal-tract tilt: two one-pole low-passes emphasise 100 Hz..3 kHz energy.
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(frames, 1.0 / rate)
    spectrum *= 1.0 / (1.0 + (freqs / 800.0) ** 2) * (freqs > 80.0)
    voiced = np.fft.irfft(spectrum, frames)
    # Syllables at ~4 Hz, phrases of a few seconds separated by pauses, phrase levels vary.
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * np.arange(frames) / rate), 0.0, None) ** 2
    phrase_len = rate * 3
    levels = rng.uniform(-12.0, 0.0, frames // phrase_len + 1)
    envelope = 10.0 ** (np.repeat(levels, phrase_len)[:frames] / 20.0)
    envelope[(np.arange(frames) // (rate // 2)) % 7 == 6] = 0.0  # a 0.5 s pause every 3.5 s
    signal = voiced * syllables * envelope
    return 0.5 * signal / np.max(np.abs(signal))

"""StreamResampler: continuous across blocks, no added delay, the expected length."""

from __future__ import annotations

import math

import numpy as np

from workers.audio.resample import StreamResampler


def _whole(resampler: StreamResampler, samples: np.ndarray, block: int) -> np.ndarray:
    parts = [resampler.push(samples[i : i + block]) for i in range(0, len(samples), block)]
    return np.concatenate([*parts, resampler.flush()])


def test_blocks_of_any_size_give_the_same_stream_of_the_expected_length() -> None:
    rng = np.random.default_rng(3)
    samples = (rng.standard_normal(48_000 * 3 + 17) * 0.1).astype(np.float32)
    one = _whole(StreamResampler(48_000, 44_100), samples, len(samples))
    blocks = _whole(StreamResampler(48_000, 44_100), samples, 4_799)
    assert abs(len(one) - len(samples) * 44_100 / 48_000) < 1.0
    assert len(blocks) == len(one)
    assert np.max(np.abs(blocks - one)) < 1e-4


def test_an_impulse_stays_at_its_instant_and_a_tone_keeps_its_level() -> None:
    impulse = np.zeros(48_000, dtype=np.float32)
    impulse[24_000] = 1.0
    out = _whole(StreamResampler(48_000, 44_100), impulse, 10_000)
    assert abs(int(np.argmax(np.abs(out))) - 22_050) <= 1

    t = np.arange(48_000 * 2) / 48_000
    tone = (0.5 * np.sin(2 * np.pi * 1_000 * t)).astype(np.float32)
    converted = _whole(StreamResampler(48_000, 44_100), tone, 4_800)[4_410:-4_410]
    rms = float(np.sqrt(np.mean(converted.astype(np.float64) ** 2)))
    assert abs(rms - 0.5 / math.sqrt(2)) < 1e-3


def test_an_empty_push_returns_nothing() -> None:
    resampler = StreamResampler(48_000, 44_100)
    assert resampler.push(np.zeros(0, dtype=np.float32)).size == 0

"""Gain decisions, speaker levelling and the true-peak limiter's guarantee."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.audio.gain import (
    ANNEX2_L1,
    TruePeakLimiter,
    db_to_linear,
    levelling_gains,
    normalization_gain,
    window_min,
)
from core.audio.loudness import measure
from core.audio.truepeak import ANNEX2_PHASES, interpolate, to_db, true_peak_of
from core.errors import InvalidAudio
from tests.core.audio.signals import sine, speech_like


def _run(limiter: TruePeakLimiter, signal: np.ndarray, seed: int = 0) -> np.ndarray:
    """Feed the limiter in ragged blocks and collect everything it returns."""
    rng = np.random.default_rng(seed)
    out = []
    position = 0
    while position < len(signal):
        size = int(rng.integers(1, 5000))
        out.append(limiter.process(signal[position : position + size]))
        position += size
    out.append(limiter.flush())
    return np.concatenate(out)


def test_gain_reaches_the_target_and_flags_the_limiter() -> None:
    decision = normalization_gain(-24.0, -3.0, target_lufs=-16.0, ceiling_dbtp=-1.0)
    assert decision.gain_db == pytest.approx(8.0)
    assert decision.expected_lufs == pytest.approx(-16.0)
    assert decision.expected_peak_dbtp == pytest.approx(5.0)
    assert decision.needs_limiter


def test_gain_without_limiter_when_peaks_allow() -> None:
    decision = normalization_gain(-20.0, -10.0)
    assert decision.gain_db == pytest.approx(4.0)
    assert not decision.needs_limiter


def test_peak_bound_policy_stops_at_the_ceiling() -> None:
    decision = normalization_gain(-24.0, -3.0, policy="peak_bound")
    assert decision.gain_db == pytest.approx(2.0)
    assert decision.expected_peak_dbtp == pytest.approx(-1.0)
    assert not decision.needs_limiter


def test_gain_is_capped_and_silence_untouched() -> None:
    assert normalization_gain(-70.0, -50.0, max_gain_db=30.0).gain_db == 30.0
    assert normalization_gain(float("-inf"), float("-inf")).gain_db == 0.0


def test_levelling_moves_speakers_towards_the_median_within_limits() -> None:
    gains = levelling_gains(
        {"host": -20.0, "guest": -26.0, "whisper": -40.0, "shouter": -14.0, "muted": -math.inf},
        max_boost_db=9.0,
        max_cut_db=4.0,
    )
    # Median of the measured speakers is -23.
    assert gains == {"host": -3.0, "guest": 3.0, "whisper": 9.0, "shouter": -4.0, "muted": 0.0}


def test_levelling_towards_an_explicit_target() -> None:
    assert levelling_gains({"a": -19.0}, target_lufs=-16.0) == {"a": 3.0}
    assert levelling_gains({}) == {}
    with pytest.raises(InvalidAudio):
        levelling_gains({"a": -19.0}, max_boost_db=-1.0)


@given(
    st.dictionaries(st.text(max_size=3), st.floats(-80.0, 0.0), max_size=6),
    st.floats(0.0, 20.0),
    st.floats(0.0, 20.0),
)
def test_levelling_gains_stay_within_bounds(
    speakers: dict[str, float], boost: float, cut: float
) -> None:
    gains = levelling_gains(speakers, max_boost_db=boost, max_cut_db=cut)
    assert gains.keys() == speakers.keys()
    assert all(-cut <= gain <= boost for gain in gains.values())


def _hard_signal(rate: int) -> np.ndarray:
    """Everything that breaks naive limiters: ISPs near Nyquist, clipped squares, spikes."""
    rng = np.random.default_rng(9)
    frames = rate * 4
    t = np.arange(frames) / rate
    left = 2.0 * np.sin(2 * np.pi * rate / 4 * t + np.pi / 4)  # +6 dB, +3 dB between samples
    left[rate : 2 * rate] = np.sign(np.sin(2 * np.pi * 997 * t[:rate])) * 4.0  # +12 dB square
    right = rng.normal(0.0, 0.8, frames)
    right[2 * rate : 2 * rate + 50] = 16.0  # a +24 dB burst with no warning
    right[3 * rate :] = np.sin(2 * np.pi * 11025.5 * t[3 * rate :] + 0.4) * 1.5
    return np.stack([left, right], axis=1)


@pytest.mark.parametrize(("rate", "ceiling"), [(48000, -1.0), (44100, -2.0), (16000, -1.0)])
def test_limiter_output_never_exceeds_its_ceiling(rate: int, ceiling: float) -> None:
    signal = _hard_signal(rate)
    assert to_db(true_peak_of(signal)) > 20.0
    out = _run(TruePeakLimiter(rate, 2, ceiling_dbtp=ceiling), signal)
    assert out.shape == signal.shape
    assert to_db(true_peak_of(out)) <= ceiling
    assert measure(out, rate).true_peak_dbtp <= ceiling


def test_limited_speech_stays_loud_and_under_the_ceiling() -> None:
    speech = speech_like(20.0)
    gain = db_to_linear(8.0)  # pushes peaks well past the ceiling, like a normalisation gain
    loud = (speech * gain)[:, None]
    out = _run(TruePeakLimiter(48000, 1, ceiling_dbtp=-1.0), loud, seed=4)
    before, after = measure(loud, 48000), measure(out, 48000)
    assert before.true_peak_dbtp > 0.0
    assert after.true_peak_dbtp <= -1.0
    # Only peaks are touched: integrated loudness drops by little.
    assert before.integrated_lufs - after.integrated_lufs < 1.5


@pytest.mark.parametrize("freq", [440.0, 997.0, 12000.0])
def test_limiter_is_transparent_half_a_db_below_the_ceiling(freq: float) -> None:
    quiet = sine(-1.6, 1.0, freq=freq, phase=np.pi / 4)  # the abrupt start overshoots a bit
    assert to_db(true_peak_of(quiet)) <= -1.5
    limiter = TruePeakLimiter(48000, 2, ceiling_dbtp=-1.0)
    out = _run(limiter, quiet)
    # Same samples, same positions: the look-ahead delay is fully compensated by flush().
    np.testing.assert_array_equal(out, quiet)
    assert limiter.latency == 480 + 11


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.5, 20.0), st.floats(-6.0, 0.0))
def test_limiter_ceiling_holds_on_random_signals(seed: int, scale: float, ceiling: float) -> None:
    rng = np.random.default_rng(seed)
    signal = rng.normal(0.0, scale, (3000, 1)) * (rng.random((3000, 1)) < 0.3)
    limiter = TruePeakLimiter(48000, 1, ceiling_dbtp=ceiling, lookahead_ms=2.0)
    out = _run(limiter, signal, seed=seed % 1000)
    assert out.shape == signal.shape
    assert true_peak_of(out) <= db_to_linear(ceiling)


def test_limiter_refuses_bad_blocks() -> None:
    limiter = TruePeakLimiter(48000, 2)
    with pytest.raises(InvalidAudio) as info:
        limiter.process(np.zeros((10, 1)))
    assert info.value.code == "invalid_audio"
    with pytest.raises(InvalidAudio):
        limiter.process(np.full((10, 2), np.inf))


def _bursty(seed: int, frames: int, channels: int, peak: float) -> np.ndarray:
    """Quiet noise with loud bursts of random length: loud and quiet sub-blocks side by side."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(0.0, 0.02, (frames, channels))
    for _ in range(int(rng.integers(1, 8))):
        start = int(rng.integers(0, frames))
        length = int(rng.integers(1, 400))
        signal[start : start + length] *= peak / 0.02 * rng.random()
    return signal


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.floats(0.2, 8.0),
    st.sampled_from([1, 2]),
    st.floats(-6.0, 0.0),
    st.sampled_from([2.0, 10.0]),
)
def test_skipping_quiet_stretches_changes_no_sample(
    seed: int, peak: float, channels: int, ceiling: float, lookahead: float
) -> None:
    """The quiet-stretch shortcut is exact: identical output to oversampling every sample."""
    signal = _bursty(seed, 6000, channels, peak)
    fast = TruePeakLimiter(48000, channels, ceiling_dbtp=ceiling, lookahead_ms=lookahead)
    full = TruePeakLimiter(
        48000, channels, ceiling_dbtp=ceiling, lookahead_ms=lookahead, skip_quiet=False
    )
    np.testing.assert_array_equal(_run(fast, signal, seed % 97), _run(full, signal, seed % 97))


def test_skipping_quiet_stretches_is_exact_on_limited_speech() -> None:
    """Golden: normalised speech whose peaks the limiter must catch, either way the same."""
    loud = (speech_like(20.0) * db_to_linear(8.0))[:, None]
    fast = _run(TruePeakLimiter(48000, 1), loud, seed=5)
    full = _run(TruePeakLimiter(48000, 1, skip_quiet=False), loud, seed=5)
    assert np.any(fast != loud)  # the limiter did work here
    np.testing.assert_array_equal(fast, full)


def test_the_quiet_bound_holds_for_the_annex_filter() -> None:
    """No interpolated value exceeds ANNEX2_L1 x the largest sample it reads (worst case)."""
    worst = np.sign(ANNEX2_PHASES[int(np.abs(ANNEX2_PHASES).sum(axis=1).argmax())])[::-1]
    values = interpolate(worst[:, None])
    assert np.abs(values).max() == pytest.approx(ANNEX2_L1)
    assert 1.9 < ANNEX2_L1 < 2.1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=400),
    st.integers(1, 130),
)
def test_window_min_is_the_sliding_minimum(values: list[float], width: int) -> None:
    data = np.asarray(values)
    expected = (
        np.lib.stride_tricks.sliding_window_view(data, width).min(axis=1)
        if width <= len(data)
        else np.zeros(0)
    )
    np.testing.assert_array_equal(window_min(data, width), expected)

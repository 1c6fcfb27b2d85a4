"""True peak per BS.1770-4 Annex 2 on sines and inter-sample-peak signals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.audio.truepeak import ANNEX2_FIR, TruePeakTracker, to_db, true_peak_of
from tests.core.audio.signals import sine


def test_annex2_filter_is_symmetric_with_near_unit_dc_gain_per_phase() -> None:
    np.testing.assert_allclose(ANNEX2_FIR, ANNEX2_FIR[::-1])
    phase_sums = ANNEX2_FIR.reshape(12, 4).sum(axis=0)
    # The published (quantised) filter passes DC at 0.973..1.002 depending on the phase.
    np.testing.assert_allclose(phase_sums, [1.0016, 0.9730, 0.9730, 1.0016], atol=1e-3)


def test_997_hz_sine_at_0_dbfs_reads_0_dbtp() -> None:
    assert to_db(true_peak_of(sine(0.0, 2.0, freq=997.0))) == pytest.approx(0.0, abs=0.3)


@pytest.mark.parametrize("rate", [44100, 48000])
def test_quarter_rate_sine_at_45_degrees_has_a_3_db_inter_sample_peak(rate: int) -> None:
    # Every sample sits at +-A/sqrt(2); the waveform reaches A between them.
    signal = sine(0.0, 1.0, rate=rate, freq=rate / 4, phase=np.pi / 4)
    assert to_db(float(np.max(np.abs(signal)))) == pytest.approx(-3.01, abs=0.01)
    assert to_db(true_peak_of(signal)) == pytest.approx(0.0, abs=0.3)


def test_sixth_rate_sine_between_samples() -> None:
    # Samples straddle each crest by half a sample: sample peak cos(30 deg) = -1.25 dBFS.
    rate = 48000
    signal = sine(-6.0, 1.0, rate=rate, freq=rate / 6, phase=np.pi / 2 - np.pi / 6)
    assert to_db(float(np.max(np.abs(signal)))) == pytest.approx(-7.25, abs=0.01)
    assert to_db(true_peak_of(signal)) == pytest.approx(-6.0, abs=0.3)


def test_true_peak_is_never_below_the_sample_peak() -> None:
    # The Annex's phase 0 is 0.972 at its centre tap; a lone impulse must still read 0.5.
    impulse = np.zeros((100, 1))
    impulse[50, 0] = 0.5
    assert true_peak_of(impulse) >= 0.5


def test_tracker_counts_the_ring_out_after_the_last_sample() -> None:
    signal = sine(0.0, 0.01, freq=12000.0, phase=np.pi / 4)
    whole = true_peak_of(signal)
    tracker = TruePeakTracker(2)
    for start in range(0, len(signal), 7):
        tracker.add(signal[start : start + 7])
    assert tracker.peak() == pytest.approx(whole, rel=1e-12)
    assert tracker.peak_db() == pytest.approx(to_db(whole), abs=1e-9)


def test_silence_is_minus_infinity() -> None:
    assert to_db(true_peak_of(np.zeros((480, 2)))) == float("-inf")


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.01, 4.0), st.sampled_from([1, 2]))
def test_skipping_stretches_that_cannot_raise_the_peak_changes_nothing(
    seed: int, burst: float, channels: int
) -> None:
    """The tracker's shortcut is exact: the same peak as oversampling every sample."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(0.0, 0.05, (5000, channels))
    for _ in range(int(rng.integers(0, 6))):
        start = int(rng.integers(0, 5000))
        signal[start : start + int(rng.integers(1, 300))] *= burst / 0.05 * rng.random()
    fast, full = TruePeakTracker(channels), TruePeakTracker(channels, skip_quiet=False)
    position = 0
    while position < len(signal):
        size = int(rng.integers(1, 1500))
        fast.add(signal[position : position + size])
        full.add(signal[position : position + size])
        position += size
    assert fast.peak() == full.peak()

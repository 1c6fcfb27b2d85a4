"""True peak per ITU-R BS.1770-4 Annex 2: 4x oversampling with the Annex's polyphase FIR.

The Annex's interpolator is a 48-tap FIR (4 phases x 12 taps) designed for 48 kHz. Its
coefficients are normalised to the input sample period, so the same filter serves any sample
rate: 4x is what the Annex asks for below 96 kHz and more than enough above it. The true peak
reported is the larger of the interpolated values and the samples themselves (phase 0 of the
Annex filter is close to, but not exactly, the identity), so a true peak is never below the
sample peak.

:class:`TruePeakTracker` is streaming: it keeps the last 11 input samples per channel between
blocks, so splitting a signal into blocks never changes the result. It oversamples only the
stretches that could raise the peak found so far (:func:`loud_runs` with the bound
:data:`ANNEX2_L1`): the result is identical, and most of a programme is skipped.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy.signal import upfirdn

#: Oversampling factor of the Annex 2 interpolator.
FACTOR: Final = 4

#: Taps per phase; an interpolated value reads the current and the 11 previous samples.
TAPS_PER_PHASE: Final = 12

#: History kept between blocks.
HISTORY: Final = TAPS_PER_PHASE - 1

#: BS.1770-4 Annex 2, table: phase p, tap i (tap 0 multiplies the newest sample).
# fmt: off
ANNEX2_PHASES: Final[NDArray[np.float64]] = np.array([
    [0.0017089843750, 0.0109863281250, -0.0196533203125, 0.0332031250000,
     -0.0594482421875, 0.1373291015625, 0.9721679687500, -0.1022949218750,
     0.0476074218750, -0.0266113281250, 0.0148925781250, -0.0083007812500],
    [-0.0291748046875, 0.0292968750000, -0.0517578125000, 0.0891113281250,
     -0.1665039062500, 0.4650878906250, 0.7797851562500, -0.2003173828125,
     0.1015625000000, -0.0582275390625, 0.0330810546875, -0.0189208984375],
    [-0.0189208984375, 0.0330810546875, -0.0582275390625, 0.1015625000000,
     -0.2003173828125, 0.7797851562500, 0.4650878906250, -0.1665039062500,
     0.0891113281250, -0.0517578125000, 0.0292968750000, -0.0291748046875],
    [-0.0083007812500, 0.0148925781250, -0.0266113281250, 0.0476074218750,
     -0.1022949218750, 0.9721679687500, 0.1373291015625, -0.0594482421875,
     0.0332031250000, -0.0196533203125, 0.0109863281250, 0.0017089843750],
])
# fmt: on

#: The largest gain of the interpolator: max over phases of sum(|taps|). No interpolated
#: value exceeds this times the largest |sample| it reads, which lets the limiter and the
#: tracker skip stretches that cannot matter (:func:`loud_runs`).
ANNEX2_L1: Final = float(np.abs(ANNEX2_PHASES).sum(axis=1).max())

#: Samples per sub-block :func:`loud_runs` classes as quiet or loud.
QUIET_SUBBLOCK: Final = 64

#: Quiet sub-blocks up to this many between two loud ones are computed with them (one
#: interpolation call instead of two: cheaper than the skip).
QUIET_BRIDGE: Final = 8

#: The same filter as one 48-tap response at the oversampled rate: h[4i + p] = phase p, tap i.
ANNEX2_FIR: Final[NDArray[np.float64]] = ANNEX2_PHASES.T.reshape(-1).copy()


def interpolate(
    extended: NDArray[np.float64], fir: NDArray[np.float64] = ANNEX2_FIR
) -> NDArray[np.float64]:
    """Oversampled values for every sample of ``extended`` after its first :data:`HISTORY`.

    ``extended`` has shape (frames, channels) and starts with the 11 samples that precede the
    ones of interest. Returns shape (frames - 11, 4, channels): entry [n, p] is the value at
    phase p of the interpolation ending at sample n (it reads samples n-11..n).
    """
    frames, channels = extended.shape
    count = frames - HISTORY
    if count <= 0:
        return np.zeros((0, FACTOR, channels))
    # upfirdn runs the polyphase decomposition in C; outputs before 4*HISTORY would read
    # samples before ``extended`` and those after 4*frames are the filter's tail.
    out = upfirdn(fir, extended, up=FACTOR, axis=0)
    valid = out[FACTOR * HISTORY : FACTOR * frames]
    return np.asarray(valid, dtype=np.float64).reshape(count, FACTOR, channels)


def true_peak_of(samples: NDArray[np.float64]) -> float:
    """Linear true peak of a whole signal (frames, channels), its filter tail included."""
    tracker = TruePeakTracker(samples.shape[1])
    tracker.add(samples)
    return tracker.peak()


def to_db(linear: float) -> float:
    """Linear amplitude to dB (dBFS / dBTP); silence is ``-inf``."""
    return float(20.0 * np.log10(linear)) if linear > 0.0 else float("-inf")


class TruePeakTracker:
    """Running true peak of a stream of (frames, channels) float blocks, full scale = 1.0."""

    def __init__(self, channels: int, *, skip_quiet: bool = True) -> None:
        self._history = np.zeros((HISTORY, channels))
        self._peak = 0.0
        self._skip = skip_quiet  #: False oversamples every sample (the tests' reference)
        #: The largest |sample| so far (the sample peak a meter also reports).
        self.sample_peak = 0.0

    def add(self, block: NDArray[np.float64]) -> None:
        """Feed the next samples (frames, channels)."""
        if block.shape[0] == 0:
            return
        extended = np.concatenate([self._history, block])
        self._history = extended[-HISTORY:].copy()
        self.sample_peak = max(self.sample_peak, float(np.max(np.abs(block))))
        self._peak = max(self._peak, self.sample_peak)
        # Stretches whose interpolation cannot pass the peak so far cannot change it (the
        # margin is far above float rounding): only the others are oversampled.
        below = self._peak / ANNEX2_L1 * (1.0 - 1e-9) if self._skip else -1.0
        for start, stop in loud_runs(extended, below):
            values = interpolate(extended[start : stop + HISTORY])
            self._peak = max(self._peak, float(np.max(np.abs(values))))

    def peak(self) -> float:
        """Linear true peak so far, counting the filter's ring-out after the last sample."""
        tail = interpolate(np.concatenate([self._history, np.zeros_like(self._history)]))
        return max(self._peak, float(np.max(np.abs(tail))) if tail.size else 0.0)

    def peak_db(self) -> float:
        """True peak so far in dBTP (``-inf`` for digital silence)."""
        return to_db(self.peak())


def loud_runs(extended: NDArray[np.float64], quiet: float) -> list[tuple[int, int]]:
    """[start, stop) runs of output samples whose interpolation may read above ``quiet``.

    Output n reads ``extended[n : n + 12]``, which lies within sub-blocks k and k + 1 of
    ``extended`` (n in sub-block k, 11 < :data:`QUIET_SUBBLOCK`): a sub-block is loud when
    either holds a sample above ``quiet``. Runs are whole sub-blocks (clipped to the block),
    with short quiet stretches between loud ones bridged.
    """
    count = extended.shape[0] - HISTORY
    if count <= 0:
        return []
    # Mono is most of what is metered: a reduction over an axis of length 1 costs a pass.
    magnitude = np.abs(extended[:, 0]) if extended.shape[1] == 1 else np.abs(extended).max(axis=1)
    if magnitude.max() <= quiet:
        return []
    blocks = -(-count // QUIET_SUBBLOCK)
    padded = np.zeros((blocks + 1) * QUIET_SUBBLOCK)
    padded[: len(magnitude)] = magnitude
    peaks = padded.reshape(blocks + 1, QUIET_SUBBLOCK).max(axis=1)
    loud = np.flatnonzero(np.maximum(peaks[:-1], peaks[1:]) > quiet)
    if len(loud) == 0:
        return []
    breaks = np.flatnonzero(np.diff(loud) > QUIET_BRIDGE + 1)
    firsts = np.concatenate([[loud[0]], loud[breaks + 1]])
    lasts = np.concatenate([loud[breaks], [loud[-1]]])
    return [
        (int(first) * QUIET_SUBBLOCK, min(count, (int(last) + 1) * QUIET_SUBBLOCK))
        for first, last in zip(firsts, lasts, strict=True)
    ]

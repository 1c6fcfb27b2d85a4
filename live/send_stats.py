"""Counters and latency histograms of a room's send path (what /metrics and bench/sfu.py read).

Pure bookkeeping, no I/O: the media path calls :meth:`LatencyHistogram.observe` with seconds
and the readers take :meth:`LatencyHistogram.percentile` or the raw bucket counts. Buckets are
fixed and log-spaced (50 µs … ~1.6 s), so recording is O(log buckets) and memory constant
whatever the packet rate; a percentile is reported as its bucket's upper bound (≤ 12 % high).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = ["BUCKET_BOUNDS", "LatencyHistogram", "SendStats"]

#: Upper bounds (seconds) of the histogram buckets: 50 µs × 1.122^k, the last one open.
BUCKET_BOUNDS: tuple[float, ...] = tuple(50e-6 * 1.122**k for k in range(92))


@dataclass
class LatencyHistogram:
    """Counts of observed latencies per bucket (:data:`BUCKET_BOUNDS`), plus their sum."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKET_BOUNDS) + 1))
    total: int = 0
    sum_seconds: float = 0.0

    def observe(self, seconds: float) -> None:
        """Record one latency (negative values count as zero)."""
        self.counts[bisect.bisect_left(BUCKET_BOUNDS, seconds)] += 1
        self.total += 1
        self.sum_seconds += max(0.0, seconds)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0–100) in seconds, as a bucket upper bound; NaN if empty."""
        if self.total == 0:
            return float("nan")
        rank = max(1, round(q / 100 * self.total))
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return BUCKET_BOUNDS[min(index, len(BUCKET_BOUNDS) - 1)]
        return BUCKET_BOUNDS[-1]

    def merged(self, other: LatencyHistogram) -> LatencyHistogram:
        """A new histogram holding both (e.g. several rooms)."""
        return LatencyHistogram(
            [a + b for a, b in zip(self.counts, other.counts, strict=True)],
            self.total + other.total,
            self.sum_seconds + other.sum_seconds,
        )

    def to_dict(self) -> dict[str, object]:
        return {"counts": list(self.counts), "total": self.total, "sum": self.sum_seconds}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LatencyHistogram:
        counts = data["counts"]
        total, sum_seconds = data["total"], data["sum"]
        if not isinstance(counts, list) or not isinstance(total, int):
            raise TypeError("not a histogram")
        return cls([int(c) for c in counts], total, float(sum_seconds))  # type: ignore[arg-type]


@dataclass
class SendStats:
    """One room's send path: packets sent and dropped, server-added latency per path.

    ``forward_latency``: a speaker packet's arrival at the RTP tap → sent to the last speaker
    that hears it. ``mix_latency``: a speaker packet's arrival → the mix packet carrying it sent
    to the last listener (includes the mixer's playout buffer, by design ~20–40 ms).
    """

    forwarded: int = 0
    forward_dropped: int = 0
    mix_sent: int = 0
    mix_dropped: int = 0
    forward_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    mix_latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def to_dict(self) -> dict[str, object]:
        return {
            "forwarded": self.forwarded,
            "forward_dropped": self.forward_dropped,
            "mix_sent": self.mix_sent,
            "mix_dropped": self.mix_dropped,
            "forward_latency": self.forward_latency.to_dict(),
            "mix_latency": self.mix_latency.to_dict(),
        }

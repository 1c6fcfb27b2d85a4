"""Signaling rate limits: a token bucket as a pure value.

Each signaling connection starts with ``burst`` tokens; every message takes one; tokens come
back at ``rate`` per second up to ``burst``. A message that finds the bucket empty is a flood:
the signaling shell closes the connection with 4008 (``CloseCode.POLICY_VIOLATION``).

The same bucket limits one action per participant (``raise_hand``, :func:`per_minute`): there
an empty bucket refuses the action with ``rate_limited`` and the connection stays up.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TokenBucket", "per_minute", "retry_after", "take"]


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """Tokens left at time ``updated`` (seconds on the caller's monotonic clock)."""

    rate: float
    burst: int
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: int, now: float) -> TokenBucket:
        """A bucket holding ``burst`` tokens at ``now``; ``rate`` > 0 and ``burst`` ≥ 1."""
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        return cls(rate, burst, float(burst), now)


def take(bucket: TokenBucket, now: float) -> tuple[TokenBucket, bool]:
    """Spend one token at ``now``: the new bucket and whether the message is allowed.

    A clock that goes backwards refills nothing (never more than ``burst`` tokens).
    """
    elapsed = max(0.0, now - bucket.updated)
    tokens = min(float(bucket.burst), bucket.tokens + elapsed * bucket.rate)
    updated = max(now, bucket.updated)
    if tokens < 1.0:
        return TokenBucket(bucket.rate, bucket.burst, tokens, updated), False
    return TokenBucket(bucket.rate, bucket.burst, tokens - 1.0, updated), True


def per_minute(count: int, now: float) -> TokenBucket:
    """A full bucket allowing ``count`` actions a minute, ``count`` of them at once."""
    return TokenBucket.full(count / 60.0, count, now)


def retry_after(bucket: TokenBucket) -> float:
    """Seconds from ``bucket.updated`` until it holds one token again (0 when it does)."""
    return max(0.0, (1.0 - bucket.tokens) / bucket.rate)

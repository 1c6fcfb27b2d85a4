"""A sliding-window rate limit, as a pure function of past event times and ``now``.

The shell passes the times of the caller's recent actions (for clips: the creation times of
the user's clips, read from the database, so every API process sees the same count and a
restart forgets nothing) and the current time; the answer says whether one more is allowed
and, if not, after how many seconds it will be.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from core.errors import InvalidInput


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` actions in any ``window_seconds``."""

    limit: int
    window_seconds: float

    def __post_init__(self) -> None:
        if self.limit < 1 or not self.window_seconds > 0:
            raise InvalidInput("a rate limit needs limit >= 1 and a positive window")


@dataclass(frozen=True)
class RateDecision:
    """Whether one more action is allowed now."""

    allowed: bool
    remaining: int
    """Actions still allowed in the window after this one (0 when refused)."""
    retry_after: float
    """Seconds until one more would be allowed (0 when allowed)."""

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` value: whole seconds, rounded up, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


def check(rule: RateLimit, past: Iterable[float], now: float) -> RateDecision:
    """May one more action happen at ``now`` given the times of ``past`` actions?

    Actions at or before ``now - window`` no longer count; actions "in the future" (clock
    skew between processes) count as recent.
    """
    cutoff = now - rule.window_seconds
    recent = sorted(moment for moment in past if moment > cutoff)
    if len(recent) < rule.limit:
        return RateDecision(True, rule.limit - len(recent) - 1, 0.0)
    # The oldest action that must leave the window before one more fits.
    blocking = recent[len(recent) - rule.limit]
    return RateDecision(False, 0, blocking + rule.window_seconds - now)

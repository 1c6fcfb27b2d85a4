"""When to retry a webhook delivery, and when to give up on an endpoint.

Pure: randomness and the clock come in as arguments. The default policy follows the schedule
Standard Webhooks senders use (immediately, then seconds, minutes, hours): 8 attempts in all,
retry ``n`` (1-based) waits ``base × factor^(n-1)`` capped at ``max_delay``, spread by
±``jitter`` so endpoints that failed together do not get hammered together::

    retry:    1     2      3       4        5       6       7
    nominal:  5 s   30 s   3 min   18 min   1.8 h   10 h    10 h     (≈ 22 h in all)

An endpoint is disabled when it has failed for ``disable_after`` seconds without a single
success in between (default 5 days) and at least ``disable_min_failures`` attempts failed, or
at once when it answers 410 Gone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from core.errors import InvalidInput

Outcome = Literal["delivered", "retry", "gone"]


@dataclass(frozen=True)
class RetryPolicy:
    """Delivery attempts and endpoint disabling; the defaults suit most receivers."""

    max_attempts: int = 8
    base_seconds: float = 5.0
    factor: float = 6.0
    max_delay_seconds: float = 10 * 3600.0
    jitter: float = 0.2
    disable_after_seconds: float = 5 * 24 * 3600.0
    disable_min_failures: int = 10

    def __post_init__(self) -> None:
        if self.max_attempts < 6:
            raise InvalidInput("webhook retry policy needs at least 6 attempts")
        if self.base_seconds <= 0 or self.factor < 1 or self.max_delay_seconds < self.base_seconds:
            raise InvalidInput("webhook retry delays must be positive and non-decreasing")
        if not 0 <= self.jitter < 1:
            raise InvalidInput("webhook retry jitter must be in [0, 1)")
        if self.disable_after_seconds <= 0 or self.disable_min_failures < 1:
            raise InvalidInput("endpoint disabling thresholds must be positive")


def nominal_delay(policy: RetryPolicy, retry: int) -> float:
    """Seconds before retry number ``retry`` (1 = the first retry), without jitter."""
    if retry < 1:
        raise InvalidInput("retry numbers start at 1")
    # Multiply step by step and stop at the cap: factor**retry would overflow for large retries.
    delay = policy.base_seconds
    for _ in range(retry - 1):
        delay *= policy.factor
        if delay >= policy.max_delay_seconds:
            return policy.max_delay_seconds
    return min(delay, policy.max_delay_seconds)


def delay_bounds(policy: RetryPolicy, retry: int) -> tuple[float, float]:
    """The interval the jittered delay of retry ``retry`` falls in."""
    nominal = nominal_delay(policy, retry)
    return nominal * (1 - policy.jitter), nominal * (1 + policy.jitter)


def next_delay(policy: RetryPolicy, attempts_made: int, rand: float) -> float | None:
    """Seconds to wait after ``attempts_made`` failed attempts, or ``None`` to give up.

    ``rand`` is a uniform draw in [0, 1) (``random.random()`` in the shell).
    """
    if attempts_made < 1:
        raise InvalidInput("at least one attempt must have been made")
    if not 0 <= rand < 1:
        raise InvalidInput("rand must be in [0, 1)")
    if attempts_made >= policy.max_attempts:
        return None
    low, high = delay_bounds(policy, attempts_made)
    return low + (high - low) * rand


def schedule(policy: RetryPolicy) -> tuple[float, ...]:
    """Nominal waits between the attempts (``max_attempts - 1`` values)."""
    return tuple(nominal_delay(policy, n) for n in range(1, policy.max_attempts))


def classify(status: int | None) -> Outcome:
    """What an HTTP answer means: ``None`` is a network error or timeout."""
    if status is not None and 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "gone"
    return "retry"


@dataclass(frozen=True)
class EndpointHealth:
    """Failures of one endpoint since its last success (times in Unix seconds)."""

    consecutive_failures: int = 0
    failing_since: float | None = None
    disabled: bool = False


def record_attempt(
    policy: RetryPolicy, health: EndpointHealth, status: int | None, *, now: float
) -> EndpointHealth:
    """The endpoint's health after an attempt that got ``status`` at ``now``."""
    outcome = classify(status)
    if outcome == "delivered":
        return EndpointHealth()
    failing_since = health.failing_since if health.failing_since is not None else now
    updated = replace(
        health, consecutive_failures=health.consecutive_failures + 1, failing_since=failing_since
    )
    if outcome == "gone" or should_disable(policy, updated, now=now):
        return replace(updated, disabled=True)
    return updated


def should_disable(policy: RetryPolicy, health: EndpointHealth, *, now: float) -> bool:
    """True when the endpoint has failed long enough, and often enough, to stop sending."""
    if health.disabled:
        return True
    if health.failing_since is None:
        return False
    return (
        now - health.failing_since >= policy.disable_after_seconds
        and health.consecutive_failures >= policy.disable_min_failures
    )

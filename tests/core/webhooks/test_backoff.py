"""The webhook retry schedule and endpoint disabling."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.webhooks.backoff import (
    EndpointHealth,
    RetryPolicy,
    classify,
    delay_bounds,
    next_delay,
    record_attempt,
    schedule,
    should_disable,
)

POLICY = RetryPolicy()
DAY = 24 * 3600.0


def test_default_schedule_golden() -> None:
    assert schedule(POLICY) == (5.0, 30.0, 180.0, 1080.0, 6480.0, 36000.0, 36000.0)
    assert POLICY.max_attempts >= 6
    assert 20 * 3600 < sum(schedule(POLICY)) < 24 * 3600


@given(attempts=st.integers(min_value=1, max_value=7), rand=st.floats(0, 1, exclude_max=True))
def test_jittered_delay_stays_within_bounds(attempts: int, rand: float) -> None:
    delay = next_delay(POLICY, attempts, rand)
    low, high = delay_bounds(POLICY, attempts)
    assert delay is not None and low <= delay <= high
    assert high <= POLICY.max_delay_seconds * (1 + POLICY.jitter)


@given(st.integers(min_value=1, max_value=10_000))
def test_nominal_delays_never_decrease_and_never_overflow(retry: int) -> None:
    low, high = delay_bounds(POLICY, retry)
    next_low, _ = delay_bounds(POLICY, retry + 1)
    assert low <= next_low and high <= POLICY.max_delay_seconds * 1.2


def test_gives_up_after_max_attempts() -> None:
    assert next_delay(POLICY, 7, 0.5) is not None
    assert next_delay(POLICY, 8, 0.5) is None
    assert next_delay(POLICY, 100, 0.0) is None


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 5}, {"jitter": 1.0}, {"base_seconds": 0}, {"factor": 0.5}]
)
def test_policy_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_rand_and_attempts_are_checked() -> None:
    with pytest.raises(InvalidInput):
        next_delay(POLICY, 1, 1.0)
    with pytest.raises(InvalidInput):
        next_delay(POLICY, 0, 0.5)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (None, "retry"),
        (500, "retry"),
        (429, "retry"),
        (404, "retry"),
        (301, "retry"),
        (410, "gone"),
    ],
)
def test_classify(status: int | None, outcome: str) -> None:
    assert classify(status) == outcome


def test_endpoint_disabled_after_five_days_of_failures() -> None:
    health = EndpointHealth()
    t = 0.0
    while t < 5 * DAY:
        health = record_attempt(POLICY, health, 500, now=t)
        assert not health.disabled
        t += 3600
    health = record_attempt(POLICY, health, None, now=5 * DAY)
    assert health.disabled and should_disable(POLICY, health, now=5 * DAY)


def test_a_success_resets_health() -> None:
    health = EndpointHealth()
    for hour in range(20):
        health = record_attempt(POLICY, health, 503, now=hour * 3600.0)
    health = record_attempt(POLICY, health, 200, now=4 * DAY)
    assert health == EndpointHealth()
    health = record_attempt(POLICY, health, 503, now=5 * DAY)
    assert health.failing_since == 5 * DAY and not health.disabled


def test_few_failures_over_a_long_time_do_not_disable() -> None:
    health = record_attempt(POLICY, EndpointHealth(), 500, now=0)
    health = record_attempt(POLICY, health, 500, now=6 * DAY)
    assert not health.disabled


def test_gone_disables_at_once() -> None:
    assert record_attempt(POLICY, EndpointHealth(), 410, now=0).disabled

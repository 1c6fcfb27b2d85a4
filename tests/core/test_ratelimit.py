"""The sliding-window limiter, with the clock passed in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.ratelimit import RateLimit, check

RULE = RateLimit(limit=3, window_seconds=60.0)


def test_allows_up_to_the_limit_then_says_when() -> None:
    assert check(RULE, [], 100.0).remaining == 2
    assert check(RULE, [90.0, 95.0], 100.0).allowed
    refused = check(RULE, [50.0, 90.0, 95.0], 100.0)
    assert not refused.allowed and refused.remaining == 0
    assert refused.retry_after == pytest.approx(10.0)  # 50 leaves the window at 110
    assert refused.retry_after_header == "10"
    assert check(RULE, [50.0, 90.0, 95.0], 110.0).allowed


def test_retry_after_header_rounds_up_to_at_least_one() -> None:
    assert check(RULE, [40.1, 41.0, 42.0], 100.0).retry_after_header == "1"
    assert check(RULE, [40.0001, 41.0, 42.0], 100.0).retry_after_header == "1"


def test_rule_is_validated() -> None:
    with pytest.raises(InvalidInput):
        RateLimit(0, 1.0)
    with pytest.raises(InvalidInput):
        RateLimit(1, 0.0)


@given(
    st.lists(st.floats(min_value=0, max_value=1000), max_size=20),
    st.floats(min_value=0, max_value=1100),
)
def test_waiting_retry_after_always_lets_one_more_in(past: list[float], now: float) -> None:
    decision = check(RULE, past, now)
    if decision.allowed:
        assert decision.retry_after == 0
    else:
        assert decision.retry_after > 0
        # Tolerances: float sums near the window's edge round either way.
        assert check(RULE, past, now + decision.retry_after + 1e-6).allowed
        if decision.retry_after > 1e-3:
            assert not check(RULE, past, now + decision.retry_after - 1e-3).allowed

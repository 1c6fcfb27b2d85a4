"""The signaling token bucket: golden cases and a property (never more than burst + rate·t)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from live.rate_limit import TokenBucket, take


def test_burst_then_refused_then_refilled_at_the_rate() -> None:
    bucket = TokenBucket.full(rate=2.0, burst=3, now=0.0)
    allowed = []
    for _ in range(4):
        bucket, ok = take(bucket, 0.0)
        allowed.append(ok)
    assert allowed == [True, True, True, False]
    bucket, ok = take(bucket, 0.4)  # 0.8 token back: still refused
    assert not ok
    bucket, ok = take(bucket, 0.5)  # 1.0 token back
    assert ok
    bucket, _ = take(bucket, 100.0)  # a long pause refills only up to the burst
    assert bucket.tokens == pytest.approx(2.0)


def test_clock_going_backwards_refills_nothing() -> None:
    bucket = TokenBucket.full(rate=10.0, burst=1, now=5.0)
    bucket, ok = take(bucket, 5.0)
    assert ok
    bucket, ok = take(bucket, 1.0)
    assert not ok and bucket.updated == 5.0


def test_invalid_bucket_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket.full(rate=0.0, burst=1, now=0.0)
    with pytest.raises(ValueError):
        TokenBucket.full(rate=1.0, burst=0, now=0.0)


@given(
    rate=st.floats(0.5, 50.0),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0.0, 0.5), min_size=1, max_size=200),
)
def test_allowed_messages_never_exceed_burst_plus_rate_times_elapsed(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket = TokenBucket.full(rate, burst, 0.0)
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        bucket, ok = take(bucket, now)
        allowed += ok
        assert allowed <= burst + rate * now + 1e-9
        assert 0.0 <= bucket.tokens <= burst

"""The pure decisions of one delivery attempt: gate, outcome, pinned request."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.settings import WebhookSettings
from core.webhooks.backoff import EndpointHealth, RetryPolicy
from core.webhooks.delivery import (
    after_attempt,
    failing_since,
    gate,
    pinned_request,
    retry_policy,
)

POLICY = RetryPolicy(
    max_attempts=6, base_seconds=1.0, factor=2.0, max_delay_seconds=60.0, jitter=0.0
)


def test_gate_sends_each_attempt_once_and_never_after_delivery() -> None:
    assert gate("pending", 0, 1, endpoint_enabled=True) == "send"
    assert gate("pending", 2, 3, endpoint_enabled=True) == "send"
    assert gate("pending", 1, 1, endpoint_enabled=True) == "drop"  # duplicate message
    assert gate("pending", 3, 3, endpoint_enabled=True) == "drop"
    assert gate("delivered", 2, 3, endpoint_enabled=True) == "drop"
    assert gate("failed", 2, 3, endpoint_enabled=True) == "drop"
    assert gate("pending", 0, 1, endpoint_enabled=False) == "fail"
    with pytest.raises(InvalidInput):
        gate("pending", 0, 0, endpoint_enabled=True)


def test_outcomes_follow_the_backoff_schedule() -> None:
    health = EndpointHealth()
    first = after_attempt(POLICY, 1, 500, health, now=100.0, rand=0.5)
    assert first.status == "pending" and first.retry_in == 1.0
    assert first.health.consecutive_failures == 1 and first.health.failing_since == 100.0
    second = after_attempt(POLICY, 2, None, first.health, now=101.0, rand=0.5)
    assert second.retry_in == 2.0 and second.health.failing_since == 100.0
    done = after_attempt(POLICY, 3, 204, second.health, now=103.0, rand=0.5)
    assert done.status == "delivered" and done.retry_in is None
    assert done.health == EndpointHealth()


def test_the_last_attempt_fails_the_delivery() -> None:
    outcome = after_attempt(POLICY, 6, 503, EndpointHealth(), now=0.0, rand=0.0)
    assert outcome.status == "failed" and outcome.retry_in is None
    assert not outcome.health.disabled


def test_gone_and_long_failure_disable_the_endpoint() -> None:
    gone = after_attempt(POLICY, 1, 410, EndpointHealth(), now=0.0, rand=0.0)
    assert gone.status == "failed" and gone.health.disabled
    quick = RetryPolicy(
        max_attempts=6, base_seconds=1.0, disable_after_seconds=10.0, disable_min_failures=3
    )
    health = EndpointHealth(consecutive_failures=2, failing_since=0.0)
    outcome = after_attempt(quick, 3, 500, health, now=11.0, rand=0.0)
    assert outcome.status == "failed" and outcome.health.disabled


def test_policy_from_settings() -> None:
    settings = WebhookSettings(max_attempts=7, retry_base_seconds=0.2, retry_factor=2.0)
    policy = retry_policy(settings)
    assert (policy.max_attempts, policy.base_seconds, policy.factor) == (7, 0.2, 2.0)


def test_pinned_request_connects_to_the_vetted_address_under_the_original_name() -> None:
    pinned = pinned_request("https://hooks.example.com:8443/in?x=1", "93.184.216.34")
    assert pinned.url == "https://93.184.216.34:8443/in?x=1"
    assert pinned.host_header == "hooks.example.com:8443"
    assert pinned.server_name == "hooks.example.com"
    six = pinned_request("http://hooks.example.com", "2606:2800:220:1::1")
    assert six.url == "http://[2606:2800:220:1::1]/"
    assert six.host_header == "hooks.example.com"


def test_failing_since_counts_only_failures_after_the_last_success() -> None:
    assert failing_since(None, []) is None
    assert failing_since(None, [30.0, 10.0]) == 10.0
    assert failing_since(20.0, [10.0, 30.0, 25.0]) == 25.0
    assert failing_since(40.0, [10.0, 30.0]) is None

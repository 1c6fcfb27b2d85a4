"""The decisions of one webhook delivery attempt, as pure functions.

The worker task (``workers/tasks/webhooks.py``) is a shell around these:

1. :func:`gate` — may attempt ``n`` of this delivery run at all? A delivery already delivered
   or failed is never sent again; a message for an attempt that already ran (a redelivered or
   duplicated Celery message) is dropped; a disabled endpoint fails the delivery.
2. :func:`pinned_request` — the URL to connect to, with the host replaced by an address
   ``core.netguard`` vetted, plus the ``Host`` header and TLS server name of the original, so
   DNS cannot be asked again (and rebound) between the check and the connection.
3. :func:`after_attempt` — from the HTTP status (``None``: network error or timeout): the
   delivery's new status, the wait before the next attempt, the endpoint's new health.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from core.errors import InvalidInput
from core.settings import WebhookSettings
from core.webhooks.backoff import EndpointHealth, RetryPolicy, classify, next_delay, record_attempt

DeliveryStatus = Literal["pending", "delivered", "failed"]
Gate = Literal["send", "drop", "fail"]


def retry_policy(settings: WebhookSettings) -> RetryPolicy:
    """The :class:`RetryPolicy` the settings describe."""
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        base_seconds=settings.retry_base_seconds,
        factor=settings.retry_factor,
        max_delay_seconds=settings.retry_max_delay_seconds,
        jitter=settings.retry_jitter,
        disable_after_seconds=settings.disable_after_seconds,
        disable_min_failures=settings.disable_min_failures,
    )


def gate(status: str, attempts_made: int, attempt: int, *, endpoint_enabled: bool) -> Gate:
    """Whether attempt number ``attempt`` (1-based) should send, be dropped, or fail the delivery.

    ``attempts_made`` is the count stored on the delivery before this attempt.
    """
    if attempt < 1:
        raise InvalidInput("webhook attempts are numbered from 1")
    if status != "pending" or attempts_made != attempt - 1:
        return "drop"
    if not endpoint_enabled:
        return "fail"
    return "send"


def resumed_attempt(
    status: str,
    attempts_made: int,
    attempt: int,
    lease_until: float | None,
    now: float,
    *,
    redelivered: bool,
) -> int:
    """The attempt a message for attempt ``attempt`` should run as.

    A worker killed mid-POST leaves its attempt claimed (``attempts_made == attempt``) but never
    recorded, and the broker redelivers the same message (``redelivered``). Once the claim's
    lease has run out the attempt is lost, so the message runs as attempt ``attempt + 1`` (the
    claim is conditional, so at most one message wins it). A lease still running means another
    process may be sending, and a message that is merely duplicated (not redelivered) is never
    promoted: both keep their number and :func:`gate` drops them.
    """
    lost = (
        redelivered
        and status == "pending"
        and attempts_made == attempt
        and lease_until is not None
        and lease_until <= now
    )
    return attempt + 1 if lost else attempt


@dataclass(frozen=True)
class AttemptOutcome:
    """What one attempt changes."""

    status: DeliveryStatus
    retry_in: float | None
    """Seconds until the next attempt; ``None`` when there is none."""
    health: EndpointHealth


def after_attempt(
    policy: RetryPolicy,
    attempt: int,
    http_status: int | None,
    health: EndpointHealth,
    *,
    now: float,
    rand: float,
) -> AttemptOutcome:
    """The delivery's fate after attempt ``attempt`` answered ``http_status`` at ``now``."""
    updated = record_attempt(policy, health, http_status, now=now)
    if classify(http_status) == "delivered":
        return AttemptOutcome("delivered", None, updated)
    if updated.disabled:
        return AttemptOutcome("failed", None, updated)
    delay = next_delay(policy, attempt, rand)
    if delay is None:
        return AttemptOutcome("failed", None, updated)
    return AttemptOutcome("pending", delay, updated)


@dataclass(frozen=True)
class PinnedRequest:
    """Where to connect for a webhook URL, keeping the original name for HTTP and TLS."""

    url: str
    """The original URL with its host replaced by the vetted address."""
    host_header: str
    """``Host`` header value: the original host (and port if one was given)."""
    server_name: str
    """TLS server name (SNI and certificate check) for https; the original host."""


def pinned_request(url: str, address: str) -> PinnedRequest:
    """Rewrite ``url`` to connect to ``address`` (one of netguard's vetted addresses)."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if not host:
        raise InvalidInput(
            f"webhook URL {url!r} has no host", code="unsafe_webhook_target_malformed_url"
        )
    literal = ipaddress.ip_address(address.split("%", 1)[0])
    shown = f"[{literal}]" if literal.version == 6 else str(literal)
    netloc = shown if parts.port is None else f"{shown}:{parts.port}"
    original = f"[{host}]" if ":" in host else host
    host_header = original if parts.port is None else f"{original}:{parts.port}"
    path = parts.path or "/"
    return PinnedRequest(
        urlunsplit((parts.scheme, netloc, path, parts.query, "")), host_header, host
    )


def failing_since(
    last_success_at: float | None, first_failure_candidates: list[float]
) -> float | None:
    """When an endpoint's current run of failures began (Unix seconds), or ``None``.

    ``first_failure_candidates`` are the creation times of deliveries that have failed at least
    once; only those after the last success count. A delivery's first attempt happens right
    after it is created, so its creation time stands for its first failure.
    """
    after = [
        moment
        for moment in first_failure_candidates
        if last_success_at is None or moment >= last_success_at
    ]
    return min(after) if after else None

"""``roomcast.webhooks.deliver``: one attempt at POSTing one event to one endpoint.

The shell around :mod:`core.webhooks.delivery`:

1. claim attempt ``n`` of the delivery (a conditional update: only a pending delivery whose
   stored attempt count is ``n - 1`` is claimed, so a duplicated or redelivered message, or one
   for a delivery already delivered, sends nothing; a message the broker *redelivered* after
   its worker died runs as attempt ``n + 1`` once attempt ``n``'s lease has run out);
2. vet the endpoint's URL with :mod:`core.netguard` (allow-list:
   ``ROOMCAST_WEBHOOKS__ALLOW_PRIVATE_TARGETS``) and connect to the vetted address only;
3. POST the stored payload with fresh Standard Webhooks signature headers;
4. record the answer in the delivery log and the endpoint's health, then schedule attempt
   ``n + 1`` with a Celery countdown from the backoff policy, or stop.

A refused target fails the delivery at once (retrying cannot make a private address public) and
counts as a failure of the endpoint.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import httpx
import sqlalchemy as sa
from celery import Task, shared_task
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core import jobs
from core.adapters.db.models import WebhookDelivery, WebhookEndpoint
from core.adapters.dns import resolve_host
from core.adapters.webhook_outbox import enqueue_deliveries, stalled_deliveries
from core.errors import UnsafeWebhookTarget
from core.netguard import Resolver, require_webhook_target
from core.settings import WebhookSettings
from core.webhooks.backoff import EndpointHealth
from core.webhooks.delivery import (
    after_attempt,
    failing_since,
    gate,
    pinned_request,
    resumed_attempt,
    retry_policy,
)
from core.webhooks.events import encode_body
from core.webhooks.signing import signature_headers
from workers.context import WorkerContext, worker_context

log = logging.getLogger(__name__)

USER_AGENT: Final = "Roomcast-Webhooks/0.1"
#: How long past its due time a pending delivery counts as lost, for the sweep.
SWEEP_GRACE: Final = timedelta(minutes=10)

Schedule = Callable[[str, int, float], None]
"""``schedule(delivery_id, attempt, countdown_seconds)``."""


@dataclass(frozen=True)
class AttemptReport:
    """What :func:`run_attempt` did (for logs and tests)."""

    action: str
    """``sent``, ``dropped``, ``failed`` (endpoint disabled or target refused) or ``missing``."""
    http_status: int | None = None
    status: str | None = None
    retry_in: float | None = None


def run_attempt(
    context: WorkerContext,
    delivery_id: str,
    attempt: int,
    *,
    schedule: Schedule,
    resolve: Resolver = resolve_host,
    clock: Callable[[], float] = time.time,
    rand: Callable[[], float] = random.random,
    redelivered: bool = False,
) -> AttemptReport:
    """Attempt ``attempt`` of delivery ``delivery_id`` (see the module doc).

    ``redelivered``: the broker gave this message again after its worker died; an attempt that
    worker claimed and whose lease has expired then counts as lost (see
    :func:`core.webhooks.delivery.resumed_attempt`).
    """
    settings = context.settings.webhooks
    with context.sessions() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        endpoint = None if delivery is None else session.get(WebhookEndpoint, delivery.endpoint_id)
        if delivery is None or endpoint is None:
            return AttemptReport("missing")  # deleted with its endpoint: nothing is owed
        if redelivered:
            lease = delivery.next_attempt_at
            resumed = resumed_attempt(
                delivery.status, delivery.attempts, attempt,
                None if lease is None else lease.timestamp(), clock(), redelivered=True,
            )  # fmt: skip
            if resumed != attempt:
                log.warning("webhook %s: attempt %d was lost with its worker", delivery_id, attempt)
                attempt = resumed
        verdict = gate(
            delivery.status, delivery.attempts, attempt, endpoint_enabled=endpoint.enabled
        )
        if verdict == "drop":
            return AttemptReport("dropped", status=delivery.status)
        if verdict == "fail":
            delivery.status = "failed"
            delivery.next_attempt_at = None
            session.commit()
            return AttemptReport("failed", status="failed")
        # The lease: if this process dies mid-attempt, the sweep finds the delivery overdue.
        lease = datetime.fromtimestamp(clock() + 2 * settings.timeout_seconds, UTC)
        claim = session.execute(
            sa.update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == "pending",
                WebhookDelivery.attempts == attempt - 1,
            )
            .values(attempts=attempt, next_attempt_at=lease)
        )
        claimed = cast(CursorResult[Any], claim).rowcount  # an UPDATE's result has a cursor
        session.commit()
        if claimed != 1:
            return AttemptReport("dropped")
        url, secret, endpoint_id = endpoint.url, endpoint.secret, endpoint.id
        body = encode_body(delivery.payload)
        msg_id = delivery.event_id
    try:
        addresses = require_webhook_target(
            url,
            resolve=resolve,
            allow=settings.allow_private_targets,
            require_https=settings.require_https,
        )
    except UnsafeWebhookTarget as exc:
        log.warning("webhook %s refused: %s", delivery_id, exc.message)
        _record(context, delivery_id, endpoint_id, attempt, None, clock(), rand(), final=True)
        return AttemptReport("failed", status="failed")
    http_status = post(url, addresses, secret, msg_id, body, settings, now=int(clock()))
    outcome_status, retry_in = _record(
        context, delivery_id, endpoint_id, attempt, http_status, clock(), rand(), final=False
    )
    if retry_in is not None:
        schedule(delivery_id, attempt + 1, retry_in)
    return AttemptReport("sent", http_status, outcome_status, retry_in)


def post(
    url: str,
    addresses: tuple[str, ...],
    secret: str,
    msg_id: str,
    body: bytes,
    settings: WebhookSettings,
    *,
    now: int,
) -> int | None:
    """POST ``body`` to ``url`` through the first vetted address that connects.

    Returns the HTTP status, or ``None`` for a network error or timeout. Redirects are not
    followed (the next hop was never vetted); the answer's body is not read.
    """
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signature_headers([secret], msg_id, now, body),
    }
    # trust_env=False: no proxy from the environment may reroute a vetted connection.
    with httpx.Client(
        timeout=settings.timeout_seconds, follow_redirects=False, trust_env=False
    ) as client:
        for address in addresses:
            pinned = pinned_request(url, address)
            extensions = {"sni_hostname": pinned.server_name} if url.startswith("https") else {}
            try:
                with client.stream(
                    "POST",
                    pinned.url,
                    content=body,
                    headers={**headers, "host": pinned.host_header},
                    extensions=extensions,
                ) as response:
                    return response.status_code
            except httpx.ConnectError:
                continue  # another address of the same name may answer
            except httpx.HTTPError as exc:
                log.info("webhook %s to %s failed: %s", msg_id, url, exc)
                return None
    return None


def _record(
    context: WorkerContext,
    delivery_id: str,
    endpoint_id: str,
    attempt: int,
    http_status: int | None,
    now: float,
    rand: float,
    *,
    final: bool,
) -> tuple[str, float | None]:
    """Store the attempt's answer and the endpoint's health; return (status, retry_in)."""
    policy = retry_policy(context.settings.webhooks)
    with context.sessions() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        delivery = session.get(WebhookDelivery, delivery_id)
        if endpoint is None or delivery is None:
            return "failed", None  # deleted while we were sending
        health = EndpointHealth(
            consecutive_failures=endpoint.failure_count,
            failing_since=_failing_since(session, endpoint_id),
            disabled=not endpoint.enabled,
        )
        outcome = after_attempt(policy, attempt, http_status, health, now=now, rand=rand)
        status, retry_in = outcome.status, outcome.retry_in
        if final and status == "pending":
            status, retry_in = "failed", None
        delivery.status = status
        delivery.last_status_code = http_status
        delivery.next_attempt_at = (
            None if retry_in is None else datetime.fromtimestamp(now + retry_in, UTC)
        )
        endpoint.failure_count = outcome.health.consecutive_failures
        if outcome.health.disabled and endpoint.enabled:
            log.warning("webhook endpoint %s disabled after repeated failures", endpoint_id)
            endpoint.enabled = False
        session.commit()
    return status, retry_in


def _failing_since(session: Session, endpoint_id: str) -> float | None:
    last_success = session.scalar(
        sa.select(sa.func.max(WebhookDelivery.updated_at)).where(
            WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "delivered"
        )
    )
    failed = session.scalars(
        sa.select(WebhookDelivery.created_at).where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status != "delivered",
            WebhookDelivery.attempts > 0,
        )
    ).all()
    return failing_since(
        None if last_success is None else last_success.timestamp(),
        [moment.timestamp() for moment in failed],
    )


@shared_task(bind=True, name=jobs.WEBHOOK_DELIVER, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
def deliver(self: Task, delivery_id: str, attempt: int = 1) -> None:
    """Attempt ``attempt`` of one delivery; schedules the next attempt itself when needed."""

    def schedule(target: str, next_attempt: int, countdown: float) -> None:
        self.app.send_task(
            jobs.WEBHOOK_DELIVER,
            args=[target, next_attempt],
            countdown=countdown,
            queue=jobs.DEFAULT_QUEUE,
            ignore_result=True,
        )

    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    try:
        report = run_attempt(
            worker_context(self.app),
            delivery_id,
            attempt,
            schedule=schedule,
            redelivered=redelivered,
        )
    except OperationalError as exc:
        # The database is unreachable (restarting): try this attempt again shortly. The row
        # stays pending, so the periodic sweep is the backstop if these retries run out.
        countdown = min(60, 2 ** (self.request.retries + 1))
        raise self.retry(exc=exc, countdown=countdown, max_retries=8) from exc
    log.info("webhook delivery %s attempt %d: %s", delivery_id, attempt, report)


@shared_task(bind=True, name=jobs.WEBHOOK_SWEEP, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
def sweep(self: Task) -> int:
    """Re-send pending deliveries that were never enqueued or whose attempt was lost."""
    context = worker_context(self.app)
    now = datetime.now(UTC)
    with context.sessions() as session:
        stalled = stalled_deliveries(session, now=now, grace=SWEEP_GRACE)
    sent = 0
    for delivery_id, attempt in stalled:
        if attempt == 1:
            sent += enqueue_deliveries(context.queue, [delivery_id])
        else:
            # The lost attempt counted; the next one may run now.
            self.app.send_task(
                jobs.WEBHOOK_DELIVER, args=[delivery_id, attempt], queue=jobs.DEFAULT_QUEUE
            )
            sent += 1
    return sent

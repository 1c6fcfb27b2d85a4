"""The webhook outbox: an event becomes one pending delivery row per subscribed endpoint.

Call :func:`record_event` inside the transaction that makes the change the event reports (the
outbox pattern: the event is stored if and only if the change is), then, after the commit,
:func:`enqueue_deliveries` with the ids it returned. Recording is idempotent on
``(endpoint_id, event_id)`` (an ``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and
PostgreSQL alike), and event ids are deterministic (``core.webhooks.events``), so a retried task
that records the same event again creates nothing and enqueues nothing.

A delivery whose enqueue failed (Redis down) stays ``pending`` with no ``next_attempt_at``;
:func:`stalled_deliveries` finds those, and attempts whose worker died, for a sweep to re-send.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from core import jobs
from core.adapters.db.models import WebhookDelivery, WebhookEndpoint
from core.adapters.db.types import new_id, utcnow
from core.errors import DependencyUnavailable
from core.ports import JobQueue
from core.webhooks.events import WebhookEvent, subscribed

log = logging.getLogger(__name__)


def record_event(session: Session, owner_id: str, event: WebhookEvent) -> list[str]:
    """Add a pending delivery of ``event`` to each enabled endpoint of ``owner_id`` that
    subscribed to its type; return the ids of the deliveries created now (not committed)."""
    endpoints = session.scalars(
        sa.select(WebhookEndpoint).where(
            WebhookEndpoint.owner_id == owner_id, WebhookEndpoint.enabled.is_(True)
        )
    ).all()
    payload = event.payload()
    created: list[str] = []
    for endpoint in endpoints:
        if not subscribed(endpoint.events, event.type):
            continue
        now = utcnow()
        values = {
            "id": new_id(),
            "created_at": now,
            "updated_at": now,
            "endpoint_id": endpoint.id,
            "event_type": event.type,
            "event_id": event.id,
            "payload": payload,
            "status": "pending",
            "attempts": 0,
        }
        inserted = session.execute(
            _insert_ignoring_duplicates(session, values).returning(WebhookDelivery.id)
        ).scalar_one_or_none()
        if inserted is not None:
            created.append(inserted)
    return created


def _insert_ignoring_duplicates(session: Session, values: dict[str, object]) -> sa.Insert:
    dialect = session.get_bind().dialect.name
    keys = ["endpoint_id", "event_id"]
    if dialect == "postgresql":
        return (
            postgresql.insert(WebhookDelivery)
            .values(values)
            .on_conflict_do_nothing(index_elements=keys)
        )
    if dialect == "sqlite":
        return (
            sqlite.insert(WebhookDelivery)
            .values(values)
            .on_conflict_do_nothing(index_elements=keys)
        )
    raise NotImplementedError(f"webhook outbox: unsupported database {dialect!r}")


def enqueue_deliveries(queue: JobQueue, delivery_ids: Sequence[str]) -> int:
    """Send the first attempt of each delivery to the workers; return how many were sent.

    A broker outage is logged, not raised: the rows are stored, and a sweep sends them later.
    """
    sent = 0
    for delivery_id in delivery_ids:
        try:
            queue.enqueue(jobs.WEBHOOK_DELIVER, delivery_id, 1, queue=jobs.DEFAULT_QUEUE)
        except DependencyUnavailable as exc:
            log.warning("webhook delivery %s stored but not enqueued: %s", delivery_id, exc)
            continue
        sent += 1
    return sent


def emit(
    sessions: sessionmaker[Session], queue: JobQueue, owner_id: str, event: WebhookEvent
) -> list[str]:
    """Record ``event`` in its own transaction and enqueue its deliveries (for callers that
    have no transaction of their own to join, such as worker tasks after their work)."""
    with sessions() as session:
        created = record_event(session, owner_id, event)
        session.commit()
    enqueue_deliveries(queue, created)
    return created


def stalled_deliveries(
    session: Session, *, now: datetime, grace: timedelta, limit: int = 100
) -> list[tuple[str, int]]:
    """``(delivery_id, next attempt number)`` of pending deliveries nobody is working on:
    never enqueued, or whose attempt is ``grace`` overdue (its message or worker was lost)."""
    overdue = now - grace
    rows = session.execute(
        sa.select(WebhookDelivery.id, WebhookDelivery.attempts)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == "pending",
            sa.or_(
                sa.and_(
                    WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.created_at < overdue
                ),
                WebhookDelivery.next_attempt_at < overdue,
            ),
        )
        .order_by(WebhookDelivery.created_at)
        .limit(limit)
    ).all()
    return [(delivery_id, attempts + 1) for delivery_id, attempts in rows]

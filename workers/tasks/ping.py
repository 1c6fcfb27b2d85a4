"""``roomcast.ping``: the readiness probe's round trip through broker, worker and backend."""

from __future__ import annotations

from celery import shared_task

from core import jobs


@shared_task(name=jobs.PING, acks_late=False, ignore_result=False)  # type: ignore[untyped-decorator]
def ping() -> str:
    """Answer ``core.jobs.PONG``. Not acks_late: a lost ping is simply never answered."""
    return jobs.PONG

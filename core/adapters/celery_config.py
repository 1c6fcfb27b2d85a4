"""Celery configuration shared by the worker and by every sender.

One function builds the configuration so the worker and the API agree on serializers, queues
and the broker's visibility timeout. Only JSON crosses the broker: tasks take IDs, never
pickled objects.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.entity import Queue

from core import jobs
from core.settings import Settings

#: Connect quickly or fail: readiness probes and senders must not hang on a dead Redis.
CONNECT_TIMEOUT_SECONDS = 2.0
#: A socket read stuck this long means the connection is dead.
SOCKET_TIMEOUT_SECONDS = 10.0


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration for ``settings`` (broker and results on the same Redis)."""
    url = settings.redis_url
    visibility = settings.redis.visibility_timeout_seconds or jobs.visibility_timeout(
        jobs.DEFAULT_LIMITS, jobs.MEDIA_LIMITS
    )
    restore: dict[str, int] = {}
    if settings.redis.visibility_timeout_seconds:
        # A short timeout is only useful if abandoned messages are looked for as often.
        restore = {
            "unacked_restore_interval": max(1, visibility // 4),
            "unacked_restore_throttle": 1,
        }
    return {
        "broker_url": url,
        "result_backend": url,
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "timezone": "UTC",
        "enable_utc": True,
        "task_queues": tuple(
            Queue(name, routing_key=name)  # type: ignore[no-untyped-call]
            for name in jobs.QUEUES
        ),
        "task_default_queue": jobs.DEFAULT_QUEUE,
        # Periodic work, run by the one worker started with --beat.
        "beat_schedule": {
            "webhook-sweep": {
                "task": jobs.WEBHOOK_SWEEP,
                "schedule": jobs.SWEEP_INTERVAL_SECONDS,
                "options": {"queue": jobs.DEFAULT_QUEUE},
            }
        },
        "task_default_routing_key": jobs.DEFAULT_QUEUE,
        # A queue name we do not declare is a bug at the sender, not a new queue.
        "task_create_missing_queues": False,
        # Media tasks are idempotent (deterministic output keys): acknowledge after the work so a
        # crashed worker's task is delivered again rather than lost.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # False: on a broker connection loss Celery would terminate the running task and then
        # acknowledge its message as a failure once reconnected, losing the job (seen in
        # tests/faults/test_redis_restart.py). Left running, the task finishes; its ack fails,
        # so the broker redelivers it after the visibility timeout, and the idempotent task
        # finds its work done.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_soft_time_limit": jobs.DEFAULT_LIMITS.soft_seconds,
        "task_time_limit": jobs.DEFAULT_LIMITS.hard_seconds,
        "broker_transport_options": {
            "visibility_timeout": visibility,
            "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "socket_timeout": SOCKET_TIMEOUT_SECONDS,
            **restore,
        },
        "result_backend_transport_options": {
            "visibility_timeout": visibility,
            # Celery's default retries the result store 20 times a second apart: a dead Redis
            # would hold every sender for 20 s. Fail fast; the caller reports it.
            "retry_policy": {
                "max_retries": 2,
                "interval_start": 0,
                "interval_step": 0.2,
                "interval_max": 0.5,
            },
        },
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": CONNECT_TIMEOUT_SECONDS,
        "redis_socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "redis_socket_timeout": SOCKET_TIMEOUT_SECONDS,
        "result_expires": 24 * 3600,
        # Tasks record outcomes in the database; only tasks that opt in (ping) keep results.
        "task_ignore_result": True,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
    }


def make_celery(settings: Settings, name: str) -> Celery:
    """A configured Celery app named ``name``; workers add their tasks, senders use it as is."""
    app = Celery(name, set_as_current=False)
    app.conf.update(celery_config(settings))
    return app

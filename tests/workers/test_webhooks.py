"""Webhook delivery: a real worker process over a real redis-server posts to a receiver on
127.0.0.1 that fails the first attempts, verifying signatures independently; plus the attempt
logic in process (refused targets, endpoint disabling, duplicate messages)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from core.adapters.celery_queue import CeleryJobQueue
from core.adapters.db import migrate
from core.adapters.db.engine import make_engine, make_session_factory
from core.adapters.db.models import User, WebhookDelivery, WebhookEndpoint
from core.adapters.storage_factory import build_storage
from core.adapters.webhook_outbox import emit, record_event
from core.settings import Settings
from core.webhooks import events
from core.webhooks.signing import generate_secret
from tests.recorder.fake_jobs import RecordingJobQueue
from tests.support.celery_worker import start_worker, stop_worker
from tests.workers.webhook_receiver import running_receiver
from workers.context import WorkerContext
from workers.tasks.webhooks import run_attempt

#: Short backoff for tests: 0.3 s, then 0.45 s, ... capped at 1 s; no jitter.
FAST_RETRIES = {
    "ROOMCAST_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "127.0.0.1",
    "ROOMCAST_WEBHOOKS__RETRY_BASE_SECONDS": "0.3",
    "ROOMCAST_WEBHOOKS__RETRY_FACTOR": "1.5",
    "ROOMCAST_WEBHOOKS__RETRY_MAX_DELAY_SECONDS": "1",
    "ROOMCAST_WEBHOOKS__RETRY_JITTER": "0",
    "ROOMCAST_WEBHOOKS__MAX_ATTEMPTS": "6",
}
AT = datetime(2030, 1, 1, 18, 0, tzinfo=UTC)


def _with_webhooks(settings: Settings, **fields: object) -> Settings:
    hooks = settings.webhooks.model_copy(update=fields)
    return settings.model_copy(update={"webhooks": hooks})


@pytest.fixture
def db_settings(settings: Settings) -> Iterator[Settings]:
    migrate.upgrade(settings.database_url)
    yield settings


@pytest.fixture
def sessions(db_settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_settings)
    yield make_session_factory(engine)
    engine.dispose()


def _user(sessions: sessionmaker[Session], email: str = "creator@example.com") -> str:
    with sessions() as session:
        user = User(email=email, display_name="Creator", password_hash="x")
        session.add(user)
        session.commit()
        return user.id


def _endpoint(
    sessions: sessionmaker[Session], owner: str, url: str, types: tuple[str, ...] = ("clip.ready",)
) -> tuple[str, str]:
    secret = generate_secret()
    with sessions() as session:
        endpoint = WebhookEndpoint(owner_id=owner, url=url, secret=secret, events=list(types))
        session.add(endpoint)
        session.commit()
        return endpoint.id, secret


def _event(clip_id: str = "clip-1") -> events.WebhookEvent:
    return events.clip_ready(
        clip_id=clip_id,
        replay_id="replay-1",
        start_seconds=3.0,
        duration_seconds=30.0,
        audio_url="http://127.0.0.1/a.mp3",
        page_url="http://127.0.0.1/clips/x",
        at=AT,
    )


def _deliveries(sessions: sessionmaker[Session], endpoint_id: str) -> list[WebhookDelivery]:
    with sessions() as session:
        return list(
            session.scalars(
                sa.select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
            )
        )


def _wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {within} s")
        time.sleep(0.1)


# -- through a real worker ---------------------------------------------------------------------


@pytest.fixture
def worker_settings(db_settings: Settings, redis_url: str) -> Settings:
    return db_settings.model_copy(
        update={"redis": db_settings.redis.model_copy(update={"url": redis_url})}
    )


@pytest.fixture
def worker(worker_settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    process = start_worker(
        worker_settings.redis_url, Path(worker_settings.var_dir), extra_env=FAST_RETRIES
    )
    yield process
    stop_worker(process)


def test_event_is_delivered_exactly_once_after_retries(
    worker_settings: Settings,
    sessions: sessionmaker[Session],
    worker: subprocess.Popen[bytes],
) -> None:
    owner = _user(sessions)
    queue = CeleryJobQueue(worker_settings)
    with running_receiver(fail_first=2) as receiver:
        endpoint_id, receiver.secret = _endpoint(sessions, owner, receiver.url)
        refused_id, _ = _endpoint(sessions, owner, f"http://localhost:{receiver.port}/hooks")
        six_id, _ = _endpoint(sessions, owner, f"http://[::1]:{receiver.port}/hooks")
        event = _event()
        created = emit(sessions, queue, owner, event)
        assert len(created) == 3

        def settled() -> bool:
            rows = [d for e in (endpoint_id, refused_id, six_id) for d in _deliveries(sessions, e)]
            return all(row.status != "pending" for row in rows)

        _wait_for(settled, 60, "every delivery settling")
        # Recording the same event again (a retried task) creates and sends nothing.
        assert emit(sessions, queue, owner, event) == []
        time.sleep(1.5)  # longer than any retry wait: a duplicate would have arrived
        requests = list(receiver.requests)
    queue.close()
    assert worker.poll() is None

    [delivery] = _deliveries(sessions, endpoint_id)
    assert delivery.status == "delivered"
    assert delivery.attempts == 3 and delivery.last_status_code == 204
    assert delivery.event_id == event.id and delivery.next_attempt_at is None
    assert [r.answered for r in requests] == [500, 500, 204]
    assert all(r.verified for r in requests), "a signature failed independent verification"
    assert {r.headers["webhook-id"] for r in requests} == {event.id}
    assert {r.body for r in requests} == {events.encode_body(event.payload())}
    assert all(r.headers["content-type"] == "application/json" for r in requests)
    assert requests[0].headers["host"] == f"127.0.0.1:{receiver.port}"

    # Loopback targets outside the allow-list are refused by the worker and never contacted.
    for refused in (refused_id, six_id):
        [row] = _deliveries(sessions, refused)
        assert row.status == "failed" and row.attempts == 1 and row.last_status_code is None
    with sessions() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None and endpoint.failure_count == 0 and endpoint.enabled


# -- the attempt logic in process --------------------------------------------------------------


@pytest.fixture
def context(db_settings: Settings, sessions: sessionmaker[Session]) -> Iterator[WorkerContext]:
    settings = _with_webhooks(
        db_settings,
        allow_private_targets=["127.0.0.1"],
        retry_base_seconds=1.0,
        retry_factor=2.0,
        retry_jitter=0.0,
        max_attempts=6,
        disable_after_seconds=60.0,
        disable_min_failures=3,
    )
    engine = make_engine(settings)
    yield WorkerContext(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        storage=build_storage(settings),
        queue=RecordingJobQueue(),
        pid=0,
    )
    engine.dispose()


def _record(context: WorkerContext, owner: str, event: events.WebhookEvent) -> str:
    with context.sessions() as session:
        [delivery_id] = record_event(session, owner, event)
        session.commit()
    return delivery_id


def test_retries_follow_the_policy_and_a_failing_endpoint_is_disabled(
    context: WorkerContext, sessions: sessionmaker[Session]
) -> None:
    owner = _user(sessions)
    scheduled: list[tuple[str, int, float]] = []
    # Each clock reading is 20 s after the last (lease, signature, record: 3 per attempt), so
    # by the third attempt the endpoint has failed for over disable_after_seconds (60 s).
    start = time.time()
    clock = iter([start + 20.0 * n for n in range(100)])
    with running_receiver(fail_first=100) as receiver:
        endpoint_id, receiver.secret = _endpoint(sessions, owner, receiver.url)
        delivery_id = _record(context, owner, _event())

        def attempt(n: int) -> str:
            report = run_attempt(
                context,
                delivery_id,
                n,
                schedule=lambda *args: scheduled.append(args),
                clock=lambda: next(clock),
                rand=lambda: 0.5,
            )
            return f"{report.action}:{report.status}"

        assert attempt(1) == "sent:pending"
        assert attempt(1) == "dropped:pending"  # a duplicated message sends nothing
        assert attempt(2) == "sent:pending"
        assert attempt(3) == "sent:failed"  # 3 failures, failing long enough: disabled
        assert receiver.count() == 3
    assert [(n, delay) for _, n, delay in scheduled] == [(2, 1.0), (3, 2.0)]
    with sessions() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None and not endpoint.enabled and endpoint.failure_count == 3
    [row] = _deliveries(sessions, endpoint_id)
    assert (row.status, row.attempts, row.last_status_code) == ("failed", 3, 500)


def test_a_disabled_endpoint_fails_its_deliveries_without_sending(
    context: WorkerContext, sessions: sessionmaker[Session]
) -> None:
    owner = _user(sessions)
    with running_receiver() as receiver:
        endpoint_id, receiver.secret = _endpoint(sessions, owner, receiver.url)
        delivery_id = _record(context, owner, _event())
        with sessions() as session:
            endpoint = session.get(WebhookEndpoint, endpoint_id)
            assert endpoint is not None
            endpoint.enabled = False
            session.commit()
        report = run_attempt(context, delivery_id, 1, schedule=lambda *a: None)
        assert report.action == "failed" and receiver.count() == 0


def test_private_target_is_refused_without_allow_listing(
    context: WorkerContext, sessions: sessionmaker[Session]
) -> None:
    strict = WorkerContext(
        settings=_with_webhooks(context.settings, allow_private_targets=[]),
        engine=context.engine,
        sessions=context.sessions,
        storage=context.storage,
        queue=context.queue,
        pid=0,
    )
    owner = _user(sessions)
    with running_receiver() as receiver:
        endpoint_id, _ = _endpoint(sessions, owner, receiver.url)
        delivery_id = _record(strict, owner, _event())
        report = run_attempt(strict, delivery_id, 1, schedule=lambda *a: None)
        assert report.action == "failed" and receiver.count() == 0
    [row] = _deliveries(sessions, endpoint_id)
    assert (row.status, row.attempts) == ("failed", 1)


def test_delivered_event_is_never_sent_again(
    context: WorkerContext, sessions: sessionmaker[Session]
) -> None:
    owner = _user(sessions)
    with running_receiver() as receiver:
        _, receiver.secret = _endpoint(sessions, owner, receiver.url)
        delivery_id = _record(context, owner, _event())
        first = run_attempt(context, delivery_id, 1, schedule=lambda *a: None)
        assert (first.action, first.status, first.http_status) == ("sent", "delivered", 204)
        for attempt in (1, 2):
            again = run_attempt(context, delivery_id, attempt, schedule=lambda *a: None)
            assert again.action == "dropped"
        assert receiver.count() == 1 and receiver.requests[0].verified

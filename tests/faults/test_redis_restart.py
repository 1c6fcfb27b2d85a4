"""Redis (append-only, as Roomcast runs it) restarted while clip renders are queued and one is
running: after it returns every job runs to completion, none is lost, and none leaves its side
effects twice (one ``ready`` clip, one pair of objects, one ``clip.ready`` delivery and one
webhook-id received per clip)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from core import clips, jobs
from core.adapters.celery_queue import CeleryJobQueue
from core.adapters.db import migrate
from core.adapters.db.engine import make_engine, make_session_factory
from core.adapters.db.models import Clip, User, WebhookDelivery, WebhookEndpoint
from core.adapters.redis_process import RedisProcess
from core.adapters.storage_factory import build_storage
from core.adapters.webhook_outbox import stalled_deliveries
from core.settings import Settings
from core.storage import Storage
from core.webhooks.signing import generate_secret
from tests.api.replay_seed import seed_replay
from tests.faults.support import fast_redelivery_env, stored_keys, wait_until, with_redis
from tests.faults.test_worker_crash import REPLAY_SECONDS, long_mp3
from tests.support.celery_worker import start_worker, stop_worker
from tests.workers.webhook_receiver import running_receiver
from workers.tasks.webhooks import SWEEP_GRACE

CLIPS = 6
WEBHOOK_ENV = {"ROOMCAST_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "127.0.0.1"}


@pytest.fixture
def fault_settings(settings: Settings, redis_url: str) -> Settings:
    migrate.upgrade(settings.database_url)
    return with_redis(settings, redis_url)


@pytest.fixture
def sessions(fault_settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(fault_settings)
    yield make_session_factory(engine)
    engine.dispose()


def _statuses(sessions: sessionmaker[Session]) -> dict[str, str]:
    with sessions() as session:
        return {
            clip_id: status for clip_id, status in session.execute(sa.select(Clip.id, Clip.status))
        }


def _deliveries(sessions: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    with sessions() as session:
        rows = session.execute(
            sa.select(WebhookDelivery.event_id, WebhookDelivery.status, WebhookDelivery.event_type)
        )
        return sorted(tuple(row) for row in rows)  # type: ignore[misc]


def _sweep_as_if_later(settings: Settings, sessions: sessionmaker[Session]) -> int:
    """What the periodic ``roomcast.webhooks.sweep`` does once its grace has passed: send the
    deliveries whose enqueue failed while Redis was down (their rows were stored)."""
    with sessions() as session:
        stalled = stalled_deliveries(
            session, now=datetime.now(UTC) + SWEEP_GRACE + timedelta(seconds=1), grace=SWEEP_GRACE
        )
    queue = CeleryJobQueue(settings)
    try:
        for delivery_id, attempt in stalled:
            queue.enqueue(jobs.WEBHOOK_DELIVER, delivery_id, attempt)
    finally:
        queue.close()
    return len(stalled)


def _setup(
    settings: Settings, sessions: sessionmaker[Session], storage: Storage, url: str, mp3: bytes
) -> tuple[str, list[str], str]:
    with sessions() as session:
        host = User(email="host@example.com", display_name="Hana", password_hash="x")
        session.add(host)
        session.flush()
        secret = generate_secret()
        session.add(
            WebhookEndpoint(owner_id=host.id, url=url, secret=secret, events=["clip.ready"])
        )
        session.commit()
        host_id = host.id
    seeded = seed_replay(settings, storage, host_id, mp3=mp3, duration=REPLAY_SECONDS)
    with sessions() as session:
        made = [
            Clip(replay_id=seeded.replay_id, user_id=host_id, start_seconds=10.0 * n,
                 duration_seconds=40.0)
            for n in range(CLIPS)
        ]  # fmt: skip
        session.add_all(made)
        session.commit()
        return host_id, [clip.id for clip in made], secret


def test_redis_restart_with_jobs_queued_and_running_loses_none_and_repeats_none(
    fault_settings: Settings,
    sessions: sessionmaker[Session],
    redis_server: RedisProcess,
    tmp_path: Path,
) -> None:
    storage = build_storage(fault_settings)
    scratch = tmp_path / "worker-tmp"
    scratch.mkdir()
    worker = None
    with running_receiver() as receiver:
        _, clip_ids, receiver.secret = _setup(
            fault_settings, sessions, storage, receiver.url, long_mp3(tmp_path / "r.mp3")
        )
        keys_before = stored_keys(storage)
        worker = start_worker(
            fault_settings.redis_url, Path(fault_settings.var_dir),
            fast_redelivery_env(**WEBHOOK_ENV, TMPDIR=str(scratch)),
        )  # fmt: skip
        try:
            queue = CeleryJobQueue(fault_settings)
            try:
                for clip_id in clip_ids:
                    queue.enqueue(jobs.CLIP_RENDER, clip_id)
            finally:
                queue.close()
            wait_until(lambda: list(scratch.glob("roomcast-clip-*")), 60,
                       "the first render to start", step=0.002)  # fmt: skip
            redis_server.stop()  # SIGTERM: Redis writes its append-only file and exits
            stopped = time.monotonic()
            during = _statuses(sessions)
            time.sleep(3.0)
            redis_server.start()
            restarted = time.monotonic()
            wait_until(
                lambda: all(s == "ready" for s in _statuses(sessions).values()),
                90, "every clip after the restart",
            )  # fmt: skip
            all_ready = time.monotonic()
            try:  # deliveries enqueued while Redis was up go out on their own
                wait_until(lambda: all(s == "delivered" for _, s, _ in _deliveries(sessions)),
                           5, "deliveries")  # fmt: skip
                swept = 0
            except TimeoutError:  # the rest were stored while Redis was down: the sweep's job
                swept = _sweep_as_if_later(fault_settings, sessions)
            wait_until(
                lambda: all(s == "delivered" for _, s, _ in _deliveries(sessions)),
                60, "every clip.ready delivery",
            )  # fmt: skip
            time.sleep(1.0)
            received = list(receiver.requests)
        finally:
            redis_server.start()
            stop_worker(worker)

    assert list(during.values()).count("pending") >= CLIPS - 1  # most were queued, not done
    statuses = _statuses(sessions)
    assert sorted(statuses) == sorted(clip_ids) and set(statuses.values()) == {"ready"}
    expected = {key(c) for c in clip_ids for key in (clips.audio_key, clips.waveform_key)}
    assert stored_keys(storage) - keys_before == expected
    deliveries = _deliveries(sessions)
    assert len(deliveries) == CLIPS and len({event for event, _, _ in deliveries}) == CLIPS
    assert {(s, t) for _, s, t in deliveries} == {("delivered", "clip.ready")}
    ids = [r.headers["webhook-id"] for r in received]
    assert sorted(set(ids)) == sorted(event for event, _, _ in deliveries)
    assert all(r.verified for r in received)
    print(
        f"redis restart: down {restarted - stopped:.1f} s; all {CLIPS} clips ready"
        f" {all_ready - restarted:.1f} s after it returned; {len(received)} webhook requests"
        f" for {CLIPS} events ({swept} swept); {CLIPS - list(during.values()).count('pending')} done before"
        " the stop"
    )

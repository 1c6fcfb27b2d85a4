"""PostgreSQL restarted while the API serves and a worker writes. During the outage the API
answers 503 with Retry-After (never 500) on routes that need the database, and a clip render
that meets the dead database is retried with backoff; after it returns the clip lands, once,
and nothing stored before the restart is missing.

(The live node keeps rooms in memory and writes no room status to the database, so a live room
does not depend on it; see docs/reliability.md.)
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import ApiDeps, create_app
from core import clips, jobs
from core.adapters.celery_queue import CeleryJobQueue
from core.adapters.db import migrate
from core.adapters.db.engine import make_engine, make_session_factory
from core.adapters.db.models import Clip, User
from core.adapters.storage_factory import build_storage
from core.settings import Settings
from tests.api.accounts import new_user
from tests.api.replay_seed import seed_replay, user_id
from tests.faults.postgres_process import PostgresProcess
from tests.faults.support import wait_until, with_redis
from tests.faults.test_worker_crash import long_mp3
from tests.support.celery_worker import start_worker, stop_worker

DOWN_SECONDS = 8.0


@pytest.fixture
def postgres() -> Iterator[PostgresProcess]:
    server = PostgresProcess()
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def pg_settings(settings: Settings, redis_url: str, postgres: PostgresProcess) -> Settings:
    database = settings.database.model_copy(update={"url": postgres.url})
    pg = with_redis(settings.model_copy(update={"database": database}), redis_url)
    migrate.upgrade(pg.database_url)
    return pg


@pytest.fixture
def worker(pg_settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    process = start_worker(pg_settings.redis_url, Path(pg_settings.var_dir),
                           {"ROOMCAST_DATABASE__URL": pg_settings.database_url})  # fmt: skip
    yield process
    stop_worker(process)


def test_database_restart_api_503_and_worker_writes_retried(
    pg_settings: Settings,
    postgres: PostgresProcess,
    worker: subprocess.Popen[bytes],
    tmp_path: Path,
) -> None:
    settings = pg_settings
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    storage = build_storage(settings)
    queue = CeleryJobQueue(settings)
    deps = ApiDeps(engine=engine, storage=storage, queue=queue, redis_url=settings.redis_url)
    with TestClient(create_app(settings, deps=deps), base_url="http://127.0.0.1",
                    follow_redirects=False) as client:  # fmt: skip
        host = new_user(client, "host@example.com", "Hana")
        seeded = seed_replay(settings, storage, user_id(client, host),
                             mp3=long_mp3(tmp_path / "r.mp3", 20.0), duration=20.0)  # fmt: skip
        detail = f"/v1/replays/{seeded.replay_id}"
        assert client.get(detail, headers=host).status_code == 200
        with sessions() as session:
            clip = Clip(replay_id=seeded.replay_id, user_id=user_id(client, host),
                        start_seconds=2.0, duration_seconds=5.0)  # fmt: skip
            session.add(clip)
            session.commit()
            clip_id = clip.id

        postgres.stop()
        stopped = time.monotonic()
        queue.enqueue(jobs.CLIP_RENDER, clip_id)  # the worker meets the dead database
        statuses: dict[str, set[int]] = {
            "detail": set(),
            "me": set(),
            "clip": set(),
            "ready": set(),
        }
        retry_after: set[str] = set()
        while time.monotonic() - stopped < DOWN_SECONDS:
            answers = {
                "detail": client.get(detail, headers=host),
                "me": client.get("/v1/me", headers=host),
                "clip": client.post(f"{detail}/clips", json={"start_seconds": 1.0}, headers=host),
                "ready": client.get("/readyz"),
            }
            for name, answer in answers.items():
                statuses[name].add(answer.status_code)
                if answer.status_code == 503:
                    retry_after.add(answer.headers.get("retry-after", ""))
            assert "database" in answers["ready"].json()["failing"]
            time.sleep(0.5)
        postgres.start()
        restarted = time.monotonic()
        wait_until(
            lambda: client.get(detail, headers=host).status_code == 200, 30, "the API to recover"
        )
        first_ok = time.monotonic() - restarted
        wait_until(lambda: _status(sessions, clip_id) != "pending", 90, "the retried clip render")
        clip_after = time.monotonic() - restarted
    queue.close()

    assert statuses == {"detail": {503}, "me": {503}, "clip": {503}, "ready": {503}}
    assert retry_after and all(value.isdigit() for value in retry_after)
    assert _status(sessions, clip_id) == "ready"
    assert storage.exists(clips.audio_key(clip_id))
    with sessions() as session:  # nothing stored before the restart is missing
        assert session.scalar(sa.select(sa.func.count()).select_from(User)) == 1
        assert session.scalar(sa.select(sa.func.count()).select_from(Clip)) == 1
    engine.dispose()
    assert worker.poll() is None
    print(f"database restart: down {restarted - stopped:.1f} s; API 200 again {first_ok:.1f} s"
          f" after; clip ready {clip_after:.1f} s after")  # fmt: skip


def _status(sessions: sa.orm.sessionmaker[sa.orm.Session], clip_id: str) -> str:
    with sessions() as session:
        clip = session.get(Clip, clip_id)
        assert clip is not None
        return clip.status

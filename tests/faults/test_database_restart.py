"""PostgreSQL restarted while the API serves and a worker writes. During the outage the API
answers 503 with Retry-After (never 500) on routes that need the database, and a clip render
that meets the dead database is retried with backoff; after it returns the clip lands, once,
and nothing stored before the restart is missing.

The same restart mid-room: the live node writes recording rows and room ends to the database
(best effort, off the packet path), and the room's audio goes on without it.
"""

from __future__ import annotations

import asyncio
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
from core.adapters.db.models import Clip, Recording, Room, User
from core.adapters.storage_factory import build_storage
from core.rooms import Role
from core.settings import Settings
from tests.api.accounts import new_user
from tests.api.replay_seed import seed_replay, user_id
from tests.faults.postgres_process import PostgresProcess
from tests.faults.support import wait_until, with_redis
from tests.faults.test_worker_crash import long_mp3
from tests.live.recording_support import (
    BurstTrack,
    NodeProcess,
    node_env,
    onsets,
    placed_track,
    wait_for_manifest,
)
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


# -- a live room through the restart ----------------------------------------------------------

LIVE_ROOM = "db-fault-room"
BURSTS_DOWN, BURSTS_AFTER = 8, 2


def test_live_room_keeps_its_audio_through_a_database_restart(
    settings: Settings, redis_url: str, postgres: PostgresProcess, tmp_path: Path
) -> None:
    """The node notes recordings and room ends in the database (live/recording_rows.py, best
    effort, off the packet path): with PostgreSQL down mid-room, the listener's mix keeps its
    pace and the recording keeps every burst where it was sent; once it is back the room ends
    and is marked ended as usual."""
    migrate.upgrade(postgres.url)
    engine = make_engine(settings.model_copy(
        update={"database": settings.database.model_copy(update={"url": postgres.url})}))  # fmt: skip
    sessions = make_session_factory(engine)
    with sessions() as session:
        host = User(email="host@example.com", display_name="Hana", password_hash="x")
        session.add(host)
        session.flush()
        session.add(Room(id=LIVE_ROOM, host_id=host.id, title="Through the restart"))
        session.commit()
    env = node_env(settings, ROOMCAST_REDIS__URL=redis_url, ROOMCAST_DATABASE__URL=postgres.url)
    node = NodeProcess(settings, env, tmp_path / "live.log")
    node.start()
    sent: list[float] = []
    try:

        async def scenario() -> dict[str, float]:
            mic = BurstTrack(800.0, burst_frames=8)
            hana = await node.join(LIVE_ROOM, "host", Role.HOST, publish_track=mic, record=True)
            lena = await node.join(LIVE_ROOM, "lena")
            try:
                await hana.wait_for(lambda c: c.recording)
                await asyncio.sleep(1.5)  # connected, mixing, the recording row written
                await asyncio.to_thread(postgres.stop)
                down_at = time.monotonic()
                for _ in range(BURSTS_DOWN):
                    sent.append(await mic.burst())
                    await asyncio.sleep(0.7)
                mix = lena.audio_of("mix")
                assert mix is not None
                frames_down = mix.since(down_at).size / 960
                seconds_down = time.monotonic() - down_at
                await asyncio.to_thread(postgres.start)
                for _ in range(BURSTS_AFTER):
                    sent.append(await mic.burst())
                    await asyncio.sleep(0.7)
                assert not hana.closed and not lena.closed
                await hana.end_room()
            finally:
                for client in (lena, hana):
                    await client.close()
            return {"frames": frames_down, "expected": seconds_down / 0.02}

        figures = asyncio.run(asyncio.wait_for(scenario(), 90))
        storage = build_storage(settings)
        manifest = wait_for_manifest(storage, timeout=30)
        ended = wait_until(lambda: _room_status(sessions) == "ended" or None, 20, "room ended")
    except BaseException:
        print(node.tail())
        raise
    finally:
        node.stop()
    heard = onsets(placed_track(manifest, "host", storage, tmp_path), manifest.epoch)
    errors = [h - s for h, s in zip(heard, sent, strict=True)]
    with sessions() as session:
        recordings = session.scalars(sa.select(Recording.status)).all()
    engine.dispose()
    print(f"live room through a database restart: mix frames {figures['frames']:.0f} of"
          f" {figures['expected']:.0f} due while down; burst placement errors (ms)"
          f" {[round(1000 * e, 1) for e in errors]}; recording rows {recordings}")  # fmt: skip
    assert figures["frames"] >= 0.85 * figures["expected"]
    assert len(heard) == BURSTS_DOWN + BURSTS_AFTER
    assert all(-0.020 <= e <= 0.060 for e in errors), errors
    assert ended
    assert len(recordings) == 1


def _room_status(sessions: sa.orm.sessionmaker[sa.orm.Session]) -> str | None:
    with sessions() as session:
        room = session.get(Room, LIVE_ROOM)
        return None if room is None else room.status

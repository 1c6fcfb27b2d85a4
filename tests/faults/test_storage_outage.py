"""Storage (S3: moto over real HTTP) unreachable for ``OUTAGE_SECONDS`` (12 s here; the 60 s
variant: ``ROOMCAST_FAULT_OUTAGE_SECONDS=60``) while a clip is published and while a
post-production render uploads. The path to moto is cut by a TCP proxy, so moto keeps its
objects, as a real S3 does through a network outage.

Meanwhile the API answers 503 with Retry-After (never 500) on the routes that read or write
storage, and ``/readyz`` names storage; clip creation is still accepted (202: the clip row is
stored and the render retried). After storage returns everything lands, once.
"""

from __future__ import annotations

import io
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from api.app import ApiDeps, create_app
from core import clips, replays
from core.adapters.celery_queue import CeleryJobQueue
from core.adapters.db import migrate
from core.adapters.db.engine import make_engine, make_session_factory
from core.adapters.db.models import Clip
from core.adapters.storage_factory import build_storage
from core.settings import Settings
from tests.api.accounts import new_user
from tests.api.replay_seed import seed_replay, user_id
from tests.faults.support import OUTAGE_SECONDS, stored_keys, wait_until, with_redis
from tests.faults.tcp_proxy import TcpProxy
from tests.faults.test_worker_crash import long_mp3
from tests.support.celery_worker import start_worker, stop_worker
from tests.support.moto_server import ACCESS_KEY, SECRET_KEY, MotoServer
from tests.workers.postprod_support import (
    enqueue_render,
    ensure_room,
    new_recording_id,
    objects,
    output_rows,
    record_room,
    replay_of,
    settled,
    store_recording,
)

SHOW = {
    "slug": "talks", "title": "Talks", "description": "Rooms.", "category": "Technology",
    "author": "Hana", "owner_email": "owner@example.com",
}  # fmt: skip


def _worker_env(settings: Settings) -> dict[str, str]:
    storage = settings.storage
    return {
        "ROOMCAST_STORAGE__BACKEND": "s3",
        "ROOMCAST_STORAGE__S3_BUCKET": storage.s3_bucket,
        "ROOMCAST_STORAGE__S3_ENDPOINT_URL": storage.s3_endpoint_url,
        "ROOMCAST_STORAGE__S3_REGION": storage.s3_region,
        "ROOMCAST_STORAGE__S3_ACCESS_KEY_ID": ACCESS_KEY,
        "ROOMCAST_STORAGE__S3_SECRET_ACCESS_KEY": SECRET_KEY,
        "ROOMCAST_STORAGE__S3_PATH_STYLE": "true",
    }


@pytest.fixture
def proxy(moto_server: MotoServer) -> Iterator[TcpProxy]:
    with TcpProxy(moto_server.port) as running:
        yield running


@pytest.fixture
def outage_settings(s3_settings: Settings, redis_url: str, proxy: TcpProxy) -> Settings:
    """S3 through the proxy, SQLite under var_dir, the test's Redis."""
    migrate.upgrade(s3_settings.database_url)
    storage = s3_settings.storage.model_copy(
        update={"s3_endpoint_url": proxy.url, "s3_secret_access_key": SecretStr(SECRET_KEY)}
    )
    return with_redis(s3_settings.model_copy(update={"storage": storage}), redis_url)


@pytest.fixture
def worker(outage_settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    process = start_worker(
        outage_settings.redis_url, Path(outage_settings.var_dir), _worker_env(outage_settings)
    )
    yield process
    stop_worker(process)


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1400, 1400), color=(40, 90, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def _clip_status(sessions: sessionmaker[Session], clip_id: str) -> str:
    with sessions() as session:
        clip = session.get(Clip, clip_id)
        assert clip is not None
        return clip.status


def test_storage_outage_api_answers_503_and_the_clip_lands_after(
    outage_settings: Settings,
    proxy: TcpProxy,
    worker: subprocess.Popen[bytes],
    tmp_path: Path,
) -> None:
    settings = outage_settings
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    storage = build_storage(settings)
    queue = CeleryJobQueue(settings)
    deps = ApiDeps(engine=engine, storage=storage, queue=queue, redis_url=settings.redis_url)
    app = create_app(settings, deps=deps)
    jpeg = _jpeg()
    with TestClient(app, base_url="http://127.0.0.1", follow_redirects=False) as client:
        host = new_user(client, "host@example.com", "Hana")
        seeded = seed_replay(settings, storage, user_id(client, host),
                             mp3=long_mp3(tmp_path / "r.mp3", 30.0), duration=30.0)  # fmt: skip
        created = client.post("/v1/shows", json=SHOW, headers=host)
        assert created.status_code == 201, created.text
        audio = f"/v1/replays/{seeded.replay_id}/audio.mp3"
        assert client.get(audio, headers=host).status_code == 302
        keys_before = stored_keys(storage)

        proxy.cut()
        cut_at = time.monotonic()
        seen: dict[str, set[int]] = {"get": set(), "head": set(), "artwork": set(), "ready": set()}
        retry_after: set[str] = set()
        clip = client.post(f"/v1/replays/{seeded.replay_id}/clips",
                           json={"start_seconds": 5.0, "duration_seconds": 10.0}, headers=host)  # fmt: skip
        assert clip.status_code == 202, clip.text
        clip_id = clip.json()["id"]
        while time.monotonic() - cut_at < OUTAGE_SECONDS:
            answers = {
                "get": client.get(audio, headers=host),
                "head": client.head(audio, headers=host),
                "artwork": client.put("/v1/shows/talks/artwork", content=jpeg, headers=host),
                "ready": client.get("/readyz"),
            }
            for name, answer in answers.items():
                seen[name].add(answer.status_code)
                if answer.status_code == 503:
                    retry_after.add(answer.headers.get("retry-after", ""))
            assert "storage" in answers["ready"].json()["failing"]
            assert answers["get"].status_code == 503, (
                answers["get"].status_code,
                answers["get"].headers,
            )
            assert answers["get"].json()["error"]["code"] == "storage_unavailable"
            assert _clip_status(sessions, clip_id) == "pending"
            time.sleep(0.5)
        proxy.restore()
        restored_at = time.monotonic()

        wait_until(lambda: _clip_status(sessions, clip_id) != "pending", 120, "the clip render")
        clip_after = time.monotonic() - restored_at
        ready = wait_until(lambda: client.get("/readyz").status_code == 200, 30, "readiness")
        artwork = client.put("/v1/shows/talks/artwork", content=jpeg, headers=host)
        audio_after = client.get(audio, headers=host)
    queue.close()
    engine.dispose()

    assert seen == {"get": {503}, "head": {503}, "artwork": {503}, "ready": {503}}
    assert retry_after and all(value.isdigit() for value in retry_after)
    assert ready and artwork.status_code == 200 and audio_after.status_code == 302
    assert _clip_status(sessions, clip_id) == "ready"
    new = stored_keys(storage) - keys_before
    assert {clips.audio_key(clip_id), clips.waveform_key(clip_id)} <= new
    assert len([k for k in new if k.startswith("shows/")]) == 1  # the one artwork upload
    assert worker.poll() is None
    print(
        f"storage outage {OUTAGE_SECONDS:.0f} s: API {sorted(seen['get'])} with Retry-After"
        f" {sorted(retry_after)}; clip ready {clip_after:.1f} s after storage returned"
    )


def test_storage_outage_during_post_production_upload_lands_everything_after(
    outage_settings: Settings,
    proxy: TcpProxy,
    worker: subprocess.Popen[bytes],
    tmp_path: Path,
) -> None:
    settings = outage_settings
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    storage = build_storage(settings)
    ensure_room(sessions)
    rid = new_recording_id()
    record_room(tmp_path / "spool", rid, seconds=6.0)
    store_recording(storage, tmp_path / "spool", rid)
    try:
        enqueue_render(settings, rid)
        wait_until(lambda: replay_of(sessions, rid), 90, "the render to start", step=0.02)
        proxy.cut()
        time.sleep(OUTAGE_SECONDS)
        during = replay_of(sessions, rid)
        proxy.restore()
        restored_at = time.monotonic()
        view = wait_until(lambda: settled(sessions, rid), 240, "the render after the outage")
        landed_after = time.monotonic() - restored_at
    finally:
        engine.dispose()

    assert during is not None and during.status == "processing"
    assert view.status == "ready", view.failure_reason
    assert sorted(view.outputs) == sorted(replays.OUTPUT_FILES)
    assert len(output_rows(sessions, view.id)) == len(replays.OUTPUT_FILES)
    version = replays.version_of(view.outputs["mp3"].key)
    assert version is not None
    stored = objects(storage, f"replays/{view.id}/")
    # Every output the row names is stored, and only one version was published.
    assert {o.key for o in view.outputs.values() if o.kind != "hls"} <= set(stored)
    assert all(key.startswith(replays.version_prefix(view.id, version)) for key in stored)
    assert worker.poll() is None
    print(f"post-production: ready {landed_after:.1f} s after storage returned")

"""A worker SIGKILLed in the middle of a clip render and of a webhook delivery (post-production
render: tests/workers/test_postprod_kill.py). Redis hands the unacknowledged message (``acks_late``,
a short visibility timeout here) to the next worker, which finishes the job: the outputs are
the bytes an uninterrupted run makes, there is one row per clip / delivery, and storage holds
nothing the finished job does not own."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from core import clips, jobs
from core.adapters.celery_queue import CeleryJobQueue
from core.adapters.db import migrate
from core.adapters.db.engine import make_engine, make_session_factory
from core.adapters.db.models import Clip, User, WebhookDelivery, WebhookEndpoint
from core.adapters.storage_factory import build_storage
from core.adapters.webhook_outbox import emit
from core.settings import Settings
from core.webhooks import events
from core.webhooks.signing import generate_secret
from tests.api.replay_seed import seed_replay
from tests.faults.support import (
    fast_redelivery_env,
    files_under,
    stored_keys,
    wait_until,
    with_redis,
)
from tests.recorder.fake_jobs import RecordingJobQueue
from tests.support.celery_worker import start_worker, stop_worker
from tests.workers.webhook_receiver import independent_verify
from workers.audio.encode import BlockEncoder, EncodeSpec
from workers.context import WorkerContext
from workers.tasks.clips import render_clip

RATE = 48_000
REPLAY_SECONDS = 180.0


@pytest.fixture
def fault_settings(settings: Settings, redis_url: str) -> Settings:
    migrate.upgrade(settings.database_url)
    return with_redis(settings, redis_url)


@pytest.fixture
def context(fault_settings: Settings) -> Iterator[WorkerContext]:
    engine = make_engine(fault_settings)
    yield WorkerContext(
        settings=fault_settings, engine=engine, sessions=make_session_factory(engine),
        storage=build_storage(fault_settings), queue=RecordingJobQueue(), pid=0,
    )  # fmt: skip
    engine.dispose()


def _host(sessions: sessionmaker[Session]) -> str:
    with sessions() as session:
        host = User(email="host@example.com", display_name="Hana", password_hash="x")
        session.add(host)
        session.commit()
        return host.id


def _long_mp3(path: Path) -> bytes:
    """Three minutes of a gliding tone: long enough that the cut is still running at the kill."""
    t = np.arange(int(REPLAY_SECONDS * RATE)) / RATE
    samples = (0.4 * np.sin(2 * np.pi * (220 + t) * t)).astype(np.float32)
    encoder = BlockEncoder(path, EncodeSpec("mp3", sample_rate=44_100, bitrate_kbps=128))
    for block in np.array_split(samples, 200):
        encoder.write(block)
    return encoder.close().read_bytes()


def _pending_clip(sessions: sessionmaker[Session], replay_id: str, user: str) -> str:
    with sessions() as session:
        clip = Clip(replay_id=replay_id, user_id=user, start_seconds=20.0, duration_seconds=60.0)
        session.add(clip)
        session.commit()
        return clip.id


def _clip_rows(sessions: sessionmaker[Session], replay_id: str) -> list[tuple[str, str]]:
    with sessions() as session:
        rows = session.execute(sa.select(Clip.id, Clip.status).where(Clip.replay_id == replay_id))
        return sorted((clip_id, status) for clip_id, status in rows)


def test_worker_killed_mid_clip_render_redelivers_and_stores_identical_bytes(
    fault_settings: Settings, context: WorkerContext, tmp_path: Path
) -> None:
    host = _host(context.sessions)
    seeded = seed_replay(
        fault_settings, context.storage, host, mp3=_long_mp3(tmp_path / "r.mp3"),
        duration=REPLAY_SECONDS,
    )  # fmt: skip
    clip_id = _pending_clip(context.sessions, seeded.replay_id, host)
    storage_root = fault_settings.storage_dir
    keys_before, files_before = stored_keys(context.storage), files_under(storage_root)
    scratch = tmp_path / "worker-tmp"  # the worker's TMPDIR: its scratch dir shows the task runs
    scratch.mkdir()
    env = fast_redelivery_env(TMPDIR=str(scratch))
    var = Path(fault_settings.var_dir)

    first = start_worker(fault_settings.redis_url, var, env)
    second = None
    try:
        queue = CeleryJobQueue(fault_settings)
        try:
            queue.enqueue(jobs.CLIP_RENDER, clip_id)
        finally:
            queue.close()
        wait_until(lambda: list(scratch.glob("roomcast-clip-*")), 60, "the clip render to start",
                   step=0.002)  # fmt: skip
        time.sleep(0.05)  # into the cut
        os.killpg(first.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        first.wait(timeout=10)
        assert _clip_rows(context.sessions, seeded.replay_id) == [(clip_id, "pending")], (
            "the render finished before the kill: the test did not interrupt it"
        )
        assert not context.storage.exists(clips.audio_key(clip_id))

        second = start_worker(fault_settings.redis_url, var, env)
        wait_until(
            lambda: _clip_rows(context.sessions, seeded.replay_id)[0][1] != "pending",
            120, "the redelivered clip render",
        )  # fmt: skip
        recovered_in = time.monotonic() - killed_at
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)

    assert _clip_rows(context.sessions, seeded.replay_id) == [(clip_id, "ready")]
    new_keys = stored_keys(context.storage) - keys_before
    assert new_keys == {clips.audio_key(clip_id), clips.waveform_key(clip_id)}
    # No partial files either (the local backend hides ``.partial`` files from ``list``).
    assert files_under(storage_root) - files_before == new_keys
    assert recovered_in < 60

    # The same clip rendered here, uninterrupted: the redelivered run stored exactly these bytes.
    reference = _pending_clip(context.sessions, seeded.replay_id, host)
    assert render_clip(context, reference) is True
    for key_of in (clips.audio_key, clips.waveform_key):
        assert context.storage.get_bytes(key_of(clip_id)) == context.storage.get_bytes(
            key_of(reference)
        )
    print(f"clip render: recovered {recovered_in:.1f} s after the kill")

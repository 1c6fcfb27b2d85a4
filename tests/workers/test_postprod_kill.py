"""A worker SIGKILLed in the middle of a render: Redis delivers the unacknowledged message again
(``acks_late``; the visibility timeout is made short here) to the next worker, which finishes
with exactly the outputs an uninterrupted render makes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis

from core import replays
from core.adapters.db import migrate
from core.adapters.db.engine import make_engine, make_session_factory
from core.adapters.redis_process import RedisProcess
from core.adapters.storage_factory import build_storage
from tests.support.celery_worker import start_worker, stop_worker
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
    wait_for,
    worker_settings,
)
from workers.audio.pipeline import RenderOptions, render_replay
from workers.audio.sources import DirectorySource

VISIBILITY_SECONDS = 4
#: Long enough that the render is still running when the worker is killed.
#: Long enough that the render is still running when the test kills it (a 2 min room takes
#: seconds to render; 40 s became too quick once decode and encode moved to libopus/LAME).
ROOM_SECONDS = 120.0
#: Outputs compared byte for byte with a render made here.
COMPARED = ("mp3", "m4a", "hls", "stems", "waveform", "chapters")


def test_killed_worker_task_is_redelivered_and_finishes_with_the_same_outputs(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    redis_server.start()
    redis.Redis.from_url(redis_server.url).flushall()
    var = tmp_path / "var"
    settings = worker_settings(var, redis_server.url)
    migrate.upgrade(settings.database_url)
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    storage = build_storage(settings)
    ensure_room(sessions)
    rid = new_recording_id()
    manifest = record_room(tmp_path / "spool", rid, seconds=ROOM_SECONDS)
    store_recording(storage, tmp_path / "spool", rid)
    env = {"ROOMCAST_REDIS__VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_SECONDS)}

    first = start_worker(redis_server.url, var, env)
    second = None
    try:
        enqueue_render(settings, rid)
        # The replay row appears (processing) when the task has read the manifest and is
        # about to render: kill the worker and its pool child while the mix runs.
        started = wait_for(lambda: replay_of(sessions, rid), 90, "the render to start")
        assert started.status == "processing"
        time.sleep(0.3)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        interrupted = replay_of(sessions, rid)
        assert interrupted is not None and interrupted.status == "processing"
        assert interrupted.outputs == {}  # nothing published by the killed run

        second = start_worker(redis_server.url, var, env)
        view = wait_for(lambda: settled(sessions, rid), 180, "the redelivered render")
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)
        engine.dispose()

    assert view.status == "ready", view.failure_reason
    assert sorted(view.outputs) == sorted(replays.OUTPUT_FILES)
    assert len(output_rows(sessions, view.id)) == len(replays.OUTPUT_FILES)
    version = replays.version_of(view.outputs["mp3"].key)
    assert version is not None
    stored = objects(storage, replays.version_prefix(view.id, version))

    # The same render, uninterrupted, here: the redelivered one stored exactly these bytes.
    reference = render_replay(
        manifest,
        DirectorySource(tmp_path / "spool"),
        tmp_path / "reference",
        RenderOptions.from_settings(settings.audio, basename="audio"),
    )
    for kind in COMPARED:
        path = reference.outputs[kind].path
        files = sorted(path.iterdir()) if path.is_dir() else [path]
        for file in files:
            key = (
                f"{replays.version_prefix(view.id, version)}hls/{file.name}"
                if kind == "hls"
                else view.outputs[kind].key
            )
            assert key in stored, key
            assert storage.get_bytes(key) == file.read_bytes(), key
    assert view.duration_seconds == pytest.approx(reference.duration_seconds, abs=0.001)

"""``roomcast.postprod.follow``: a follower renders while the room is live and publishes the
replay the end-of-room render then leaves alone; a live render that misses the loudness goal
falls back to the full render, which meets it; one follower per recording; the end-of-room
render defers while a follower's heartbeat lives (real redis-server, real worker process).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from core.adapters.db import migrate
from core.adapters.redis_process import RedisProcess
from tests.support.celery_worker import start_worker, stop_worker
from tests.workers.audio.rooms import RATE, Speaker, speech_like, write_room
from tests.workers.audio.test_outputs import ffmpeg_ebur128
from tests.workers.live_room import LiveFeeder
from tests.workers.postprod_support import (
    enqueue_render,
    ensure_room,
    new_recording_id,
    replay_of,
    settled,
    wait_for,
    worker_settings,
)
from workers.app import create_app
from workers.context import WorkerContext, worker_context
from workers.tasks.follow import run_follow
from workers.tasks.heartbeat import Heartbeat, follow_key, redis_client
from workers.tasks.postprod import run_render

STEP = 3 * RATE  #: room time that passes per poll of the follower


@pytest.fixture
def context(tmp_path: Path, redis_url: str) -> Iterator[WorkerContext]:
    settings = worker_settings(tmp_path / "var", redis_url)
    migrate.upgrade(settings.database_url)
    found = worker_context(create_app(settings))
    ensure_room(found.sessions)
    yield found
    found.engine.dispose()


def feed_and_follow(context: WorkerContext, root: Path, speakers: list[Speaker]) -> tuple[str, str]:
    """Write a room, play it into storage while a follower follows it; (recording id, outcome)."""
    recording_id = new_recording_id()
    manifest = write_room(root, speakers, recording_id=recording_id, segment_seconds=4.0)
    feeder = LiveFeeder(context.storage, root, manifest)
    clock = {"now": 0}

    def sleep(_seconds: float) -> None:  # each poll: room time passes, segments land
        clock["now"] += STEP
        if clock["now"] > feeder.end_offset + STEP:
            feeder.end()
        else:
            feeder.land_until(clock["now"])

    heartbeat = Heartbeat(redis_client(context.settings.redis_url), recording_id)
    outcome = run_follow(context, recording_id, heartbeat=heartbeat, sleep=sleep)
    return recording_id, outcome


def room(level_jump: bool = False) -> list[Speaker]:
    host = speech_like(30.0, seed=1, level=0.4)
    if level_jump:
        host = speech_like(40.0, seed=1, level=0.015)
        host[32 * RATE :] = np.clip(host[32 * RATE :] * 30.0, -0.99, 0.99)
        return [Speaker("p-hana", host, display_name="Hana")]
    return [
        Speaker("p-hana", host, display_name="Hana"),
        Speaker("p-gil", speech_like(20.0, seed=2, level=0.1), start=7 * RATE + 33,
                display_name="Gil"),
    ]  # fmt: skip


def test_follower_publishes_and_the_end_of_room_render_is_a_no_op(
    context: WorkerContext, tmp_path: Path
) -> None:
    recording_id, outcome = feed_and_follow(context, tmp_path / "room", room())
    assert outcome == "published"
    view = replay_of(context.sessions, recording_id)
    assert view is not None and view.status == "ready"
    mp3 = view.outputs["mp3"]
    prefix = mp3.key.rsplit("/", 1)[0]
    report = json.loads(context.storage.get_bytes(f"{prefix}/render.json"))
    assert report["mode"] == "live"
    assert abs(mp3.loudness["integrated_lufs"] - (-16.0)) <= 0.5  # type: ignore[index]
    assert run_render(context, recording_id).action == "unchanged"
    local = tmp_path / "episode.mp3"
    local.write_bytes(context.storage.get_bytes(mp3.key))
    integrated, peak = ffmpeg_ebur128(local)
    assert abs(integrated + 16.0) <= 0.5 and peak <= -1.0
    assert not redis.Redis.from_url(context.settings.redis_url).exists(follow_key(recording_id))


def test_a_live_render_that_misses_falls_back_to_the_full_render(
    context: WorkerContext, tmp_path: Path
) -> None:
    recording_id, outcome = feed_and_follow(context, tmp_path / "room", room(level_jump=True))
    assert outcome == "fallback"
    view = replay_of(context.sessions, recording_id)
    assert view is not None and view.status == "processing"  # nothing was published
    assert run_render(context, recording_id).action == "rendered"
    view = replay_of(context.sessions, recording_id)
    assert view is not None and view.status == "ready"
    mp3 = view.outputs["mp3"]
    prefix = mp3.key.rsplit("/", 1)[0]
    assert "mode" not in json.loads(context.storage.get_bytes(f"{prefix}/render.json"))
    local = tmp_path / "episode.mp3"
    local.write_bytes(context.storage.get_bytes(mp3.key))
    integrated, peak = ffmpeg_ebur128(local)
    assert abs(integrated + 16.0) <= 0.5 and peak <= -1.0


def test_a_second_follower_exits_at_once(context: WorkerContext) -> None:
    client = redis_client(context.settings.redis_url)
    first = Heartbeat(client, "rec-busy", ttl_seconds=2.0)
    assert first.acquire()
    try:
        started = time.monotonic()
        second = Heartbeat(client, "rec-busy")
        assert run_follow(context, "rec-busy", heartbeat=second) == "busy"
        assert time.monotonic() - started < 1.0
        time.sleep(2.5)  # longer than the TTL: the first one's refreshes keep it
        assert client.exists(follow_key("rec-busy"))
    finally:
        first.release()
    assert not client.exists(follow_key("rec-busy"))


def test_the_end_of_room_render_defers_while_a_heartbeat_lives(
    tmp_path: Path, redis_server: RedisProcess, redis_url: str
) -> None:
    var = tmp_path / "var"
    settings = worker_settings(var, redis_url)
    migrate.upgrade(settings.database_url)
    context = worker_context(create_app(settings))
    ensure_room(context.sessions)
    recording_id = new_recording_id()
    manifest = write_room(tmp_path / "room", room(), recording_id=recording_id)
    feeder = LiveFeeder(context.storage, tmp_path / "room", manifest)
    feeder.end()
    client = redis.Redis.from_url(redis_url)
    client.set(follow_key(recording_id), "someone", px=8000)  # a follower that then died
    worker = start_worker(redis_url, var)
    try:
        enqueue_render(settings, recording_id)
        time.sleep(6.0)
        view = replay_of(context.sessions, recording_id)
        assert view is None or view.status != "ready"  # deferred, not rendered
        assert client.exists(follow_key(recording_id))
        done = wait_for(lambda: settled(context.sessions, recording_id), 90.0, "the replay")
        assert done.status == "ready"
        assert worker.poll() is None
    finally:
        stop_worker(worker)
        context.engine.dispose()

"""Clip rendering: a real MP3 cut by PyAV at the right place, its waveform, clip.ready, and the
same through a real worker process over a real redis-server."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from core import clips, jobs
from core.adapters.celery_queue import CeleryJobQueue
from core.adapters.db import migrate
from core.adapters.db.engine import make_engine, make_session_factory
from core.adapters.db.models import Clip, User, WebhookDelivery, WebhookEndpoint
from core.adapters.storage_factory import build_storage
from core.errors import InvalidAudio
from core.settings import Settings
from core.webhooks.signing import generate_secret
from tests.api.replay_seed import seed_replay
from tests.recorder.fake_jobs import RecordingJobQueue
from tests.support.celery_worker import start_worker, stop_worker
from workers.audio.encode import BlockEncoder, EncodeSpec
from workers.context import WorkerContext
from workers.tasks.clips import render_clip

RATE = 48_000
QUIET_UNTIL = 5.0
LENGTH = 10.0


def _replay_mp3(path: Path) -> bytes:
    """10 s: silence for 5 s, then a 440 Hz tone at -6 dBFS."""
    t = np.arange(int(LENGTH * RATE)) / RATE
    samples = np.where(t < QUIET_UNTIL, 0.0, 0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    encoder = BlockEncoder(path, EncodeSpec("mp3", sample_rate=44_100, bitrate_kbps=96))
    for block in np.array_split(samples, 50):
        encoder.write(block)
    return encoder.close().read_bytes()


def _decode(data: bytes, scratch: Path) -> np.ndarray:
    path = scratch / "decoded.mp3"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=RATE)
        parts = [
            out.to_ndarray().reshape(-1)
            for frame in container.decode(audio=0)
            for out in resampler.resample(frame)
        ]
    return np.concatenate(parts)


def rms(part: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(part))))


@pytest.fixture
def db_settings(settings: Settings) -> Settings:
    migrate.upgrade(settings.database_url)
    return settings


@pytest.fixture
def context(db_settings: Settings) -> Iterator[WorkerContext]:
    engine = make_engine(db_settings)
    yield WorkerContext(
        settings=db_settings,
        engine=engine,
        sessions=make_session_factory(engine),
        storage=build_storage(db_settings),
        queue=RecordingJobQueue(),
        pid=0,
    )
    engine.dispose()


def _host_with_webhook(sessions: sessionmaker[Session]) -> tuple[str, str]:
    with sessions() as session:
        host = User(email="host@example.com", display_name="Hana", password_hash="x")
        session.add(host)
        session.flush()
        endpoint = WebhookEndpoint(
            owner_id=host.id,
            url="https://hooks.example.com/in",
            secret=generate_secret(),
            events=["clip.ready"],
        )
        session.add(endpoint)
        session.commit()
        return host.id, endpoint.id


def _pending_clip(
    sessions: sessionmaker[Session], replay_id: str, user: str, start: float, duration: float
) -> str:
    with sessions() as session:
        clip = Clip(
            replay_id=replay_id, user_id=user, start_seconds=start, duration_seconds=duration
        )
        session.add(clip)
        session.commit()
        return clip.id


def test_clip_is_cut_at_its_start_with_waveform_and_clip_ready(
    context: WorkerContext, tmp_path: Path
) -> None:
    host, endpoint_id = _host_with_webhook(context.sessions)
    mp3 = _replay_mp3(tmp_path / "replay.mp3")
    seeded = seed_replay(context.settings, context.storage, host, mp3=mp3, duration=LENGTH)
    clip_id = _pending_clip(context.sessions, seeded.replay_id, host, start=4.0, duration=2.0)

    assert render_clip(context, clip_id) is True
    assert render_clip(context, clip_id) is False  # already ready: nothing twice

    audio = context.storage.get_bytes(clips.audio_key(clip_id))
    samples = _decode(audio, tmp_path)
    assert abs(len(samples) / RATE - 2.0) < 0.1  # encoder padding only
    assert rms(samples[int(0.1 * RATE) : int(0.9 * RATE)]) < 0.01  # 4.1–4.9 s: silence
    assert rms(samples[int(1.1 * RATE) : int(1.9 * RATE)]) > 0.25  # 5.1–5.9 s: the tone
    assert context.storage.head(clips.audio_key(clip_id)).content_type == "audio/mpeg"

    waveform = json.loads(context.storage.get_bytes(clips.waveform_key(clip_id)))
    assert waveform["samples_per_pixel"] == clips.WAVEFORM_SAMPLES_PER_PEAK
    assert waveform["length"] == 200  # 2 s at 100 peaks per second
    assert max(waveform["data"][:160]) <= 2 and max(waveform["data"][220:]) > 50

    with context.sessions() as session:
        clip = session.get(Clip, clip_id)
        assert clip is not None and clip.status == "ready" and clip.key == clips.audio_key(clip_id)
        assert clip.duration_seconds == 2.0
        [delivery] = session.query(WebhookDelivery).filter_by(endpoint_id=endpoint_id).all()
    assert delivery.event_type == "clip.ready" and delivery.status == "pending"
    assert delivery.payload["data"]["clip_id"] == clip_id
    assert delivery.payload["data"]["page_url"].endswith(f"/clips/{clip_id}")
    assert isinstance(context.queue, RecordingJobQueue)
    assert context.queue.sent == [(jobs.WEBHOOK_DELIVER, (delivery.id, 1), jobs.DEFAULT_QUEUE)]


def test_undecodable_replay_fails_the_clip(context: WorkerContext) -> None:
    host, _ = _host_with_webhook(context.sessions)
    seeded = seed_replay(context.settings, context.storage, host, mp3=b"not an mp3" * 100)
    clip_id = _pending_clip(context.sessions, seeded.replay_id, host, start=1.0, duration=2.0)
    with pytest.raises(InvalidAudio):
        render_clip(context, clip_id)
    with context.sessions() as session:
        clip = session.get(Clip, clip_id)
        assert clip is not None and clip.status == "failed"
    assert not context.storage.exists(clips.audio_key(clip_id))
    assert context.queue.sent == []  # type: ignore[attr-defined]


@pytest.fixture
def worker(
    db_settings: Settings, redis_url: str
) -> Iterator[tuple[Settings, subprocess.Popen[bytes]]]:
    settings = db_settings.model_copy(
        update={"redis": db_settings.redis.model_copy(update={"url": redis_url})}
    )
    process = start_worker(redis_url, Path(settings.var_dir))
    yield settings, process
    stop_worker(process)


def test_a_real_worker_renders_an_enqueued_clip(
    worker: tuple[Settings, subprocess.Popen[bytes]], context: WorkerContext, tmp_path: Path
) -> None:
    settings, process = worker
    host, _ = _host_with_webhook(context.sessions)
    mp3 = _replay_mp3(tmp_path / "replay.mp3")
    seeded = seed_replay(settings, context.storage, host, mp3=mp3, duration=LENGTH)
    clip_id = _pending_clip(context.sessions, seeded.replay_id, host, start=8.0, duration=30.0)
    queue = CeleryJobQueue(settings)
    try:
        queue.enqueue(jobs.CLIP_RENDER, clip_id)
    finally:
        queue.close()
    deadline = time.monotonic() + 60
    status = "pending"
    while status == "pending" and time.monotonic() < deadline:
        time.sleep(0.2)
        with context.sessions() as session:
            clip = session.get(Clip, clip_id)
            assert clip is not None
            status, duration = clip.status, clip.duration_seconds
    assert process.poll() is None
    assert status == "ready"
    assert abs(duration - 2.0) < 0.1  # the replay ends 2 s after the start
    assert context.storage.exists(clips.audio_key(clip_id))

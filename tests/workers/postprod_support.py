"""Helpers for the post-production task tests: a room and its recording in real storage, the
rows a host has, and waiting on the replay a real worker renders."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from core import jobs
from core.adapters.celery_queue import CeleryJobQueue
from core.adapters.db.models import Replay, ReplayOutput, Room, User
from core.recording.manifest import Manifest
from core.settings import RedisSettings, Settings
from core.storage import Storage
from tests.workers.audio.rooms import Speaker, speech_like, write_room

ROOM_ID = "room-1"  #: what tests/workers/audio/rooms.write_room puts in every manifest
T = TypeVar("T")


def worker_settings(var_dir: Path, redis_url: str) -> Settings:
    """The settings a test process shares with the worker it starts (same var dir, Redis)."""
    return Settings(var_dir=str(var_dir), redis=RedisSettings(url=redis_url))


def ensure_room(sessions: sessionmaker[Session]) -> str:
    """The host's room ``room-1`` (created once per database); returns the host id."""
    with sessions() as session:
        room = session.get(Room, ROOM_ID)
        if room is not None:
            return room.host_id
        host = User(email="host@example.com", display_name="Hana", password_hash="x")
        session.add(host)
        session.flush()
        session.add(Room(id=ROOM_ID, host_id=host.id, title="Past room", status="ended"))
        session.commit()
        return host.id


def new_recording_id() -> str:
    return uuid.uuid4().hex


def record_room(root: Path, recording_id: str, seconds: float = 6.0, *, seed: int = 1) -> Manifest:
    """Two speakers, the second joining 1 s late, written like the recorder's spool."""
    return write_room(
        root,
        [
            Speaker("p-hana", speech_like(seconds, seed=seed), display_name="Hana"),
            Speaker("p-gil", speech_like(seconds - 1.0, seed=seed + 1), start=48_000,
                    display_name="Gil"),
        ],
        recording_id=recording_id,
    )  # fmt: skip


def store_recording(storage: Storage, root: Path, recording_id: str, *, skip: str = "") -> None:
    """Store the spool under ``recordings/<id>/`` as the recorder's uploader does; the file
    whose relative path is ``skip`` is left out (a lost segment)."""
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and relative != skip:
            storage.put_file(f"recordings/{recording_id}/{relative}", path)


def enqueue_render(settings: Settings, recording_id: str) -> None:
    queue = CeleryJobQueue(settings)
    try:
        queue.enqueue(jobs.POSTPROD_RENDER, recording_id, queue=jobs.MEDIA_QUEUE)
    finally:
        queue.close()


def wait_for(check: Callable[[], T | None], within: float, what: str) -> T:
    """Poll ``check`` until it answers something truthy."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.25)
    raise TimeoutError(f"waited {within:.0f} s for {what}")


@dataclass(frozen=True)
class ReplayView:
    id: str
    status: str
    failure_reason: str | None
    duration_seconds: float | None
    trim: tuple[float | None, float | None]
    loudness: dict[str, object] | None
    outputs: dict[str, ReplayOutput]


def replay_of(sessions: sessionmaker[Session], recording_id: str) -> ReplayView | None:
    """The replay of ``recording_id`` with its outputs by kind (detached copies)."""
    with sessions() as session:
        rows = session.scalars(sa.select(Replay).where(Replay.recording_id == recording_id)).all()
        if not rows:
            return None
        if len(rows) > 1:
            raise AssertionError(f"{len(rows)} replays for recording {recording_id}")
        replay = rows[0]
        outputs = {o.kind: o for o in replay.outputs}
        session.expunge_all()
        return ReplayView(replay.id, replay.status, replay.failure_reason,
                          replay.duration_seconds, (replay.trim_start, replay.trim_end),
                          replay.loudness, outputs)  # fmt: skip


def settled(sessions: sessionmaker[Session], recording_id: str) -> ReplayView | None:
    """The replay once it is ``ready`` or ``failed``."""
    view = replay_of(sessions, recording_id)
    return view if view is not None and view.status in ("ready", "failed") else None


def media_queue_idle(redis_url: str) -> bool:
    """No render waiting on the media queue and none taken but unacknowledged (acks_late: a
    message is acknowledged only when its task has finished)."""
    client = redis.Redis.from_url(redis_url)
    try:
        return client.llen(jobs.MEDIA_QUEUE) == 0 and client.hlen("unacked") == 0
    finally:
        client.close()


def output_rows(sessions: sessionmaker[Session], replay_id: str) -> list[tuple[str, str]]:
    with sessions() as session:
        found = session.execute(
            sa.select(ReplayOutput.kind, ReplayOutput.key).where(
                ReplayOutput.replay_id == replay_id
            )
        )
        return sorted((kind, key) for kind, key in found)


def objects(storage: Storage, prefix: str) -> dict[str, tuple[int, str]]:
    """Every object under ``prefix``: key → (size, etag)."""
    return {info.key: (info.size, info.etag) for info in storage.list(prefix)}

"""Helpers for replay, show and feed tests: the app on chosen storage, and seeded replays.

Post-production is another part of the system, so replays are seeded here the way it leaves
them: rows in ``replays`` / ``replay_outputs`` and the objects in storage.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import ApiDeps, create_app
from core.adapters.db import migrate
from core.adapters.db.engine import make_engine, make_session_factory
from core.adapters.db.models import (
    Recording,
    RecordingTrack,
    Replay,
    ReplayOutput,
    Room,
    RoomMembership,
)
from core.adapters.storage_factory import build_storage
from core.settings import Settings
from core.storage import Storage
from tests.recorder.fake_jobs import RecordingJobQueue

Headers = dict[str, str]


@dataclass
class MediaApp:
    """The app's test client with the storage and job queue it uses."""

    client: TestClient
    storage: Storage
    queue: RecordingJobQueue
    settings: Settings


@contextmanager
def media_app(settings: Settings) -> Iterator[MediaApp]:
    """The real app on a migrated SQLite file, the configured storage and a recording queue."""
    migrate.upgrade(settings.database_url)
    storage = build_storage(settings)
    queue = RecordingJobQueue()
    engine = make_engine(settings)
    deps = ApiDeps(engine=engine, storage=storage, queue=queue, redis_url="redis://127.0.0.1:1")
    try:
        with TestClient(
            create_app(settings, deps=deps), base_url="http://127.0.0.1", follow_redirects=False
        ) as client:
            yield MediaApp(client, storage, queue, settings)
    finally:
        engine.dispose()


def user_id(client: TestClient, headers: Headers) -> str:
    me: str = client.get("/v1/me", headers=headers).json()["id"]
    return me


@dataclass
class SeededReplay:
    room_id: str
    replay_id: str
    files: dict[str, bytes] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)


TIMELINE = {
    "speakers": [{"id": "p-host", "name": "Hana Host"}, {"id": "p-guest", "name": "Gil Guest"}],
    "turns": [
        {"speaker": "p-host", "start": 0.0, "end": 4.0},
        {"speaker": "p-guest", "start": 4.5, "end": 7.0},
        {"speaker": "p-host", "start": 7.0, "end": 8.0},
    ],
}
CHAPTERS = {
    "version": "1.2.0",
    "chapters": [{"startTime": 0, "title": "Hello"}, {"startTime": 4.5, "title": "Guest"}],
}
PLAYLIST = (
    b"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:6\n#EXT-X-PLAYLIST-TYPE:VOD\n"
    b'#EXT-X-MAP:URI="init.mp4"\n#EXTINF:6.0,\nseg-00000.m4s\n#EXT-X-ENDLIST\n'
)


def seed_replay(
    settings: Settings,
    storage: Storage,
    host_id: str,
    *,
    title: str = "Past room",
    private: bool = False,
    members: tuple[tuple[str, str], ...] = (),
    show_id: str | None = None,
    mp3: bytes | None = None,
    duration: float = 8.0,
    status: str = "ready",
    speakers: tuple[str, ...] = ("Gil Guest",),
) -> SeededReplay:
    """An ended room with a ready replay and every output kind stored."""
    ended = datetime.now(UTC) - timedelta(hours=1)
    engine = make_engine(settings)
    try:
        return _seed(
            engine,
            storage,
            host_id,
            title,
            private,
            members,
            show_id,
            mp3,
            duration,
            status,
            speakers,
            ended,
        )
    finally:
        engine.dispose()


def _seed(
    engine: sa.Engine,
    storage: Storage,
    host_id: str,
    title: str,
    private: bool,
    members: tuple[tuple[str, str], ...],
    show_id: str | None,
    mp3: bytes | None,
    duration: float,
    status: str,
    speakers: tuple[str, ...],
    ended: datetime,
) -> SeededReplay:
    with make_session_factory(engine)() as session:
        room = Room(
            host_id=host_id,
            title=title,
            status="ended",
            is_private=private,
            show_id=show_id,
            started_at=ended - timedelta(minutes=30),
            ended_at=ended,
        )
        session.add(room)
        session.flush()
        session.add(RoomMembership(room_id=room.id, user_id=host_id, role="host"))
        for member_id, role in members:
            session.add(RoomMembership(room_id=room.id, user_id=member_id, role=role, invited=True))
        recording = Recording(room_id=room.id, status="complete", epoch_unix=ended.timestamp())
        session.add(recording)
        session.flush()
        for name in speakers:
            session.add(
                RecordingTrack(recording_id=recording.id, participant_id=name, display_name=name)
            )
        replay = Replay(
            room_id=room.id,
            recording_id=recording.id,
            status=status,
            duration_seconds=duration,
            loudness={"integrated_lufs": -16.1, "true_peak_dbtp": -1.2, "lra": 4.0},
        )
        session.add(replay)
        session.flush()
        seeded = SeededReplay(room.id, replay.id)
        prefix = f"replays/{replay.id}"
        files = {
            "mp3": (
                f"{prefix}/audio.mp3",
                mp3 if mp3 is not None else os.urandom(20_000),
                "audio/mpeg",
            ),
            "m4a": (f"{prefix}/audio.m4a", os.urandom(15_000), "audio/mp4"),
            "hls": (f"{prefix}/hls/index.m3u8", PLAYLIST, "application/vnd.apple.mpegurl"),
            "stems": (f"{prefix}/stems.zip", b"PK\x05\x06" + bytes(18), "application/zip"),
            "waveform": (f"{prefix}/waveform.json", b'{"peaks":[0.1,0.5,0.2]}', "application/json"),
            "timeline": (
                f"{prefix}/timeline.json",
                json.dumps(TIMELINE).encode(),
                "application/json",
            ),
            "chapters": (
                f"{prefix}/chapters.json",
                json.dumps(CHAPTERS).encode(),
                "application/json",
            ),
        }
        for kind, (key, data, content_type) in files.items():
            info = storage.put_bytes(key, data, content_type=content_type)
            session.add(
                ReplayOutput(
                    replay_id=replay.id,
                    kind=kind,
                    key=key,
                    content_type=content_type,
                    size=info.size,
                )
            )
            seeded.files[kind] = data
            seeded.keys[kind] = key
        storage.put_bytes(
            f"{prefix}/hls/seg-00000.m4s", os.urandom(3000), content_type="video/iso.segment"
        )
        storage.put_bytes(f"{prefix}/hls/init.mp4", os.urandom(500), content_type="audio/mp4")
        session.commit()
    return seeded

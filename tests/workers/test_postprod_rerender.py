"""``run_render`` in-process (SQLite, local storage): a host's trim re-renders from the
untrimmed render's stems, reading no segment from storage; clearing the trim renders the
untrimmed version from the segments again, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from core import replays
from core.adapters.db import migrate
from core.adapters.db.engine import make_engine, make_session_factory
from core.adapters.db.models import Replay
from core.adapters.storage_factory import build_storage
from core.settings import Settings
from core.storage import Storage
from tests.workers.postprod_support import (
    ensure_room,
    new_recording_id,
    record_room,
    replay_of,
    store_recording,
)
from workers.context import WorkerContext
from workers.tasks.postprod import run_render


class ReadLog:
    """Storage (our port) that records the keys read through it, serving the real one."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.read: list[str] = []

    def get_bytes(self, key: str, **kwargs: Any) -> bytes:
        self.read.append(key)
        return self.inner.get_bytes(key, **kwargs)

    def download_file(self, key: str, path: Path) -> None:
        self.read.append(key)
        self.inner.download_file(key, path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Jobs:
    """A JobQueue (our port) that keeps what it is asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[object, ...]]] = []

    def enqueue(self, task_name: str, *args: object, queue: str = "default") -> str:
        self.sent.append((task_name, args))
        return str(len(self.sent))

    def ping_worker(self, timeout: float) -> None:
        return None


def test_a_trim_rerenders_from_stems_without_reading_a_segment(
    settings: Settings, tmp_path: Path
) -> None:
    migrate.upgrade(settings.database_url)
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    storage = ReadLog(build_storage(settings))
    context = WorkerContext(settings, engine, sessions, cast(Storage, storage), Jobs(), 0)
    ensure_room(sessions)
    rid = new_recording_id()
    record_room(tmp_path / "spool", rid, seconds=8.0)
    store_recording(storage.inner, tmp_path / "spool", rid)
    segments = f"recordings/{rid}/tracks/"
    try:
        first = run_render(context, rid)
        assert first.action == "rendered"
        assert any(key.startswith(segments) for key in storage.read)

        with sessions() as session:
            replay = session.get(Replay, first.replay_id)
            assert replay is not None
            replay.trim_start, replay.trim_end = 1.5, 6.0
            session.commit()
        storage.read.clear()
        trimmed = run_render(context, rid)
        assert trimmed.action == "rendered" and trimmed.version != first.version
        assert not [key for key in storage.read if key.startswith(segments)]
        prefix = replays.version_prefix(trimmed.replay_id, trimmed.version)
        report = json.loads(storage.inner.get_bytes(prefix + replays.REPORT_FILE))
        assert report["source"] == "stems"
        view = replay_of(sessions, rid)
        assert view is not None and view.status == "ready"
        assert view.duration_seconds == pytest.approx(4.5, abs=0.001)

        # Clearing the trim: the untrimmed version again, decoded from the segments so that its
        # objects stay byte-identical to the first render's.
        mp3 = replays.output_key(first.replay_id, first.version, "mp3")
        before = storage.inner.get_bytes(mp3)
        with sessions() as session:
            replay = session.get(Replay, first.replay_id)
            assert replay is not None
            replay.trim_start, replay.trim_end = None, None
            session.commit()
        storage.read.clear()
        cleared = run_render(context, rid)
        assert cleared.action == "rendered" and cleared.version == first.version
        assert any(key.startswith(segments) for key in storage.read)
        assert storage.inner.get_bytes(mp3) == before
        view = replay_of(sessions, rid)
        assert view is not None and view.status == "ready"
        assert view.duration_seconds == pytest.approx(8.0, abs=0.03)
    finally:
        engine.dispose()

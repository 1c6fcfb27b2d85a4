"""``roomcast.postprod.render`` through a real redis-server and a real worker process: a stored
recording becomes a ready replay with every output stored; running it again changes nothing; bad
input fails the replay with a reason a host can read; a trim re-renders."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from api.replay_media import parse_timeline
from core import replays
from core.adapters.db import migrate
from core.adapters.db.engine import make_engine, make_session_factory
from core.adapters.db.models import Recording, RecordingSegment, RecordingTrack, Replay
from core.adapters.redis_process import RedisProcess
from core.adapters.storage_factory import build_storage
from core.settings import Settings
from core.storage import Storage
from tests.support.celery_worker import start_worker, stop_worker
from tests.workers.postprod_support import (
    ReplayView,
    enqueue_render,
    ensure_room,
    media_queue_idle,
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

ALL_KINDS = sorted(replays.OUTPUT_FILES)
RENDER_WITHIN = 120.0


@dataclass
class Env:
    settings: Settings
    sessions: sessionmaker[Session]
    storage: Storage
    worker: subprocess.Popen[bytes]
    host_id: str


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisProcess) -> Iterator[Env]:
    """One worker for the module (starting one costs seconds), on its own var directory."""
    redis_server.start()
    redis.Redis.from_url(redis_server.url).flushall()
    var = tmp_path_factory.mktemp("postprod-var")
    settings = worker_settings(var, redis_server.url)
    migrate.upgrade(settings.database_url)
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    worker = start_worker(redis_server.url, var)
    try:
        yield Env(settings, sessions, build_storage(settings), worker, ensure_room(sessions))
    finally:
        stop_worker(worker)
        engine.dispose()


def _render(env: Env, recording_id: str) -> ReplayView:
    enqueue_render(env.settings, recording_id)
    view = wait_for(lambda: settled(env.sessions, recording_id), RENDER_WITHIN, "the replay")
    assert env.worker.poll() is None
    return view


def _mp3_seconds(data: bytes, scratch: Path) -> float:
    path = scratch / "check.mp3"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        frames = sum(frame.samples for frame in container.decode(audio=0))
        return frames / container.streams.audio[0].sample_rate


def test_recording_becomes_a_ready_replay_and_a_second_run_changes_nothing(
    env: Env, tmp_path: Path
) -> None:
    rid = new_recording_id()
    manifest = record_room(tmp_path / "spool", rid, seconds=6.0)
    store_recording(env.storage, tmp_path / "spool", rid)

    view = _render(env, rid)
    assert view.status == "ready", view.failure_reason
    assert view.failure_reason is None
    assert view.duration_seconds == pytest.approx(6.0, abs=0.03)  # first sound .. last sound
    assert sorted(view.outputs) == ALL_KINDS
    version = replays.version_of(view.outputs["mp3"].key)
    assert version is not None
    for kind, spec in replays.OUTPUT_FILES.items():
        row = view.outputs[kind]
        assert row.key == replays.output_key(view.id, version, kind)
        assert row.content_type == spec.content_type
        assert env.storage.head(row.key).size == row.size > 0
    assert view.outputs["mp3"].key == f"replays/{view.id}/v{version}/audio.mp3"

    # The published loudness is measured on the encoded files: the podcast target.
    assert view.loudness is not None
    assert view.loudness["integrated_lufs"] == pytest.approx(-16.0, abs=0.5)
    assert float(view.loudness["true_peak_dbtp"]) <= -1.0  # type: ignore[arg-type]
    mp3_loudness = view.outputs["mp3"].loudness
    assert mp3_loudness is not None and mp3_loudness["integrated_lufs"] is not None

    # HLS: the playlist's segments are stored beside it; the API's timeline reader reads ours.
    prefix = replays.version_prefix(view.id, version)
    playlist = env.storage.get_bytes(view.outputs["hls"].key).decode()
    assert "#EXT-X-ENDLIST" in playlist
    for line in playlist.splitlines():
        if line and not line.startswith("#"):
            assert env.storage.exists(f"{prefix}hls/{line}")
    timeline = parse_timeline(env.storage.get_bytes(view.outputs["timeline"].key))
    assert {s.id: s.name for s in timeline.speakers} == {"p-hana": "Hana", "p-gil": "Gil"}
    assert timeline.turns and all(0.0 <= t.start < t.end <= 6.01 for t in timeline.turns)
    assert _mp3_seconds(env.storage.get_bytes(view.outputs["mp3"].key), tmp_path) == (
        pytest.approx(6.0, abs=0.1)
    )
    render_json = json.loads(env.storage.get_bytes(prefix + replays.REPORT_FILE))
    assert render_json["recording_id"] == rid

    # The live node made no Recording row: the task made it from the manifest.
    with env.sessions() as session:
        recording = session.get(Recording, rid)
        assert recording is not None and recording.status == "complete"
        assert recording.manifest_key == replays.manifest_key(rid)
        segments = session.scalar(
            sa.select(sa.func.count(RecordingSegment.id))
            .join(RecordingTrack, RecordingTrack.id == RecordingSegment.track_id)
            .where(RecordingTrack.recording_id == rid)
        )
    assert segments == sum(len(t.segments) for t in manifest.tracks)

    before = objects(env.storage, f"replays/{view.id}/")
    rows_before = output_rows(env.sessions, view.id)
    enqueue_render(env.settings, rid)
    wait_for(lambda: media_queue_idle(env.settings.redis_url), 60, "the second run")
    again = replay_of(env.sessions, rid)
    assert again is not None and again.status == "ready" and again.id == view.id
    assert objects(env.storage, f"replays/{view.id}/") == before  # same objects, untouched
    assert output_rows(env.sessions, view.id) == rows_before  # no duplicate rows
    with env.sessions() as session:
        assert session.scalar(sa.select(sa.func.count(Replay.id)).where(
            Replay.recording_id == rid)) == 1  # fmt: skip

    # Host edit: a trim re-renders into a new version; the old one is never half-replaced.
    with env.sessions() as session:
        replay = session.get(Replay, view.id)
        assert replay is not None
        replay.trim_start, replay.trim_end = 1.0, 5.0
        session.commit()
    enqueue_render(env.settings, rid)

    def rerendered() -> ReplayView | None:
        now = replay_of(env.sessions, rid)
        if now is None or now.status == "processing":
            return None
        return now if replays.version_of(now.outputs["mp3"].key) != version else None

    trimmed = wait_for(rerendered, RENDER_WITHIN, "the trimmed render")
    assert trimmed.status == "ready", trimmed.failure_reason
    assert trimmed.duration_seconds == pytest.approx(4.0, abs=0.03)
    assert sorted(trimmed.outputs) == ALL_KINDS
    assert _mp3_seconds(env.storage.get_bytes(trimmed.outputs["mp3"].key), tmp_path) == (
        pytest.approx(4.0, abs=0.1)
    )
    assert len(output_rows(env.sessions, view.id)) == len(ALL_KINDS)
    trimmed_timeline = parse_timeline(env.storage.get_bytes(trimmed.outputs["timeline"].key))
    assert all(t.end <= 4.01 for t in trimmed_timeline.turns)


def test_a_manifest_failing_its_schema_fails_the_replay_naming_the_field(
    env: Env, tmp_path: Path
) -> None:
    rid = new_recording_id()
    record_room(tmp_path / "spool", rid, seconds=3.0)
    manifest = json.loads((tmp_path / "spool" / "manifest.json").read_text())
    manifest["tracks"][1]["segments"][0]["duration"] = -5
    (tmp_path / "spool" / "manifest.json").write_text(json.dumps(manifest))
    store_recording(env.storage, tmp_path / "spool", rid)

    view = _render(env, rid)
    assert view.status == "failed"
    assert view.failure_reason is not None
    assert "invalid_manifest" in view.failure_reason
    assert "tracks[1].segments[0].duration" in view.failure_reason
    assert view.outputs == {}
    assert objects(env.storage, f"replays/{view.id}/") == {}


def test_a_missing_segment_fails_the_replay_naming_the_segment(env: Env, tmp_path: Path) -> None:
    rid = new_recording_id()
    record_room(tmp_path / "spool", rid, seconds=5.0)
    store_recording(env.storage, tmp_path / "spool", rid, skip="tracks/p-gil/00001.opus")

    view = _render(env, rid)
    assert view.status == "failed"
    assert view.failure_reason is not None
    assert f"recordings/{rid}/tracks/p-gil/00001.opus" in view.failure_reason
    assert "segment_missing" in view.failure_reason
    assert view.outputs == {}  # never a half-published replay
    assert objects(env.storage, f"replays/{view.id}/") == {}

"""S3 (moto's server over HTTP) goes down while recording: retries, then everything is stored."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from core import jobs
from core.adapters.storage_factory import build_storage
from core.recording.manifest import Manifest
from core.recording.timeline import RoomClock
from core.settings import Settings
from recorder.finalize import finalize_recording
from recorder.retry import RetryPolicy
from recorder.segment_writer import SegmentWriter
from recorder.spool import RecordingMeta, RecordingSpool
from recorder.uploader import Uploader
from tests.recorder.fake_jobs import RecordingJobQueue
from tests.recorder.opus_source import FRAME, decode_with_pyav, sine_packets
from tests.support.moto_server import MotoServer, s3_client

EPOCH = 50.0


def wait_until(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.02)
    return False


def test_storage_outage_during_recording_loses_nothing(
    s3_settings: Settings, moto_server: MotoServer, tmp_path: Path
) -> None:
    storage = build_storage(s3_settings)
    uploader = Uploader(storage, policy=RetryPolicy(initial_seconds=0.1, max_seconds=0.5))
    uploader.start()
    spool = RecordingSpool(tmp_path / "spool", "rec-outage")
    spool.create(RecordingMeta("rec-outage", "room-9", 1_700_000_000.0))
    writer = SegmentWriter(
        spool,
        RoomClock(1_700_000_000.0, EPOCH),
        segment_seconds=1.0,
        on_segment_closed=uploader.on_segment_closed,
        monotonic=lambda: 0.0,
    )
    writer.start()
    packets = sine_packets(5.0)

    def feed(first: int, last: int) -> None:
        for i in range(first, last):
            writer.submit("alice", 77, i, i * FRAME, EPOCH + 2 + i * 0.02, packets[i])

    moto_server.stop()
    feed(0, 160)  # 3.2 s: three segments close while storage is down
    assert wait_until(lambda: uploader.health().retries >= 2, 30)
    during = uploader.health()
    assert during.degraded and "storage unavailable" in (during.reason or "")
    assert not writer.health().degraded  # the room keeps recording
    written_during_outage = {
        i: spool.segment_path("alice", i).read_bytes() for i in range(3)
    }  # still in the spool: nothing is deleted before it is confirmed

    moto_server.start()  # moto forgets everything on restart: recreate the bucket
    s3_client(moto_server.endpoint_url).create_bucket(Bucket=s3_settings.storage.s3_bucket)
    feed(160, len(packets))
    cars = writer.close()
    assert uploader.wait_idle(90), uploader.health()
    health = uploader.health()
    assert not health.degraded and health.uploaded == 2 * len(cars) and not health.failed
    uploader.close(5)

    assert len(cars) == 5
    for car in cars:
        data = storage.get_bytes(car.key)
        assert hashlib.sha256(data).hexdigest() == car.sha256 and len(data) == car.size
        if car.index in written_during_outage:
            assert data == written_during_outage[car.index]
        copy = tmp_path / f"{car.index}.opus"
        copy.write_bytes(data)
        assert len(decode_with_pyav(copy)) == car.duration
        assert not spool.segment_path("alice", car.index).exists()
    assert sum(car.duration for car in cars) == len(packets) * FRAME

    queue = RecordingJobQueue()
    done = finalize_recording(spool, storage, queue, status="complete", end_offset=0)
    stored = Manifest.from_json(storage.get_bytes(done.manifest_key))
    assert [s.sha256 for s in stored.tracks[0].segments] == [car.sha256 for car in cars]
    assert queue.sent == [(jobs.POSTPROD_RENDER, ("rec-outage",), jobs.MEDIA_QUEUE)]
    assert not spool.directory.exists()

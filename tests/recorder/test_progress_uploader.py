"""Progress documents in the uploader's FIFO queue and the writer's watermark corner cases:
superseded documents, storage outages, files not stored (progress stops), a segment cut by a
disk error, and the last document written when a recording finishes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from core.adapters.storage_local import LocalStorage
from core.errors import StorageUnavailable
from core.recording.manifest import build_manifest
from core.recording.progress import RecordingProgress, progress_key
from core.recording.timeline import RoomClock
from core.storage import ObjectInfo
from recorder.finalize import final_progress, publish_progress_now
from recorder.retry import RetryPolicy
from recorder.segment_writer import SegmentWriter
from recorder.spool import RecordingMeta, RecordingSpool
from recorder.uploader import Uploader, UploadItem
from tests.recorder.opus_source import FRAME, RATE, sine_packets

FAST = RetryPolicy(initial_seconds=0.01, max_seconds=0.05, permanent_attempts=2)
WHEN = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
KEY = progress_key("rec1")


class FlakyBytesStorage(LocalStorage):
    """Unavailable for the first ``failures`` byte puts; counts them."""

    def __init__(self, root: Path, failures: int) -> None:
        super().__init__(root)
        self.failures = failures
        self.byte_puts = 0

    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> ObjectInfo:
        self.byte_puts += 1
        if self.byte_puts <= self.failures:
            raise StorageUnavailable("down for the test")
        return super().put_bytes(key, data, content_type=content_type)


def stored_progress(storage: LocalStorage) -> RecordingProgress:
    return RecordingProgress.from_json(storage.get_bytes(KEY))


def test_a_superseded_document_is_skipped_and_an_outage_retried(tmp_path: Path) -> None:
    storage = FlakyBytesStorage(tmp_path / "store", failures=2)
    uploader = Uploader(storage, policy=FAST)
    assert uploader.on_progress(RecordingProgress("rec1", 48_000, WHEN))
    assert uploader.on_progress(RecordingProgress("rec1", 96_000, WHEN))
    uploader.start()
    assert uploader.close(timeout=10)
    assert stored_progress(storage).watermark == 96_000
    health = uploader.health()
    assert (health.progress_written, health.retries, storage.byte_puts) == (1, 2, 3)
    assert not health.degraded  # the outage is over


def test_progress_stops_once_a_file_could_not_be_queued(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    uploader = Uploader(storage, policy=FAST, max_pending=1)
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text("{}")
    second.write_text("{}")
    assert uploader.submit(UploadItem(first, "recordings/rec1/a.json"))
    assert not uploader.submit(UploadItem(second, "recordings/rec1/b.json"))
    # b.json is only in the spool now: a watermark above it would be a lie.
    assert not uploader.on_progress(RecordingProgress("rec1", 48_000, WHEN))
    uploader.start()
    assert uploader.close(timeout=10)
    assert not storage.exists(KEY)
    assert "b.json" in (uploader.health().progress_stopped or "")


def test_progress_stops_once_a_file_was_given_up_on(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    uploader = Uploader(storage, policy=FAST)
    damaged = tmp_path / "seg.opus"
    damaged.write_bytes(b"not what the sidecar says")
    assert uploader.submit(UploadItem(damaged, "recordings/rec1/seg.opus", 25, "0" * 64))
    assert uploader.on_progress(RecordingProgress("rec1", 48_000, WHEN))  # queued behind it
    uploader.start()
    assert uploader.close(timeout=10)
    health = uploader.health()
    assert health.failed and "seg.opus" in (health.progress_stopped or "")
    assert not storage.exists(KEY) and damaged.exists()


def test_a_segment_cut_by_a_disk_error_holds_the_watermark_below_it(tmp_path: Path) -> None:
    spool = RecordingSpool(tmp_path / "spool", "rec1")
    spool.create(RecordingMeta("rec1", "room1", 1_700_000_000.0))
    published: list[RecordingProgress] = []
    writer = SegmentWriter(
        spool,
        RoomClock(1_700_000_000.0, 0.0),
        segment_seconds=1.0,
        on_progress=published.append,
        monotonic=lambda: 0.0,
    )
    writer.start()
    alice, bob = sine_packets(5.0, 440), sine_packets(1.0, 660)

    def feed(start: int, stop: int) -> None:
        for i in range(start, stop):
            writer.submit("alice", 1, i, i * FRAME, i * 0.02, alice[i])
            j = i - 100  # Bob starts at 2 s
            if 0 <= j < len(bob):
                writer.submit("bob", 2, j, j * FRAME, i * 0.02, bob[j])

    feed(0, 125)
    bob_open = spool.sidecar_path("bob", 0)
    deadline = time.monotonic() + 10
    while (writer.health().queued or not bob_open.exists()) and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)
    # Closing Bob's segment will fail: its sidecar's temporary file name is taken.
    bob_open.with_name("00000.json.tmp").mkdir()
    writer.end_track("bob")
    feed(125, 250)
    cars = writer.close()
    assert "disk error" in (writer.health().reason or "")
    # Bob's first segment stays in the spool (for the final sweep); he resumes in a new one.
    assert [(c.participant_id, c.index) for c in cars] == [("alice", i) for i in range(5)] + [
        ("bob", 1)
    ]
    marks = [p.watermark for p in published]
    assert marks == sorted(marks) and len(marks) >= 4
    bob_start = 2 * RATE
    assert marks[1] > 0 and max(marks) == bob_start - RATE  # never past the cut segment


def test_finishing_publishes_a_watermark_covering_the_recording(tmp_path: Path) -> None:
    manifest = build_manifest(
        recording_id="rec1", room_id="room1", epoch=0.0, sidecars=[], status="complete"
    )
    assert final_progress(manifest, 5 * RATE, WHEN) == RecordingProgress("rec1", 5 * RATE, WHEN)
    assert final_progress(manifest, None, WHEN).watermark == 0
    storage = FlakyBytesStorage(tmp_path / "store", failures=1)
    slept: list[float] = []
    doc = RecordingProgress("rec1", 7 * RATE, WHEN)
    assert publish_progress_now(storage, doc, policy=FAST, sleep=slept.append)
    assert stored_progress(storage) == doc and len(slept) == 1
    down = FlakyBytesStorage(tmp_path / "down", failures=10**6)
    assert not publish_progress_now(
        down, doc, policy=FAST, deadline_seconds=0.0, sleep=slept.append
    )  # best effort: logged, not raised

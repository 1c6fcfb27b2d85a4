"""The spool uploader: segments land confirmed, local audio goes only after confirmation."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from core.adapters.storage_local import LocalStorage
from core.errors import StorageUnavailable
from core.recording.sidecar import SegmentSidecar
from core.recording.timeline import RoomClock
from core.storage import ObjectInfo
from recorder.segment_writer import SegmentWriter
from recorder.spool import RecordingMeta, RecordingSpool
from recorder.uploader import (
    RetryPolicy,
    Uploader,
    UploadItem,
    backoff_delay,
    confirm_stored,
    digest_file,
    etag_is_md5,
    upload_now,
)
from tests.recorder.opus_source import FRAME, decode_with_pyav, sine_packets

EPOCH = 100.0
FAST = RetryPolicy(initial_seconds=0.01, max_seconds=0.05, permanent_attempts=2)


class FlakyStorage(LocalStorage):
    """Our Storage port on a directory, unavailable for the first ``failures`` puts."""

    def __init__(self, root: Path, failures: int) -> None:
        super().__init__(root)
        self.failures = failures
        self.puts = 0

    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> ObjectInfo:
        self.puts += 1
        if self.puts <= self.failures:
            raise StorageUnavailable("down for the test")
        return super().put_file(key, path, content_type=content_type)


class CorruptingStorage(LocalStorage):
    """Stores a different payload of the same size: only a checksum can tell."""

    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> ObjectInfo:
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        return self.put_bytes(key, bytes(data), content_type=content_type)


@given(
    attempt=st.integers(min_value=0, max_value=200),
    unit=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_backoff_is_jittered_below_a_capped_exponential(attempt: int, unit: float) -> None:
    policy = RetryPolicy(initial_seconds=0.5, max_seconds=30.0)
    ceiling = min(30.0, 0.5 * 2.0**attempt)
    delay = backoff_delay(policy, attempt, unit)
    assert 0.0 <= delay <= ceiling
    assert delay == unit * ceiling


def test_etag_kinds() -> None:
    assert etag_is_md5("d41d8cd98f00b204e9800998ecf8427e")
    assert not etag_is_md5("d41d8cd98f00b204e9800998ecf8427e-2")  # multipart
    assert not etag_is_md5("1a2b-3c-4d")  # the local backend's version tag


def record(
    root: Path, uploader: Uploader, seconds: float
) -> tuple[RecordingSpool, list[SegmentSidecar]]:
    spool = RecordingSpool(root, "rec1")
    spool.create(RecordingMeta("rec1", "room1", 1_700_000_000.0))
    writer = SegmentWriter(
        spool,
        RoomClock(1_700_000_000.0, EPOCH),
        segment_seconds=1.5,
        on_segment_closed=uploader.on_segment_closed,
        monotonic=lambda: 0.0,
    )
    writer.start()
    for i, payload in enumerate(sine_packets(seconds)):
        writer.submit("alice", 7, i, i * FRAME, EPOCH + 1 + i * 0.02, payload)
    return spool, writer.close()


def test_segments_land_confirmed_and_only_then_leave_the_spool(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    uploader = Uploader(storage, policy=FAST)
    uploader.start()
    spool, cars = record(tmp_path / "spool", uploader, 4.0)
    assert uploader.wait_idle(30)
    assert len(cars) == 3
    for car in cars:
        stored = storage.path_for(car.key)
        data = stored.read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (car.size, car.sha256)
        assert len(decode_with_pyav(stored)) == car.duration
        assert not spool.segment_path("alice", car.index).exists()  # audio deleted
        assert spool.sidecar_path("alice", car.index).exists()  # sidecar kept for the manifest
        sidecar_key = car.key.removesuffix(".opus") + ".json"
        assert SegmentSidecar.from_json(storage.get_bytes(sidecar_key)) == car
    health = uploader.health()
    assert not health.degraded and health.uploaded == 6 and health.retries == 0
    assert uploader.close(5)


def test_unavailable_storage_is_retried_and_reported_degraded(tmp_path: Path) -> None:
    storage = FlakyStorage(tmp_path / "store", failures=4)
    slow = RetryPolicy(initial_seconds=0.2, max_seconds=0.2)
    uploader = Uploader(storage, policy=slow, unit_random=lambda: 0.999)
    uploader.start()
    spool, cars = record(tmp_path / "spool", uploader, 2.0)
    time.sleep(0.1)
    during = uploader.health()
    assert during.degraded and "storage unavailable" in (during.reason or "")
    assert spool.segment_path("alice", 0).exists()  # nothing deleted while storage is down
    assert uploader.wait_idle(30)
    after = uploader.health()
    assert not after.degraded and after.retries == 4 and after.uploaded == 2 * len(cars)
    for car in cars:
        assert storage.head(car.key).size == car.size
    uploader.close(5)


def test_a_stored_copy_that_differs_keeps_the_local_file(tmp_path: Path) -> None:
    storage = CorruptingStorage(tmp_path / "store")
    audio = tmp_path / "seg.opus"
    audio.write_bytes(b"OggS" + bytes(range(200)))
    digest = digest_file(audio)
    uploader = Uploader(storage, policy=FAST)
    uploader.start()
    item = UploadItem(audio, "recordings/r/seg.opus", digest.size, digest.sha256, delete_after=True)
    assert uploader.submit(item)
    assert uploader.wait_idle(10)
    health = uploader.health()
    assert audio.exists() and health.degraded and health.uploaded == 0
    assert "sha256" in health.failed[0] and str(audio) in health.failed[0]
    assert storage.head(item.key).size == digest.size  # same size: only the checksum caught it
    assert confirm_stored(storage, item.key, digest) is not None
    uploader.close(5)


def test_a_damaged_spool_file_is_not_uploaded(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    audio = tmp_path / "seg.opus"
    audio.write_bytes(b"changed after the sidecar was written")
    item = UploadItem(audio, "recordings/r/seg.opus", 10, "0" * 64, delete_after=True)
    uploader = Uploader(storage, policy=FAST)
    uploader.start()
    uploader.submit(item)
    assert uploader.wait_idle(10)
    assert audio.exists() and not storage.exists(item.key)
    assert "damaged" in uploader.health().failed[0]
    uploader.close(5)


def test_a_full_queue_never_blocks_and_leaves_files_for_the_sweep(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    uploader = Uploader(storage, max_pending=2)  # not started: nothing drains
    files = []
    for i in range(5):
        path = tmp_path / f"{i}.json"
        path.write_text("{}")
        files.append(UploadItem(path, f"recordings/r/{i}.json"))
    started = time.perf_counter()
    accepted = [uploader.submit(item) for item in files]
    assert time.perf_counter() - started < 0.05
    assert accepted == [True, True, False, False, False]
    health = uploader.health()
    assert health.degraded and health.overflowed == 3 and health.pending == 2
    assert upload_now(storage, files[2:], policy=FAST) == 3  # the sweep's path
    assert all(storage.exists(item.key) for item in files[2:])
    assert all(item.path.exists() for item in files)  # not audio: kept until the manifest


def test_upload_now_gives_up_at_its_deadline(tmp_path: Path) -> None:
    storage = FlakyStorage(tmp_path / "store", failures=10**6)
    path = tmp_path / "a.json"
    path.write_text("{}")
    clock = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    try:
        upload_now(
            storage,
            [UploadItem(path, "recordings/r/a.json")],
            policy=RetryPolicy(initial_seconds=1.0, max_seconds=8.0),
            deadline_seconds=20.0,
            unit_random=lambda: 0.5,
            sleep=sleep,
            monotonic=lambda: clock[0],
        )
    except StorageUnavailable:
        pass
    else:
        raise AssertionError("upload_now should re-raise once its deadline passes")
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert path.exists()

"""progress.json through the real SegmentWriter and Uploader to local storage: whenever it says
W, every segment starting before W is stored (audio and sidecar), and W advances as segments
close; finishing publishes a watermark covering the whole recording."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.adapters.storage_local import LocalStorage
from core.recording.manifest import Manifest, build_manifest
from core.recording.progress import (
    RecordingProgress,
    progress_key,
    provisional_manifest,
    segments_before,
)
from core.recording.timeline import RoomClock
from core.storage import ObjectInfo
from recorder.finalize import audio_end, finalize_recording
from recorder.segment_writer import SegmentWriter
from recorder.spool import RecordingMeta, RecordingSpool
from recorder.uploader import Uploader
from tests.recorder.fake_jobs import RecordingJobQueue
from tests.recorder.opus_source import FRAME, RATE, sine_packets

EPOCH_MONO = 500.0
EPOCH_UNIX = 1_700_000_000.0
PREFIX = "recordings/rec1/"


@dataclass(frozen=True)
class Seen:
    """What storage held at the moment a progress document was written."""

    progress: RecordingProgress
    stored: frozenset[str]
    sidecars: tuple[bytes, ...]
    edge: float  #: arrival of the last packet the test had submitted (room seconds)


class WatchingStorage(LocalStorage):
    """Local storage whose uploads lag (so the writer runs ahead of them) and which records
    what it holds whenever progress.json is written."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.seen: list[Seen] = []
        self.edge = 0.0
        self._lock = threading.Lock()

    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> ObjectInfo:
        time.sleep(0.01)
        return super().put_file(key, path, content_type=content_type)

    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> ObjectInfo:
        info = super().put_bytes(key, data, content_type=content_type)
        if key == progress_key("rec1"):
            keys = frozenset(o.key for o in self.list(PREFIX))
            cars = tuple(
                self.get_bytes(k)
                for k in sorted(keys)
                if k.startswith(PREFIX + "tracks/") and k.endswith(".json")
            )
            with self._lock:
                self.seen.append(Seen(RecordingProgress.from_json(data), keys, cars, self.edge))
        return info


def speaker(
    who: str, ssrc: int, seconds: float, start: float, freq: float
) -> list[tuple[float, str, int, int, int, bytes]]:
    out = []
    for i, payload in enumerate(sine_packets(seconds, freq)):
        jitter = 0.0 if i == 3 else 0.005 * (i % 4)  # packet 3 is the least delayed
        out.append((EPOCH_MONO + start + i * 0.02 + jitter, who, ssrc, i, i * FRAME, payload))
    return out


def _settle(writer: SegmentWriter, uploader: Uploader) -> None:
    """Let the writer drain its queue and the uploader catch up (a live room's pace)."""
    deadline = time.monotonic() + 10
    while writer.health().queued and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)
    assert uploader.wait_idle(10)


@pytest.mark.parametrize("paced", [True, False], ids=["live-pace", "writer-ahead"])
def test_progress_watermark_only_covers_stored_segments(tmp_path: Path, paced: bool) -> None:
    storage = WatchingStorage(tmp_path / "store")
    spool = RecordingSpool(tmp_path / "spool", "rec1")
    spool.create(RecordingMeta("rec1", "room1", EPOCH_UNIX))
    uploader = Uploader(storage)
    writer = SegmentWriter(
        spool,
        RoomClock(EPOCH_UNIX, EPOCH_MONO),
        segment_seconds=1.0,
        on_segment_closed=uploader.on_segment_closed,
        on_progress=uploader.on_progress,
        monotonic=lambda: EPOCH_MONO,
    )
    uploader.start()
    writer.start()
    # Alice talks from 0.5 s to 6.5 s, Bob from 2 s to 6 s, Carol joins late at 4.5 s;
    # the live plane hands packets over in arrival order.
    packets = sorted(
        speaker("alice", 11, 6.0, 0.5, 440)
        + speaker("bob", 22, 4.0, 2.0, 660)
        + speaker("carol", 33, 2.0, 4.5, 880)
    )
    for arrival, who, ssrc, seq, ts, payload in packets:
        assert writer.submit(who, ssrc, seq, ts, arrival, payload)
        storage.edge = arrival - EPOCH_MONO
        if who == "bob" and seq == 149:
            assert writer.end_track("bob")  # Bob leaves the stage at 5 s
        if paced and seq % 25 == 0 and who == "alice":
            _settle(writer, uploader)
    cars = writer.close()
    assert uploader.close(timeout=30.0)
    health = uploader.health()
    assert not health.degraded and health.progress_stopped is None
    # Unpaced, the writer runs ahead and queued documents supersede one another.
    assert health.progress_written == len(storage.seen) >= (5 if paced else 1)

    final = Manifest.from_json(
        build_manifest(
            recording_id="rec1", room_id="room1", epoch=EPOCH_UNIX, sidecars=cars, status="complete"
        ).to_json()
    )
    segments = [(t.participant_id, s) for t in final.tracks for s in t.segments]
    assert len(segments) == 6 + 4 + 2
    marks = [seen.progress.watermark for seen in storage.seen]
    assert marks == sorted(marks) and len(set(marks)) >= (5 if paced else 1), marks
    # It ends one margin short of the last packet handled (nothing is open any more).
    assert marks[-1] == round((packets[-1][0] - EPOCH_MONO) * RATE) - RATE
    for seen in storage.seen:
        w = seen.progress.watermark
        assert seen.progress.recording_id == "rec1" and seen.progress.sample_rate == RATE
        below = [(pid, s) for pid, s in segments if s.start_offset < w]
        for _, segment in below:
            assert segment.key in seen.stored, (w, segment.key)
            assert segment.key.removesuffix(".opus") + ".json" in seen.stored
        # The colleague's view: the manifest the stored sidecars imply has the same set below W.
        implied = provisional_manifest(
            recording_id="rec1", room_id="room1", epoch=EPOCH_UNIX, sidecars=seen.sidecars
        )
        assert set(segments_before(implied, w)) == {(pid, s.index) for pid, s in below}
    if paced:
        # W trails the live edge by at most a segment (1 s) plus the margin (1 s), plus the
        # 0.5 s the test submits between pauses: a live render can keep up with the room.
        for seen in storage.seen:
            assert seen.progress.watermark >= (seen.edge - 2.6) * RATE, seen

    jobs = RecordingJobQueue()
    done = finalize_recording(spool, storage, jobs, status="complete", end_offset=7 * RATE)
    last = RecordingProgress.from_json(storage.get_bytes(progress_key("rec1")))
    assert last.watermark == max(audio_end(done.manifest), 7 * RATE) == 7 * RATE
    assert storage.exists(done.manifest_key)

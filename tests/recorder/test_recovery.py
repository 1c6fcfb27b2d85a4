"""Finalizing a recording, and a node killed with SIGKILL mid-segment then recovered."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest

from core import jobs
from core.adapters.storage_local import LocalStorage
from core.errors import DependencyUnavailable
from core.recording.manifest import Interval, Manifest, Marker, StageInterval
from core.recording.timeline import RoomClock
from recorder.finalize import (
    finalize_recording,
    fold_events,
    marker_event,
    recording_event,
    stage_event,
)
from recorder.recovery import recover_spool
from recorder.retry import RetryPolicy
from recorder.segment_writer import SegmentWriter
from recorder.spool import RecordingMeta, RecordingSpool
from tests.recorder.fake_jobs import RecordingJobQueue
from tests.recorder.opus_source import FRAME, RATE, decode_with_pyav, sine_packets

REPO = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(initial_seconds=0.01, max_seconds=0.05)


def test_fold_events_golden() -> None:
    events = [
        recording_event(True, 100),
        stage_event("alice", True, 100),
        marker_event(500, "Intro"),
        {"type": "marker", "offset": -3, "title": "bad offset"},
        {"type": "unknown", "offset": 7},
        stage_event("bob", True, 900),
        stage_event("alice", False, 1_000),
        recording_event(True, 1_100),  # already on: ignored
        recording_event(False, 2_000),
        marker_event(300, "Earlier"),
        recording_event(True, 3_000),
    ]
    folded = fold_events(events, end=4_000)
    assert folded.recording_intervals == (Interval(100, 2_000), Interval(3_000, 4_000))
    assert folded.markers == (Marker(500, "Intro"), Marker(300, "Earlier"))
    assert folded.stage_intervals == (
        StageInterval("alice", 100, 1_000),
        StageInterval("bob", 900, 4_000),
    )
    assert folded.ignored == 2
    still_open = fold_events(events, end=None)
    assert still_open.recording_intervals[-1] == Interval(3_000, None)


def write_recording(root: Path, recording_id: str, seconds: float) -> RecordingSpool:
    spool = RecordingSpool(root, recording_id)
    spool.create(RecordingMeta(recording_id, "room1", 1_700_000_000.0))
    spool.append_event(recording_event(True, RATE))
    spool.append_event(stage_event("alice", True, RATE))
    spool.append_event(marker_event(2 * RATE, "Part two"))
    writer = SegmentWriter(
        spool, RoomClock(1_700_000_000.0, 0.0), segment_seconds=1.5, monotonic=lambda: 0.0
    )
    writer.start()
    for i, payload in enumerate(sine_packets(seconds)):
        writer.submit("alice", 3, i, i * FRAME, 1.0 + i * 0.02, payload)
    writer.close()
    return spool


def test_finalize_stores_everything_then_enqueues_postprod(tmp_path: Path) -> None:
    storage, queue = LocalStorage(tmp_path / "store"), RecordingJobQueue()
    spool = write_recording(tmp_path / "spool", "rec1", 3.0)
    done = finalize_recording(spool, storage, queue, status="complete", end_offset=5 * RATE)
    assert queue.sent == [(jobs.POSTPROD_RENDER, ("rec1",), jobs.MEDIA_QUEUE)]
    assert done.job_id == "job-1" and done.manifest_key == "recordings/rec1/manifest.json"
    stored = Manifest.from_json(storage.get_bytes(done.manifest_key))
    assert stored == done.manifest and stored.status == "complete"
    assert stored.recording_intervals == (Interval(RATE, 5 * RATE),)
    assert stored.markers == (Marker(2 * RATE, "Part two"),)
    assert stored.stage_intervals == (StageInterval("alice", RATE, 5 * RATE),)
    (track,) = stored.tracks
    assert sum(s.duration for s in track.segments) == 150 * FRAME
    for segment in track.segments:
        assert storage.head(segment.key).size == segment.size
    assert storage.exists("recordings/rec1/events.jsonl")
    assert not spool.directory.exists()  # cleared only after all of the above


def test_a_broker_outage_keeps_the_spool_and_recovery_finishes_it(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    spool = write_recording(tmp_path / "spool", "rec2", 2.0)
    with pytest.raises(DependencyUnavailable):
        finalize_recording(spool, storage, RecordingJobQueue(down=True), status="complete")
    assert spool.manifest_path.exists() and spool.directory.exists()

    queue = RecordingJobQueue()
    (result,) = recover_spool(tmp_path / "spool", storage, queue, policy=FAST)
    # The manifest written before the outage is the one published: still "complete".
    assert (result.status, result.error, result.segments) == ("complete", None, 2)
    assert queue.sent == [(jobs.POSTPROD_RENDER, ("rec2",), jobs.MEDIA_QUEUE)]
    assert not spool.directory.exists()


CHILD = textwrap.dedent(
    """
    import struct, sys, time
    from pathlib import Path
    from core.adapters.storage_local import LocalStorage
    from core.recording.timeline import RoomClock
    from recorder.finalize import marker_event, recording_event, stage_event
    from recorder.segment_writer import SegmentWriter
    from recorder.spool import RecordingMeta, RecordingSpool
    from recorder.uploader import Uploader

    spool_root, store, packets_file = map(Path, sys.argv[1:4])
    data, packets, at = packets_file.read_bytes(), [], 0
    while at < len(data):
        (n,) = struct.unpack_from("<H", data, at)
        packets.append(data[at + 2 : at + 2 + n])
        at += 2 + n
    spool = RecordingSpool(spool_root, "rec-crash")
    spool.create(RecordingMeta("rec-crash", "room-1", 1_700_000_000.0))
    start = time.monotonic()
    clock = RoomClock(1_700_000_000.0, start - 1.0)
    spool.append_event(recording_event(True, clock.samples_at(start)))
    spool.append_event(stage_event("alice", True, clock.samples_at(start)))
    uploader = Uploader(LocalStorage(store))
    uploader.start()
    writer = SegmentWriter(
        spool, clock, segment_seconds=2.0, on_segment_closed=uploader.on_segment_closed
    )
    writer.start()
    for i, payload in enumerate(packets):
        delay = start + i * 0.02 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        writer.submit("alice", 4242, i, i * 960, time.monotonic(), payload)
        if i == 120:
            spool.append_event(marker_event(clock.samples_at(time.monotonic()), "Chapter 2"))
        print(i + 1, flush=True)
    time.sleep(600)
    """
)


def decode_in_sequence(payloads: list[bytes]) -> np.ndarray:
    """Decode Opus packets with one decoder, as a worker decodes a stream's segments in turn."""
    codec = av.CodecContext.create("libopus", "r")
    codec.sample_rate = RATE
    codec.layout = "mono"
    out = []
    for payload in payloads:
        for frame in codec.decode(av.Packet(payload)):
            out.append(frame.to_ndarray().reshape(-1))
    return np.concatenate(out)


def ogg_payloads(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def test_sigkill_mid_segment_then_recovery_keeps_all_but_the_last_second(tmp_path: Path) -> None:
    packets = sine_packets(8.0, 330.0)
    packets_file = tmp_path / "packets.bin"
    packets_file.write_bytes(b"".join(struct.pack("<H", len(p)) + p for p in packets))
    spool_root, store = tmp_path / "spool", tmp_path / "store"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(spool_root), str(store), str(packets_file)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        for line in child.stdout:
            if int(line) >= 275:  # 5.5 s fed: segments 0 and 1 closed, segment 2 half written
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        rest, errors = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, errors
    fed = int((rest.split() or [line])[-1]) + 1  # at most one submitted after the last print
    spool = RecordingSpool(spool_root, "rec-crash")
    storage = LocalStorage(store)
    # Segment 0 closed ~3.5 s before the kill: uploaded, confirmed and deleted by the live node.
    assert storage.exists(spool.segment_key("alice", 0))
    assert not spool.segment_path("alice", 0).exists()

    queue = RecordingJobQueue()
    (result,) = recover_spool(spool_root, storage, queue, policy=FAST)
    assert result.error is None and result.status == "interrupted"
    assert result.recovered_segments == 1 and result.segments == 3
    assert queue.sent == [(jobs.POSTPROD_RENDER, ("rec-crash",), jobs.MEDIA_QUEUE)]
    assert not spool.directory.exists()

    manifest = Manifest.from_json(storage.get_bytes("recordings/rec-crash/manifest.json"))
    assert manifest.status == "interrupted"
    (track,) = manifest.tracks
    end = track.segments[-1].start_offset + track.segments[-1].duration
    (interval,) = manifest.recording_intervals
    assert interval.start == RATE and interval.end == end  # closed at what survived
    assert [m.title for m in manifest.markers] == ["Chapter 2"]
    assert manifest.stage_intervals == (StageInterval("alice", RATE, end),)

    payloads: list[bytes] = []
    for segment in track.segments:
        path = tmp_path / f"stored-{segment.index}.opus"
        storage.download_file(segment.key, path)
        assert len(decode_with_pyav(path)) == segment.duration  # each segment decodes alone
        payloads += ogg_payloads(path)
    kept = len(payloads)
    assert kept * FRAME == sum(s.duration for s in track.segments)
    assert fed - kept <= 50, f"lost {fed - kept} packets (> 1 s) before the kill"
    assert payloads == packets[:kept]  # byte for byte as fed
    assert np.array_equal(decode_in_sequence(payloads), decode_in_sequence(packets[:kept]))

"""The threaded segment writer: segments at their true offsets, bounded queue, disk errors."""

from __future__ import annotations

import hashlib
import time
from itertools import pairwise
from pathlib import Path

from aiortc.rtp import RtpPacket

from core.recording.manifest import Manifest, build_manifest
from core.recording.sidecar import SegmentSidecar
from core.recording.timeline import RoomClock
from recorder.segment_writer import SegmentWriter
from recorder.spool import RecordingMeta, RecordingSpool
from tests.recorder.opus_source import FRAME, RATE, decode_with_pyav, sine_packets

EPOCH = 500.0


def make_writer(root: Path, **kwargs: object) -> tuple[SegmentWriter, RecordingSpool]:
    spool = RecordingSpool(root, "rec1")
    spool.create(RecordingMeta("rec1", "room1", 1_700_000_000.0))
    clock = RoomClock(1_700_000_000.0, EPOCH)
    writer = SegmentWriter(spool, clock, segment_seconds=2.0, monotonic=lambda: 0.0, **kwargs)  # type: ignore[arg-type]
    return writer, spool


def send(
    writer: SegmentWriter,
    who: str,
    ssrc: int,
    packets: list[bytes],
    start: float,
    seq0: int = 0,
    ts0: int = 0,
    skip: frozenset[int] = frozenset(),
    swap: int | None = None,
) -> None:
    order = list(range(len(packets)))
    if swap is not None:
        order[swap], order[swap + 1] = order[swap + 1], order[swap]
    for i in order:
        if i in skip:
            continue
        # Arrival jitter of up to 15 ms; packet 3 arrives with no delay.
        jitter = 0.0 if i == 3 else 0.005 * (i % 4)
        writer.submit(
            who,
            ssrc,
            (seq0 + i) % 65536,
            (ts0 + i * FRAME) % 2**32,
            start + i * 0.02 + jitter,
            packets[i],
        )


def test_tracks_land_at_their_true_offsets_and_decode_to_their_durations(tmp_path: Path) -> None:
    closed: list[SegmentSidecar] = []
    writer, spool = make_writer(tmp_path, on_segment_closed=lambda car, path: closed.append(car))
    writer.start()
    alice, bob = sine_packets(5.0, 440), sine_packets(3.0, 660)
    writer.set_display_name("alice", "Alice")
    # Alice joins late (3 s), loses two packets and has two swapped, wraps seq and timestamp.
    send(
        writer,
        "alice",
        11,
        alice,
        EPOCH + 3.0,
        seq0=65_500,
        ts0=2**32 - 10 * FRAME,
        skip=frozenset({100, 101}),
        swap=30,
    )
    send(writer, "bob", 22, bob, EPOCH + 0.5)
    writer.end_track("bob")
    # Bob rejoins with a new SSRC and timestamp base at 6 s.
    send(writer, "bob", 33, bob[:50], EPOCH + 6.0, seq0=7, ts0=99_999)
    cars = writer.close()
    assert len(closed) == len(cars) and not writer.health().degraded

    manifest = build_manifest(
        recording_id="rec1",
        room_id="room1",
        epoch=1_700_000_000.0,
        sidecars=cars,
        status="complete",
    )
    manifest = Manifest.from_json(manifest.to_json())
    tracks = {t.participant_id: t for t in manifest.tracks}
    a, b = tracks["alice"].segments, tracks["bob"].segments
    assert tracks["alice"].display_name == "Alice"
    assert a[0].start_offset == 3 * RATE and [s.stream for s in a] == [0, 0, 0]
    assert sum(s.duration for s in a) == len(alice) * FRAME
    for previous, segment in pairwise(a):
        assert segment.start_offset == previous.start_offset + previous.duration
    assert sum(s.lost_packets for s in a) == 2
    assert [(g.participant_id, g.kind, g.start_offset, g.duration) for g in manifest.gaps] == [
        ("alice", "loss", 3 * RATE + 100 * FRAME, 2 * FRAME)
    ]
    assert b[0].start_offset == RATE // 2
    assert [s.stream for s in b] == [0, 0, 1] and b[2].start_offset == 6 * RATE
    for segment in a + b:
        path = spool.directory / segment.key.removeprefix("recordings/rec1/")
        data = path.read_bytes()
        assert (segment.size, segment.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert len(decode_with_pyav(path)) == segment.duration
    on_disk = SegmentSidecar.from_json(spool.sidecar_path("alice", 0).read_bytes())
    assert on_disk.state == "closed" and len(on_disk.arrivals) == on_disk.packets


def test_full_queue_drops_counts_and_reports_without_blocking(tmp_path: Path) -> None:
    writer, _ = make_writer(tmp_path, queue_packets=8)
    packets = sine_packets(0.5)
    started = time.perf_counter()
    results = [
        writer.submit("alice", 1, i, i * FRAME, EPOCH + i * 0.02, p) for i, p in enumerate(packets)
    ]
    assert time.perf_counter() - started < 0.1
    health = writer.health()
    assert results.count(False) == len(packets) - 8 == health.dropped_packets
    assert health.degraded and "queue full" in (health.reason or "")
    writer.start()
    (car,) = writer.close()
    assert car.packets == 8


def test_disk_error_degrades_without_raising(tmp_path: Path) -> None:
    writer, spool = make_writer(tmp_path)
    (spool.directory / "tracks").write_text("not a directory")
    writer.start()
    send(writer, "alice", 1, sine_packets(1.0), EPOCH + 1)
    assert writer.close() == []
    health = writer.health()
    assert health.degraded and "disk error" in (health.reason or "")


def test_on_rtp_takes_aiortc_packets(tmp_path: Path) -> None:
    writer, _ = make_writer(tmp_path)
    writer.start()
    for i, payload in enumerate(sine_packets(0.4)):
        packet = RtpPacket(payload_type=111, sequence_number=i, timestamp=i * FRAME, ssrc=9)
        packet.payload = payload
        assert writer.on_rtp("carol", packet, EPOCH + 2 + i * 0.02)
    (car,) = writer.close()
    assert (car.participant_id, car.ssrc, car.packets, car.anchor) == ("carol", 9, 20, 2 * RATE)

"""A track's segment files and placement: sidecar first, sealed with its hash, anchor floors."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import pytest

from core.recording.sidecar import SegmentSidecar
from core.recording.timeline import AudioPacket, RoomClock, TrackTimeline
from recorder.ogg_opus import read_pages
from recorder.spool import RecordingMeta, RecordingSpool
from recorder.track_state import TrackState
from tests.recorder.opus_source import FRAME, RATE, decode_with_pyav, sine_packets


def packet(payload: bytes, *, stream: int, timestamp: int, arrival: int) -> AudioPacket:
    return AudioPacket(stream, timestamp // FRAME, timestamp, timestamp, FRAME, arrival, payload)


def make_track() -> TrackState:
    return TrackState(TrackTimeline(RoomClock(1_700_000_000.0, 0.0)))


def make_spool(root: Path) -> RecordingSpool:
    spool = RecordingSpool(root, "rec1")
    spool.create(RecordingMeta("rec1", "room1", 1_700_000_000.0))
    return spool


def test_a_segment_is_created_sidecar_first_and_sealed_with_its_hash(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    track = make_track()
    track.ssrc = 7
    payloads = sine_packets(0.5)
    first = packet(payload=payloads[0], stream=0, timestamp=0, arrival=10 * RATE)
    segment = track.open_segment(spool, "alice", first, 0, sample_rate=RATE)
    assert track.segment is segment and track.next_index == 1
    opened = SegmentSidecar.from_json(spool.sidecar_path("alice", 0).read_bytes())
    assert (opened.state, opened.ssrc, opened.anchor, opened.stream_start) == (
        "open",
        7,
        10 * RATE,
        0,
    )
    for i, payload in enumerate(payloads):
        p = packet(payload, stream=0, timestamp=i * FRAME, arrival=10 * RATE + i * FRAME)
        segment.ogg.write_packet(p.payload, p.samples)
        segment.timing.add_packet(p)
    car = segment.seal()
    data = spool.segment_path("alice", 0).read_bytes()
    assert car.state == "closed" and car.duration == len(payloads) * FRAME
    assert (car.size, car.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert SegmentSidecar.from_json(spool.sidecar_path("alice", 0).read_bytes()) == car
    assert int.from_bytes(data[14:18], "little") == zlib.crc32(b"alice")  # serial, index 0
    assert b"ROOMCAST_RECORDING=rec1" in data and b"ROOMCAST_PARTICIPANT=alice" in data
    assert len(list(read_pages(data))) >= 3  # OpusHead, OpusTags, audio
    assert len(decode_with_pyav(spool.segment_path("alice", 0))) == car.duration


def test_a_segment_that_cannot_be_created_uses_up_its_index(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    track = make_track()
    spool.sidecar_path("alice", 0).with_name("00000.json.tmp").mkdir(parents=True)
    first = packet(sine_packets(0.1)[0], stream=0, timestamp=0, arrival=0)
    with pytest.raises(OSError):
        track.open_segment(spool, "alice", first, 0, sample_rate=RATE)
    assert track.segment is None and track.next_index == 1
    assert not spool.segment_path("alice", 0).exists()  # no audio without its sidecar
    track.open_segment(spool, "alice", first, 0, sample_rate=RATE).abandon()
    assert spool.segment_path("alice", 1).exists()


def test_room_start_uses_the_lowest_anchor_of_the_same_stream(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    track = make_track()
    payload = sine_packets(0.1)[0]
    # Stream 0's first segment closed with anchor 1000; the open one estimates 1500.
    track.record_closed(
        track.open_segment(
            spool, "a", packet(payload, stream=0, timestamp=0, arrival=1000), 0, sample_rate=RATE
        ).seal()
    )
    assert track.anchor_floor == (0, 1000) and len(track.closed) == 1
    later = packet(payload, stream=0, timestamp=4 * FRAME, arrival=1500 + 4 * FRAME)
    segment = track.open_segment(spool, "a", later, 4 * FRAME, sample_rate=RATE)
    assert track.room_start(segment) == 1000 + 4 * FRAME  # placed like the manifest will
    # A lower anchor lowers the floor; a new stream starts its own.
    track.record_closed(segment.seal())
    assert track.anchor_floor == (0, 1000)
    other = packet(payload, stream=1, timestamp=0, arrival=900)
    fresh = track.open_segment(spool, "a", other, 0, sample_rate=RATE)
    assert track.room_start(fresh) == 900  # stream 0's floor does not apply
    track.record_closed(fresh.seal())
    assert track.anchor_floor == (1, 900) and [c.index for c in track.closed] == [0, 1, 2]

"""Idle close: a speaker muted on stage (no packets) stops holding the progress watermark.

The writer runs on a test clock that the feeder moves along with the arrivals it submits, so
which tick closes a segment does not depend on how fast this machine is."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import pytest

from core.recording.manifest import Manifest, Segment, build_manifest
from core.recording.progress import RecordingProgress
from core.recording.sidecar import SegmentSidecar
from core.recording.timeline import RoomClock
from recorder.segment_writer import SegmentWriter
from recorder.spool import RecordingMeta, RecordingSpool
from tests.recorder.opus_source import FRAME, RATE, decode_with_pyav, sine_packets

EPOCH = 500.0
MS = RATE // 1000


@dataclass
class Room:
    """A writer on a settable clock, and what it reported."""

    writer: SegmentWriter
    spool: RecordingSpool
    now: list[float]
    closed: list[SegmentSidecar] = field(default_factory=list)
    #: each progress document with the keys of the segments closed before it was handed on
    progress: list[tuple[RecordingProgress, frozenset[str]]] = field(default_factory=list)

    def submit(
        self, who: str, ssrc: int, seq: int, ts: int, arrival: float, payload: bytes
    ) -> None:
        self.now[0] = max(self.now[0], arrival)
        assert self.writer.submit(who, ssrc, seq % 65536, ts % 2**32, arrival, payload)

    def feed(self, rows: list[tuple[float, str, int, int, int, bytes]]) -> None:
        """Submit ``(arrival, who, ssrc, seq, ts, payload)`` rows in order."""
        for arrival, who, ssrc, seq, ts, payload in rows:
            self.submit(who, ssrc, seq, ts, arrival, payload)

    def manifest(self) -> Manifest:
        built = build_manifest(
            recording_id="rec1", room_id="room1", epoch=0.0, sidecars=self.closed, status="complete"
        )
        return Manifest.from_json(built.to_json())  # schema-checked


def make_room(root: Path, *, segment_seconds: float, idle_close_seconds: float = 2.0) -> Room:
    spool = RecordingSpool(root, "rec1")
    spool.create(RecordingMeta("rec1", "room1", 1_700_000_000.0))
    now = [EPOCH]
    room: Room

    def closed(car: SegmentSidecar, path: Path) -> None:
        room.closed.append(car)

    def progress(doc: RecordingProgress) -> None:
        room.progress.append((doc, frozenset(car.key for car in room.closed)))

    writer = SegmentWriter(
        spool,
        RoomClock(1_700_000_000.0, EPOCH),
        segment_seconds=segment_seconds,
        idle_close_seconds=idle_close_seconds,
        on_segment_closed=closed,
        on_progress=progress,
        monotonic=lambda: now[0],
    )
    room = Room(writer, spool, now)
    writer.start()
    return room


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def drain(room: Room) -> None:
    wait_for(lambda: room.writer.health().queued == 0)
    time.sleep(0.05)  # the last item taken is being handled


def jitter(i: int) -> float:
    return 0.0 if i % 4 == 0 else 0.005 * (i % 4)  # every 4th packet arrives with no delay


def segments(manifest: Manifest, who: str) -> tuple[Segment, ...]:
    return next(t.segments for t in manifest.tracks if t.participant_id == who)


@pytest.mark.parametrize("mute", ["client-stops", "tap-drops"])
def test_muted_speaker_stops_holding_the_watermark_and_resumes_in_place(
    tmp_path: Path, mute: str
) -> None:
    room = make_room(tmp_path / "spool", segment_seconds=1.0)
    alice, bob = sine_packets(8.0, 440), sine_packets(7.0, 660)
    # Alice talks from 0.5 s to 8.5 s. Bob talks from 1 s, is muted from 3 s to 6 s, then talks
    # until 8 s. His RTP clock keeps running while muted; his sequence numbers either continue
    # (the client sent nothing) or jump (the live plane's tap dropped what the client sent).
    bob_sent = [i for i in range(350) if not 100 <= i < 250]
    feed = [
        (EPOCH + 0.5 + i * 0.02 + jitter(i), "alice", 11, i, i * FRAME, alice[i])
        for i in range(400)
    ]
    for n, i in enumerate(bob_sent):
        seq = n if mute == "client-stops" else i
        feed.append((EPOCH + 1.0 + i * 0.02 + jitter(i), "bob", 22, seq, 5000 + i * FRAME, bob[i]))
    feed.sort()
    resumed = next(row for row in feed if row[1] == "bob" and row[3] >= 100)[0]
    before = [row for row in feed if row[0] < resumed]
    room.feed(before)
    drain(room)

    # Bob's open segment (2 s → 3 s) was closed ~2 s after his last packet, as a roll would.
    bob_cars = [car for car in room.closed if car.participant_id == "bob"]
    assert [car.index for car in bob_cars] == [0, 1] and all(c.state == "closed" for c in bob_cars)
    assert (bob_cars[-1].stream_start + bob_cars[-1].duration) == 100 * FRAME
    # The watermark passed his mute point (3 s) while Alice kept talking: it now trails her
    # open segment (5.5 s) by the margin. Held by Bob's open segment it would be ≤ 1 s.
    marks = [doc.watermark for doc, _ in room.progress]
    assert marks == sorted(marks)
    assert marks[-1] == 45 * RATE // 10, marks[-1] / RATE

    room.feed(feed[len(before) :])
    room.writer.close()
    manifest = room.manifest()

    truth = round(6.0 * RATE)
    bob_segments = segments(manifest, "bob")
    assert [s.index for s in bob_segments] == [0, 1, 2, 3]
    assert abs(bob_segments[2].start_offset - truth) <= MS, bob_segments[2].start_offset - truth
    assert bob_segments[1].start_offset + bob_segments[1].duration == 3 * RATE
    # Nothing written for the mute (the gap between segments is the silence), no overlap.
    assert sum(s.duration for s in bob_segments) == 200 * FRAME
    for a, b in pairwise(bob_segments):
        assert a.start_offset + a.duration <= b.start_offset
    assert bob_segments[3].start_offset == bob_segments[2].start_offset + bob_segments[2].duration
    assert not [g for g in manifest.gaps if g.participant_id == "bob"]
    # Alice rolled every second, unaffected.
    alice_segments = segments(manifest, "alice")
    assert [s.start_offset for s in alice_segments] == [(5 + 10 * k) * RATE // 10 for k in range(8)]
    resumed_file = room.spool.segment_path("bob", 2)
    assert len(decode_with_pyav(resumed_file)) == bob_segments[2].duration
    # Every progress document kept the promise: what started below it was already closed.
    for doc, closed_keys in room.progress:
        below = [
            s.key for t in manifest.tracks for s in t.segments if s.start_offset < doc.watermark
        ]
        assert set(below) <= closed_keys, doc.watermark


@pytest.mark.parametrize(("idle", "kept_open"), [(2.0, True), (0.3, False)])
def test_dtx_comfort_noise_is_not_idle(tmp_path: Path, idle: float, kept_open: bool) -> None:
    room = make_room(tmp_path / "spool", segment_seconds=30.0, idle_close_seconds=idle)
    alice, bob = sine_packets(6.0, 440), sine_packets(6.0, 660)
    # Bob talks 0–2 s, then his client's DTX sends one comfort-noise packet every 400 ms until
    # 4 s (consecutive sequence numbers, timestamps jumping), then he talks again.
    bob_sent = list(range(100)) + list(range(120, 200, 20)) + list(range(200, 250))
    feed = [(EPOCH + i * 0.02 + jitter(i), "alice", 11, i, i * FRAME, alice[i]) for i in range(300)]
    feed += [
        (EPOCH + 0.01 + i * 0.02, "bob", 22, n, i * FRAME, bob[i]) for n, i in enumerate(bob_sent)
    ]
    room.feed(sorted(feed))
    room.writer.close()
    manifest = room.manifest()
    # With an idle time under the 400 ms DTX interval the same stream would be cut up.
    assert (len(segments(manifest, "bob")) == 1) is kept_open
    assert len(segments(manifest, "alice")) == 1
    if kept_open:
        dtx = [g for g in manifest.gaps if g.participant_id == "bob"]
        assert [g.kind for g in dtx] == ["dtx"] * 5
        assert segments(manifest, "bob")[0].duration == 250 * FRAME


def test_everyone_muted_the_watermark_follows_the_clock_once_a_second(tmp_path: Path) -> None:
    room = make_room(tmp_path / "spool", segment_seconds=30.0)
    alice = sine_packets(1.5, 440)
    for i, payload in enumerate(alice):  # 0.5 s → 2 s, then silence
        room.submit("alice", 11, i, i * FRAME, EPOCH + 0.5 + i * 0.02 + jitter(i), payload)
    drain(room)
    assert room.progress == [] and room.closed == []  # still open: she may only pause

    room.now[0] = EPOCH + 4.5  # 2.5 s without a packet: closed, W follows the clock
    wait_for(lambda: len(room.progress) == 1)
    assert [car.index for car in room.closed] == [0]
    assert room.progress[0][0].watermark == round(3.5 * RATE)
    room.now[0] = EPOCH + 5.2  # less than a second later: no new document
    time.sleep(0.6)
    assert len(room.progress) == 1
    room.now[0] = EPOCH + 5.6
    wait_for(lambda: len(room.progress) == 2)
    assert room.progress[1][0].watermark == round(4.6 * RATE)

    # She speaks again: her new segment starts after every watermark published so far.
    room.now[0] = EPOCH + 6.0
    for i, payload in enumerate(alice[:50]):
        room.submit(
            "alice", 11, 75 + i, (275 + i) * FRAME, EPOCH + 6.0 + i * 0.02 + jitter(i), payload
        )
    room.writer.close()
    resumed = segments(room.manifest(), "alice")[1]
    assert abs(resumed.start_offset - 6 * RATE) <= MS
    assert all(doc.watermark <= resumed.start_offset for doc, _ in room.progress)

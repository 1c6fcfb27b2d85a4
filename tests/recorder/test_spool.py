"""Spool layout and the restart scan: a segment open at a crash keeps all but its last second."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from core.errors import InvalidInput
from core.recording.manifest import build_manifest
from core.recording.sidecar import SegmentSidecar
from core.recording.timeline import RoomClock
from recorder.segment_writer import SegmentWriter
from recorder.spool import RecordingMeta, RecordingSpool, path_component, scan
from tests.recorder.opus_source import FRAME, RATE, decode_with_pyav, sine_packets

EPOCH = 10.0


def test_layout_and_keys(tmp_path: Path) -> None:
    spool = RecordingSpool(tmp_path, "rec-1")
    assert spool.segment_key("alice", 3) == "recordings/rec-1/tracks/alice/00003.opus"
    assert path_component("../evil") == "x-" + b"../evil".hex()
    with pytest.raises(InvalidInput):
        RecordingSpool(tmp_path, "../up")


def test_restart_scan_recovers_the_open_segment_up_to_its_last_page(tmp_path: Path) -> None:
    live = tmp_path / "live"
    spool = RecordingSpool(live, "rec1")
    spool.create(RecordingMeta("rec1", "room1", 1_700_000_000.0))
    spool.append_event({"type": "marker", "offset": 100, "title": "Intro"})
    writer = SegmentWriter(
        spool, RoomClock(1_700_000_000.0, EPOCH), segment_seconds=2.0, monotonic=lambda: 0.0
    )
    writer.start()
    packets = sine_packets(3.3)
    for i, payload in enumerate(packets):
        writer.submit("alice", 5, i, i * FRAME, EPOCH + 1 + i * 0.02, payload)
    deadline = time.monotonic() + 10
    while writer.health().queued and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    # "Kill" the node: take the disk as it is now, with segment 1 still open, plus a torn page.
    crashed = tmp_path / "crashed"
    shutil.copytree(live, crashed)
    writer.close()
    open_audio = RecordingSpool(crashed, "rec1").segment_path("alice", 1)
    with open(open_audio, "ab") as f:
        f.write(b"OggS\x00\x00" + os.urandom(40))

    (found,) = scan(crashed)
    assert not found.finished and found.recovered_segments == 1
    first, second = found.sidecars
    assert (first.state, second.state) == ("closed", "recovered")
    written = first.duration + second.duration
    assert len(packets) * FRAME - written <= RATE  # at most the last second is lost
    assert len(decode_with_pyav(open_audio)) == second.duration
    assert SegmentSidecar.from_json(found.spool.sidecar_path("alice", 1).read_bytes()) == second
    assert open_audio in found.pending_uploads and found.spool.events_path in found.pending_uploads
    assert found.spool.read_events() == [{"type": "marker", "offset": 100, "title": "Intro"}]

    manifest = build_manifest(
        recording_id="rec1",
        room_id=found.meta.room_id,
        epoch=found.meta.epoch,
        sidecars=found.sidecars,
        status="interrupted",
    )
    (track,) = manifest.tracks
    assert [s.start_offset for s in track.segments] == [RATE, RATE + first.duration]
    found.spool.write_manifest(manifest)
    assert scan(crashed)[0].finished

"""One speaker track's recording state: its timeline, its open segment file, its closed ones.

:class:`~recorder.segment_writer.SegmentWriter` keeps a :class:`TrackState` per participant and
drives it from its worker thread; nothing here is thread-safe or touches a queue.

A :class:`SegmentFile` is one Ogg Opus segment on disk. It is created *sidecar first* (an
``open`` sidecar is atomically written before the audio file exists, so a segment file found
after a crash can always be placed), hashed as it is written (closing needs no read-back), and
sealed by :meth:`SegmentFile.seal`: Ogg end-of-stream, fsync of the file and its directory, then
the ``closed`` sidecar with size and sha256 replaces the open one.

Placement: the manifest places every segment of an RTP stream with the *lowest* anchor among
that stream's closed segments (:attr:`TrackState.anchor_floor`), so
:meth:`TrackState.room_start` — where an open or lost segment would start on the room timeline
— uses the same floor; the progress watermark is computed from it.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from core.recording.sidecar import SegmentSidecar, SegmentTiming
from core.recording.timeline import AudioPacket, TrackTimeline
from recorder.ogg_opus import OggOpusWriter
from recorder.spool import RecordingSpool, atomic_write, fsync_dir


class _HashingFile:
    """A file that hashes what is written, so closing a segment needs no read-back."""

    def __init__(self, path: Path) -> None:
        self.raw: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by the segment
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray) -> int:
        self.raw.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()


@dataclass(slots=True)
class SegmentFile:
    """An open segment: its timing (grows with every packet and gap) and its Ogg writer."""

    timing: SegmentTiming
    file: _HashingFile
    ogg: OggOpusWriter
    path: Path
    sidecar_path: Path

    @classmethod
    def create(
        cls,
        spool: RecordingSpool,
        timing: SegmentTiming,
        *,
        participant_id: str,
        index: int,
        sample_rate: int,
    ) -> SegmentFile:
        """Write the open sidecar, then create the audio file. Raises OSError (disk)."""
        path = spool.segment_path(participant_id, index)
        sidecar_path = spool.sidecar_path(participant_id, index)
        # Sidecar first: a segment file on disk must always be placeable after a crash.
        atomic_write(sidecar_path, timing.snapshot("open").to_json().encode())
        file = _HashingFile(path)
        ogg = OggOpusWriter(
            file,
            serial=zlib.crc32(participant_id.encode()) ^ index,
            flush_samples=sample_rate,  # an Ogg page at least every second of audio
            comments={
                "ROOMCAST_RECORDING": spool.recording_id,
                "ROOMCAST_PARTICIPANT": participant_id,
            },
        )
        return cls(timing, file, ogg, path, sidecar_path)

    def seal(self) -> SegmentSidecar:
        """End the stream, fsync file and directory, replace the sidecar with the closed one.

        BLOCKS. Raises OSError; the file is then left as it is, for the final sweep.
        """
        self.ogg.close()
        self.file.flush()
        os.fsync(self.file.raw.fileno())
        self.file.raw.close()
        fsync_dir(self.path.parent)
        car = self.timing.snapshot("closed").with_file(
            size=self.file.size, sha256=self.file.sha256.hexdigest(), state="closed"
        )
        atomic_write(self.sidecar_path, car.to_json().encode())
        return car

    def abandon(self) -> None:
        """Close the file after a disk error, without sealing it (best effort)."""
        try:
            self.file.raw.close()
        except OSError:
            pass


@dataclass(slots=True)
class TrackState:
    """One participant's track as the writer thread sees it."""

    timeline: TrackTimeline
    display_name: str = ""
    next_index: int = 0
    ssrc: int = 0
    position: int | None = None  #: stream time where the next written sample goes
    segment: SegmentFile | None = None
    failed: str | None = None
    closed: list[SegmentSidecar] = field(default_factory=list)
    last_arrival: float | None = None  #: monotonic arrival of the latest packet handled
    #: (stream, lowest anchor of its closed segments): the manifest places a stream by it.
    anchor_floor: tuple[int, int] | None = None

    def open_segment(
        self,
        spool: RecordingSpool,
        participant_id: str,
        first: AudioPacket,
        position: int,
        *,
        sample_rate: int,
    ) -> SegmentFile:
        """Open the track's next segment at stream time ``position``, starting with ``first``.

        Raises OSError (disk); the segment index is used up either way.
        """
        index = self.next_index
        self.next_index += 1
        timing = SegmentTiming.opening(
            first,
            recording_id=spool.recording_id,
            participant_id=participant_id,
            display_name=self.display_name,
            index=index,
            key=spool.segment_key(participant_id, index),
            ssrc=self.ssrc,
            stream_start=position,
        )
        self.segment = SegmentFile.create(
            spool, timing, participant_id=participant_id, index=index, sample_rate=sample_rate
        )
        return self.segment

    def room_start(self, segment: SegmentFile) -> int:
        """The segment's start on the room timeline as the manifest would place it now."""
        anchor = segment.timing.anchor
        if self.anchor_floor is not None and self.anchor_floor[0] == segment.timing.stream:
            anchor = min(anchor, self.anchor_floor[1])
        return anchor + segment.timing.stream_start

    def record_closed(self, car: SegmentSidecar) -> None:
        """Keep a sealed segment's sidecar and lower its stream's anchor floor to it."""
        floor = self.anchor_floor
        if floor is None or floor[0] != car.stream:
            self.anchor_floor = (car.stream, car.anchor)
        else:
            self.anchor_floor = (car.stream, min(floor[1], car.anchor))
        self.closed.append(car)

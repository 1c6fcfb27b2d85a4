"""Play a written room into storage as the recorder would while it is live.

:class:`LiveFeeder` takes a room written by :func:`tests.workers.audio.rooms.write_room` and,
for a room time ``now``, stores every segment that has closed by then (audio, then its closed
sidecar) and then ``progress.json`` with the watermark the recorder would publish
(:func:`core.recording.progress.compute_watermark`: the earliest open segment, minus 1 s).
:meth:`LiveFeeder.end` stores the rest and the manifest, last, as the recorder's finish does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from core.recording.manifest import Manifest, Segment, Track
from core.recording.progress import (
    DEFAULT_MARGIN_SAMPLES,
    RecordingProgress,
    compute_watermark,
    progress_key,
)
from core.recording.sidecar import SegmentSidecar
from core.storage import Storage


def sidecar_of(manifest: Manifest, track: Track, segment: Segment) -> SegmentSidecar:
    """The closed sidecar the recorder would have stored for ``segment``."""
    return SegmentSidecar(
        recording_id=manifest.recording_id, participant_id=track.participant_id,
        display_name=track.display_name, index=segment.index, key=segment.key,
        stream=segment.stream, ssrc=1, state="closed",
        stream_start=segment.rtp_first_timestamp,
        anchor=segment.start_offset - segment.rtp_first_timestamp,
        rtp_first_timestamp=segment.rtp_first_timestamp,
        rtp_last_timestamp=segment.rtp_last_timestamp, duration=segment.duration,
        packets=segment.packets, lost_packets=segment.lost_packets, size=segment.size,
        sha256=segment.sha256,
    )  # fmt: skip


@dataclass
class LiveFeeder:
    """Stores a written room's segments into ``storage`` as room time passes (module doc)."""

    storage: Storage
    root: Path  #: where write_room wrote the room
    manifest: Manifest
    stored: set[str] = field(default_factory=set)
    watermark: int = 0

    @property
    def end_offset(self) -> int:
        return max(s.start_offset + s.duration for t in self.manifest.tracks for s in t.segments)

    def land_until(self, now: int) -> int:
        """Store what has closed by room offset ``now``; returns the watermark published."""
        open_starts = []
        for track in self.manifest.tracks:
            for segment in track.segments:
                if segment.start_offset + segment.duration <= now:
                    self._store(track, segment)
                elif segment.start_offset <= now:
                    open_starts.append(segment.start_offset)
        self.watermark = compute_watermark(min(now, self.end_offset), open_starts,
                                           DEFAULT_MARGIN_SAMPLES)  # fmt: skip
        progress = RecordingProgress(self.manifest.recording_id, self.watermark,
                                     datetime.now(UTC))  # fmt: skip
        self.storage.put_bytes(progress_key(self.manifest.recording_id),
                               progress.to_json().encode())  # fmt: skip
        return self.watermark

    def end(self) -> None:
        """Room end: the rest of the segments, then the manifest (the end marker)."""
        for track in self.manifest.tracks:
            for segment in track.segments:
                self._store(track, segment)
        key = f"recordings/{self.manifest.recording_id}/manifest.json"
        self.storage.put_bytes(key, self.manifest.to_json().encode())

    def _store(self, track: Track, segment: Segment) -> None:
        if segment.key in self.stored:
            return
        local = self.root / "tracks" / track.participant_id / f"{segment.index:05d}.opus"
        self.storage.put_file(segment.key, local)
        car = sidecar_of(self.manifest, track, segment)
        self.storage.put_bytes(segment.key.removesuffix(".opus") + ".json",
                               car.to_json().encode())  # fmt: skip
        self.stored.add(segment.key)

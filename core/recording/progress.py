"""Live recording progress: the watermark below which a recording is already in storage (pure).

While a recording is on, the recorder publishes ``recordings/<recording_id>/progress.json``
(:func:`progress_key`; format in docs/recording-format.md) so that a live render can process
a room's segments while the room is still live. Its ``watermark`` is a room-timeline offset in
samples — the same units and timeline as the manifest's segment ``start_offset`` — with one
promise: **every segment holding audio that starts before** ``watermark`` **is stored** (audio
and sidecar confirmed), so the set of segments below it is final.

:func:`compute_watermark` is the rule the recorder applies when a segment closes: the minimum of
"now" on the room timeline and the start of every segment still open, minus a safety margin
(anchor estimates may still move down by a few ms as packets with less delay arrive). The
recorder publishes it through its FIFO uploader *after* the closed segment's files, so the
document is written only once everything queued before it is confirmed.

:func:`provisional_manifest` is what a consumer builds from the sidecars stored so far: the
:class:`~core.recording.manifest.Manifest` they imply right now. Its offsets are provisional by a
few ms (a stream's placement is the minimum anchor over all its segments, and later segments
may lower it); the end-of-recording ``manifest.json``, written last, is the final word.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.errors import InvalidProgress
from core.recording.manifest import Manifest, build_manifest
from core.recording.opus import SAMPLE_RATE
from core.recording.sidecar import SegmentSidecar

PROGRESS_VERSION = 1
#: The safety margin the recorder subtracts: 1 s of samples at 48 kHz.
DEFAULT_MARGIN_SAMPLES = SAMPLE_RATE
_FIELDS = frozenset({"version", "recording_id", "sample_rate", "watermark", "updated_at"})


def progress_key(recording_id: str) -> str:
    """Storage key of a recording's progress document."""
    return f"recordings/{recording_id}/progress.json"


def compute_watermark(now_offset: int, open_starts: Iterable[int], margin: int) -> int:
    """The room offset below which every segment is closed (never negative).

    ``now_offset`` is the room offset of the latest packet the writer has handled: no segment
    not yet opened can start before it. ``open_starts`` are the room-timeline starts of the
    segments still open (current estimates). ``margin`` (samples, ≥ 0) absorbs the estimates'
    later downward moves.
    """
    if margin < 0:
        raise InvalidProgress(f"margin: must be >= 0 samples, got {margin}")
    return max(0, min([now_offset, *open_starts]) - margin)


@dataclass(frozen=True, slots=True)
class RecordingProgress:
    """The ``progress.json`` document (see module doc)."""

    recording_id: str
    watermark: int  #: room-timeline samples; every segment starting before it is stored
    updated_at: datetime  #: when the watermark was computed (UTC)
    sample_rate: int = SAMPLE_RATE
    version: int = PROGRESS_VERSION

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "recording_id": self.recording_id,
                "sample_rate": self.sample_rate,
                "watermark": self.watermark,
                "updated_at": self.updated_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            },
            sort_keys=True,
        )

    @property
    def seconds(self) -> float:
        """The watermark in seconds on the room timeline."""
        return self.watermark / self.sample_rate

    @classmethod
    def from_json(cls, text: str | bytes) -> RecordingProgress:
        """Parse and validate; raises :class:`InvalidProgress` naming the field at fault."""
        try:
            data: Any = json.loads(text)
        except ValueError as exc:
            raise InvalidProgress(f"progress document is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidProgress("progress document: expected a JSON object")
        missing = sorted(_FIELDS - data.keys())
        if missing:
            raise InvalidProgress(f"{missing[0]}: required field missing")
        if data["version"] != PROGRESS_VERSION or isinstance(data["version"], bool):
            raise InvalidProgress(f"version: unsupported progress version {data['version']!r}")
        recording_id = data["recording_id"]
        if not isinstance(recording_id, str) or not recording_id:
            raise InvalidProgress("recording_id: expected a non-empty string")
        sample_rate, watermark = data["sample_rate"], data["watermark"]
        if sample_rate != SAMPLE_RATE or isinstance(sample_rate, bool):
            raise InvalidProgress(f"sample_rate: expected {SAMPLE_RATE}, got {sample_rate!r}")
        if isinstance(watermark, bool) or not isinstance(watermark, int) or watermark < 0:
            raise InvalidProgress(f"watermark: expected a non-negative integer, got {watermark!r}")
        return cls(recording_id, watermark, _parse_time(data["updated_at"]), sample_rate)


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise InvalidProgress(f"updated_at: expected an ISO-8601 string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidProgress(f"updated_at: not an ISO-8601 time: {value!r}") from exc
    if parsed.utcoffset() is None:
        raise InvalidProgress(f"updated_at: needs a UTC offset ('Z'), got {value!r}")
    return parsed.astimezone(UTC)


def provisional_manifest(
    *,
    recording_id: str,
    room_id: str,
    epoch: float,
    sidecars: Iterable[SegmentSidecar | str | bytes],
) -> Manifest:
    """The manifest implied by the segment sidecars stored so far (JSON text or parsed).

    Sidecars still ``open`` (not closed, so their audio is not confirmed) and those of other
    recordings are left out. ``status`` is ``"interrupted"`` — the manifest schema's word for
    "not the end-of-recording manifest" — and intervals and markers are empty (they are folded
    from ``events.jsonl`` when the recording ends). Raises :class:`InvalidSidecar` for a
    sidecar that cannot be read. Segments starting before the current progress watermark
    (:func:`segments_before`) are final as a set; their offsets may still move by a few ms.
    """
    cars = []
    for item in sidecars:
        car = item if isinstance(item, SegmentSidecar) else SegmentSidecar.from_json(item)
        if car.state != "open" and car.recording_id == recording_id:
            cars.append(car)
    return build_manifest(
        recording_id=recording_id,
        room_id=room_id,
        epoch=epoch,
        sidecars=cars,
        status="interrupted",
    )


def segments_before(manifest: Manifest, watermark: int) -> list[tuple[str, int]]:
    """``(participant_id, index)`` of every segment starting before ``watermark``, in
    timeline order: with a watermark from ``progress.json`` this set is complete."""
    found = [
        (segment.start_offset, track.participant_id, segment.index)
        for track in manifest.tracks
        for segment in track.segments
        if segment.start_offset < watermark
    ]
    return [(pid, index) for _, pid, index in sorted(found)]

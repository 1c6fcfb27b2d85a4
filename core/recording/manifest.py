"""The versioned recording manifest: the contract between the recorder and the workers.

Frozen dataclasses, serialised to JSON and validated on read against ``manifest.schema.json``
(next to this module; documented in docs/recording-format.md). All times are integer samples at
``sample_rate`` (48 kHz) on the room timeline, whose zero is ``epoch`` (unix seconds).

:func:`build_manifest` derives a manifest from the segments' sidecars (pure), so the recorder
and a restarted node's spool scan produce it the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jsonschema

from core.errors import InvalidManifest
from core.recording.opus import SAMPLE_RATE
from core.recording.sidecar import SegmentSidecar

MANIFEST_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")
Status = Literal["complete", "interrupted"]


@dataclass(frozen=True, slots=True)
class Segment:
    key: str  #: storage key of the Ogg Opus file
    index: int  #: per-track, from 0, in timeline order
    stream: int  #: the RTP stream (a reconnect starts a new one)
    rtp_first_timestamp: int
    rtp_last_timestamp: int
    start_offset: int  #: room-timeline samples of the segment's first decoded sample
    duration: int  #: decoded samples (gaps included, as silence)
    packets: int
    lost_packets: int
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Track:
    participant_id: str
    display_name: str
    segments: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class GapEntry:
    participant_id: str
    kind: Literal["loss", "dtx"]
    start_offset: int
    duration: int
    lost_packets: int


@dataclass(frozen=True, slots=True)
class Interval:
    """Recording on from ``start`` to ``end`` (None: still on when the manifest was written)."""

    start: int
    end: int | None


@dataclass(frozen=True, slots=True)
class Marker:
    """A chapter marker the host dropped live."""

    offset: int
    title: str


@dataclass(frozen=True, slots=True)
class StageInterval:
    participant_id: str
    start: int
    end: int | None


@dataclass(frozen=True, slots=True)
class Manifest:
    recording_id: str
    room_id: str
    epoch: float
    status: Status
    tracks: tuple[Track, ...]
    gaps: tuple[GapEntry, ...] = ()
    recording_intervals: tuple[Interval, ...] = ()
    markers: tuple[Marker, ...] = ()
    stage_intervals: tuple[StageInterval, ...] = ()
    sample_rate: int = SAMPLE_RATE
    version: int = MANIFEST_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse and validate; raises :class:`InvalidManifest` naming the field at fault."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidManifest(f"manifest is not JSON: {exc}") from exc
        validate(data)
        return cls(
            recording_id=data["recording_id"],
            room_id=data["room_id"],
            epoch=float(data["epoch"]),
            status=data["status"],
            tracks=tuple(
                Track(
                    t["participant_id"],
                    t["display_name"],
                    tuple(Segment(**s) for s in t["segments"]),
                )
                for t in data["tracks"]
            ),
            gaps=tuple(GapEntry(**g) for g in data["gaps"]),
            recording_intervals=tuple(Interval(**i) for i in data["recording_intervals"]),
            markers=tuple(Marker(**m) for m in data["markers"]),
            stage_intervals=tuple(StageInterval(**s) for s in data["stage_intervals"]),
            sample_rate=data["sample_rate"],
            version=data["version"],
        )


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _field_path(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(manifest)"


def validate(data: Any) -> None:
    """Check parsed JSON against the schema; raise :class:`InvalidManifest` on the first error."""
    error = jsonschema.exceptions.best_match(_validator().iter_errors(data))
    if error is not None:
        raise InvalidManifest(f"{_field_path(error.absolute_path)}: {error.message}")


def build_manifest(
    *,
    recording_id: str,
    room_id: str,
    epoch: float,
    sidecars: Iterable[SegmentSidecar],
    status: Status,
    recording_intervals: Iterable[Interval] = (),
    markers: Iterable[Marker] = (),
    stage_intervals: Iterable[StageInterval] = (),
) -> Manifest:
    """The manifest of a recording from its segments' sidecars.

    Each stream is placed with the minimum anchor over all its segments (the least-delayed
    packet of the whole stream), so every segment of a stream shares one placement.
    """
    cars = sorted(sidecars, key=lambda c: (c.participant_id, c.index))
    anchors: dict[tuple[str, int], int] = {}
    for car in cars:
        key = (car.participant_id, car.stream)
        anchors[key] = min(anchors.get(key, car.anchor), car.anchor)
    tracks: dict[str, list[Segment]] = {}
    names: dict[str, str] = {}
    gaps: list[GapEntry] = []
    for car in cars:
        anchor = anchors[(car.participant_id, car.stream)]
        names.setdefault(car.participant_id, car.display_name)
        tracks.setdefault(car.participant_id, []).append(
            Segment(
                key=car.key,
                index=car.index,
                stream=car.stream,
                rtp_first_timestamp=car.rtp_first_timestamp,
                rtp_last_timestamp=car.rtp_last_timestamp,
                start_offset=anchor + car.stream_start,
                duration=car.duration,
                packets=car.packets,
                lost_packets=car.lost_packets,
                size=car.size,
                sha256=car.sha256,
            )
        )
        gaps.extend(
            GapEntry(car.participant_id, g.kind, anchor + g.timestamp, g.samples, g.lost_packets)
            for g in car.gaps
        )
    return Manifest(
        recording_id=recording_id,
        room_id=room_id,
        epoch=epoch,
        status=status,
        tracks=tuple(Track(pid, names[pid], tuple(segs)) for pid, segs in tracks.items()),
        gaps=tuple(sorted(gaps, key=lambda g: (g.start_offset, g.participant_id))),
        recording_intervals=tuple(recording_intervals),
        markers=tuple(sorted(markers, key=lambda m: m.offset)),
        stage_intervals=tuple(stage_intervals),
    )

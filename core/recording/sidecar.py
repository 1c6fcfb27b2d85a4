"""The timing sidecar of one recorded segment, and the pure accumulator that fills it.

A segment is one Ogg Opus file holding a run of one stream of one participant. Its sidecar
(``<index>.json`` next to the audio in the spool, format in docs/recording-format.md) records
everything needed to place it on the room timeline and to re-derive placement later:

- ``stream_start``: stream time (samples) of the segment's first sample;
- ``anchor``: the segment's minimum-delay estimate of where stream time 0 sits on the room
  timeline (the manifest takes the minimum over all segments of the stream);
- every packet's ``[timestamp, arrival]`` pair, RTCP sender-report triples, gaps.

It is written twice: when the segment opens (``state: "open"``, so a crash still leaves
placement data) and atomically replaced when it closes (``state: "closed"``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from core.errors import InvalidSidecar
from core.recording.timeline import AudioPacket, Gap, SenderReport

SIDECAR_VERSION = 1
SegmentState = Literal["open", "closed", "recovered"]


@dataclass(frozen=True, slots=True)
class GapRecord:
    """Silence written inside a segment, at stream time ``timestamp``."""

    kind: Literal["loss", "dtx"]
    timestamp: int
    samples: int
    lost_packets: int


@dataclass(frozen=True, slots=True)
class SenderReportRecord:
    ntp_unix: float
    timestamp: int
    arrival: int


@dataclass(frozen=True, slots=True)
class SegmentSidecar:
    """Timing and integrity data of one segment (see module doc)."""

    recording_id: str
    participant_id: str
    display_name: str
    index: int
    key: str
    stream: int
    ssrc: int
    state: SegmentState
    stream_start: int
    anchor: int
    rtp_first_timestamp: int
    rtp_last_timestamp: int
    duration: int
    packets: int
    lost_packets: int
    size: int = 0
    sha256: str = ""
    gaps: tuple[GapRecord, ...] = ()
    sender_reports: tuple[SenderReportRecord, ...] = ()
    arrivals: tuple[tuple[int, int], ...] = ()
    version: int = SIDECAR_VERSION

    def to_json(self) -> str:
        data = asdict(self)
        data["arrivals"] = [list(pair) for pair in self.arrivals]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> SegmentSidecar:
        """Parse a sidecar; raises :class:`InvalidSidecar` naming what is wrong."""
        try:
            data: dict[str, Any] = json.loads(text)
            if data.get("version") != SIDECAR_VERSION:
                raise InvalidSidecar(
                    f"version: unsupported sidecar version {data.get('version')!r}"
                )
            data["gaps"] = tuple(GapRecord(**gap) for gap in data.get("gaps", ()))
            data["sender_reports"] = tuple(
                SenderReportRecord(**sr) for sr in data.get("sender_reports", ())
            )
            data["arrivals"] = tuple((int(t), int(a)) for t, a in data.get("arrivals", ()))
            return cls(**data)
        except InvalidSidecar:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidSidecar(f"unreadable segment sidecar: {exc}") from exc

    def with_file(self, *, size: int, sha256: str, state: SegmentState) -> SegmentSidecar:
        return replace(self, size=size, sha256=sha256, state=state)


@dataclass(slots=True)
class SegmentTiming:
    """Accumulates a segment's timing from timeline events, in write order (pure)."""

    recording_id: str
    participant_id: str
    display_name: str
    index: int
    key: str
    stream: int
    ssrc: int
    stream_start: int
    anchor: int
    rtp_first_timestamp: int
    duration: int = 0
    packets: int = 0
    lost_packets: int = 0
    rtp_last_timestamp: int = 0
    gaps: list[GapRecord] = field(default_factory=list)
    sender_reports: list[SenderReportRecord] = field(default_factory=list)
    arrivals: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def opening(
        cls,
        first: AudioPacket,
        *,
        recording_id: str,
        participant_id: str,
        display_name: str,
        index: int,
        key: str,
        ssrc: int,
        stream_start: int,
    ) -> SegmentTiming:
        """A segment whose first audio is ``first``, written at stream time ``stream_start``."""
        return cls(
            recording_id,
            participant_id,
            display_name,
            index,
            key,
            first.stream,
            ssrc,
            stream_start,
            first.anchor_candidate,
            first.rtp_timestamp,
            rtp_last_timestamp=first.rtp_timestamp,
        )

    def add_packet(self, packet: AudioPacket) -> None:
        self.duration += packet.samples
        self.packets += 1
        self.rtp_last_timestamp = packet.rtp_timestamp
        self.anchor = min(self.anchor, packet.anchor_candidate)
        self.arrivals.append((packet.timestamp, packet.arrival))

    def add_gap(self, gap: Gap, written_samples: int) -> None:
        """A gap filled with ``written_samples`` of silence (the filler's rounding applies)."""
        self.duration += written_samples
        self.lost_packets += gap.lost_packets
        self.gaps.append(GapRecord(gap.kind, gap.timestamp, written_samples, gap.lost_packets))

    def add_sender_report(self, report: SenderReport) -> None:
        self.sender_reports.append(
            SenderReportRecord(report.ntp_unix, report.timestamp, report.arrival)
        )

    def snapshot(self, state: SegmentState = "open") -> SegmentSidecar:
        return SegmentSidecar(
            recording_id=self.recording_id,
            participant_id=self.participant_id,
            display_name=self.display_name,
            index=self.index,
            key=self.key,
            stream=self.stream,
            ssrc=self.ssrc,
            state=state,
            stream_start=self.stream_start,
            anchor=self.anchor,
            rtp_first_timestamp=self.rtp_first_timestamp,
            rtp_last_timestamp=self.rtp_last_timestamp,
            duration=self.duration,
            packets=self.packets,
            lost_packets=self.lost_packets,
            gaps=tuple(self.gaps),
            sender_reports=tuple(self.sender_reports),
            arrivals=tuple(self.arrivals),
        )

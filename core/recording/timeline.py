"""One speaker's RTP packets placed on the room timeline (pure; no I/O, no aiortc).

Feed packets in arrival order with :meth:`TrackTimeline.push` (plain values: SSRC, 16-bit
sequence number, 32-bit timestamp, server arrival on the monotonic clock, Opus payload); it
returns :data:`TimelineEvent`s in *sequence* order, ready to be written:

- :class:`StreamStarted` when a new RTP stream begins: the first packet, a new SSRC (a
  reconnect), or a discontinuity on the same SSRC (a sender that reset its sequence/timestamp).
- :class:`AudioPacket` for every packet kept, with extended sequence and stream-relative
  timestamp (unwrapped across 16-/32-bit wrap-around).
- :class:`Gap` before a packet whose timestamp does not follow the previous one: ``loss`` when
  sequence numbers are missing, ``dtx`` when they are consecutive (discontinuous transmission).
  The writer fills a gap with silence so the decoded audio keeps its true length.
- :class:`SenderReport` for RTCP SR pairs (sender NTP time ↔ RTP timestamp ↔ arrival).

Reordering: an in-order packet is released at once (no added latency); a packet after a hole
waits until the hole is filled, ``reorder_seconds`` of arrival time pass, or
``reorder_packets`` are queued. Packets arriving after their slot was released are counted as
``late``; repeats as ``duplicates``; both are dropped.

Placement: a stream's timestamp ``t`` (samples since its first packet) sits at room offset
``anchor + t`` where ``anchor = min(arrival_samples - t)`` over the stream's packets — the
minimum-delay packet, not the first one, so network jitter can only make a packet late, never
move the track. Offsets are samples at 48 kHz since the room's epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from core.errors import InvalidOpusPacket
from core.recording.opus import SAMPLE_RATE, packet_samples

SEQ_BITS = 16
TS_BITS = 32
#: A sequence jump larger than this (either way) is a new stream, not loss or reordering.
MAX_SEQ_JUMP = 3000

GapKind = Literal["loss", "dtx"]


def unwrap(raw: int, reference: int, bits: int) -> int:
    """The extended value congruent to ``raw`` modulo ``2**bits`` that is nearest ``reference``.

    Ties (exactly half the range away) resolve backwards. Correct whenever the true value is
    within ``2**(bits-1)`` of the reference.
    """
    modulus = 1 << bits
    delta = (raw - reference) % modulus
    if delta >= modulus >> 1:
        delta -= modulus
    return reference + delta


@dataclass(frozen=True, slots=True)
class RoomClock:
    """The room's epoch on both clocks: wall (unix seconds) and this process's monotonic clock."""

    epoch_unix: float
    epoch_monotonic: float
    sample_rate: int = SAMPLE_RATE

    def samples_at(self, monotonic: float) -> int:
        """Room-timeline offset, in samples, of a monotonic-clock reading."""
        return round((monotonic - self.epoch_monotonic) * self.sample_rate)

    def unix_at(self, monotonic: float) -> float:
        """Wall-clock time of a monotonic-clock reading."""
        return self.epoch_unix + (monotonic - self.epoch_monotonic)


@dataclass(frozen=True, slots=True)
class StreamStarted:
    """A new RTP stream (first packet, new SSRC or reset); its timestamps restart at 0."""

    stream: int
    ssrc: int
    base_timestamp: int  #: the raw 32-bit RTP timestamp that is stream time 0


@dataclass(frozen=True, slots=True)
class AudioPacket:
    """A packet to write, in sequence order."""

    stream: int
    sequence: int  #: extended (unwrapped) sequence number
    timestamp: int  #: stream time in samples (extended RTP timestamp minus the stream's base)
    rtp_timestamp: int  #: the raw 32-bit RTP timestamp
    samples: int  #: decoded length from the Opus TOC
    arrival: int  #: server arrival, room-timeline samples
    payload: bytes

    @property
    def anchor_candidate(self) -> int:
        """Where this packet alone would put stream time 0 on the room timeline."""
        return self.arrival - self.timestamp


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing audio before the next packet: silence of ``samples`` from stream time ``timestamp``."""

    stream: int
    kind: GapKind
    timestamp: int
    samples: int
    lost_packets: int


@dataclass(frozen=True, slots=True)
class SenderReport:
    """An RTCP sender report: the sender's wall clock at one of its RTP timestamps."""

    stream: int
    ntp_unix: float
    timestamp: int  #: stream time of the SR's RTP timestamp
    arrival: int  #: room-timeline samples


TimelineEvent = StreamStarted | AudioPacket | Gap | SenderReport


@dataclass(slots=True)
class TimelineStats:
    """Counters over the whole track (all streams)."""

    packets: int = 0
    lost: int = 0
    late: int = 0
    duplicates: int = 0
    invalid: int = 0
    dtx_gaps: int = 0
    loss_gaps: int = 0
    streams: int = 0


@dataclass(slots=True)
class _Held:
    ext_ts: int
    raw_ts: int
    arrival: int
    payload: bytes


@dataclass(slots=True)
class _Stream:
    index: int
    ssrc: int
    base_ts: int
    base_seq: int
    highest_seq: int
    highest_ts: int
    anchor: int
    next_seq: int | None = None
    next_ts: int = 0
    held: dict[int, _Held] = field(default_factory=dict)


class TrackTimeline:
    """Sequence/timestamp bookkeeping for one participant's audio track (see module doc)."""

    def __init__(
        self,
        clock: RoomClock,
        *,
        reorder_seconds: float = 0.1,
        reorder_packets: int = 16,
        max_gap_seconds: float = 120.0,
    ) -> None:
        self.clock = clock
        self.stats = TimelineStats()
        self._reorder_samples = round(reorder_seconds * clock.sample_rate)
        self._reorder_packets = reorder_packets
        self._max_gap = round(max_gap_seconds * clock.sample_rate)
        self._stream: _Stream | None = None
        self._recently_lost: set[int] = set()

    @property
    def stream(self) -> int | None:
        """Index of the current stream (0-based), or None before the first packet."""
        return self._stream.index if self._stream else None

    @property
    def anchor(self) -> int | None:
        """Room offset of the current stream's time 0 (minimum-delay estimate so far)."""
        return self._stream.anchor if self._stream else None

    def push(
        self, ssrc: int, sequence: int, timestamp: int, arrival: float, payload: bytes
    ) -> list[TimelineEvent]:
        """Take one received packet; return what can be written now, in order."""
        now = self.clock.samples_at(arrival)
        events: list[TimelineEvent] = []
        stream = self._stream
        if stream is None or stream.ssrc != ssrc:
            stream = self._start(ssrc, sequence, timestamp, now, events)
            ext_seq, ext_ts = sequence, stream.base_ts
        else:
            ext_seq = unwrap(sequence, stream.highest_seq, SEQ_BITS)
            ext_ts = unwrap(timestamp, stream.highest_ts, TS_BITS)
            d_seq, d_ts = ext_seq - stream.highest_seq, ext_ts - stream.highest_ts
            if (
                abs(d_seq) > MAX_SEQ_JUMP
                or d_ts > self._max_gap
                or d_ts < -self._max_gap
                or (d_seq > 0 and d_ts < 0)
            ):
                stream = self._start(ssrc, sequence, timestamp, now, events)
                ext_seq, ext_ts = sequence, stream.base_ts
        if stream.next_seq is not None and ext_seq < stream.next_seq:
            # Its slot was written (duplicate) or filled with silence (late): nothing to do.
            if ext_seq < stream.base_seq or ext_seq in self._recently_lost:
                self.stats.late += 1
            else:
                self.stats.duplicates += 1
            return events
        if ext_seq in stream.held:
            self.stats.duplicates += 1
            return events
        stream.held[ext_seq] = _Held(ext_ts, timestamp, now, payload)
        stream.highest_seq = max(stream.highest_seq, ext_seq)
        stream.highest_ts = max(stream.highest_ts, ext_ts)
        stream.anchor = min(stream.anchor, now - (ext_ts - stream.base_ts))
        self._release(stream, now, events, force=False)
        return events

    def sender_report(
        self, ssrc: int, ntp_unix: float, rtp_timestamp: int, arrival: float
    ) -> SenderReport | None:
        """An RTCP SR for the current stream (None if it names another SSRC)."""
        stream = self._stream
        if stream is None or stream.ssrc != ssrc:
            return None
        ext = unwrap(rtp_timestamp, stream.highest_ts, TS_BITS)
        return SenderReport(
            stream.index, ntp_unix, ext - stream.base_ts, self.clock.samples_at(arrival)
        )

    def poll(self, now_monotonic: float) -> list[TimelineEvent]:
        """Release packets whose hole timed out while no new packet came (call when idle)."""
        events: list[TimelineEvent] = []
        if self._stream is not None:
            self._release(self._stream, self.clock.samples_at(now_monotonic), events, force=False)
        return events

    def flush(self) -> list[TimelineEvent]:
        """Release everything held (track ends, speaker leaves the stage, recording stops)."""
        events: list[TimelineEvent] = []
        if self._stream is not None:
            self._release(self._stream, 0, events, force=True)
        return events

    # -- internals -------------------------------------------------------------------------

    def _start(
        self, ssrc: int, sequence: int, timestamp: int, now: int, events: list[TimelineEvent]
    ) -> _Stream:
        if self._stream is not None:
            self._release(self._stream, 0, events, force=True)
        index = self._stream.index + 1 if self._stream is not None else 0
        self._stream = _Stream(index, ssrc, timestamp, sequence, sequence, timestamp, now)
        self._recently_lost = set()
        self.stats.streams += 1
        events.append(StreamStarted(index, ssrc, timestamp))
        return self._stream

    def _release(self, s: _Stream, now: int, events: list[TimelineEvent], *, force: bool) -> None:
        held = s.held
        while held:
            seq = min(held)
            head = held[seq]
            if not (
                force
                or s.next_seq is None
                or seq == s.next_seq
                or len(held) > self._reorder_packets
                or now - head.arrival >= self._reorder_samples
            ):
                return
            del held[seq]
            try:
                samples = packet_samples(head.payload)
            except InvalidOpusPacket:
                # Left as a hole: the next packet's gap covers it as loss.
                self.stats.invalid += 1
                continue
            t = head.ext_ts - s.base_ts
            if s.next_seq is not None:
                missing = seq - s.next_seq
                if missing > 0:
                    self.stats.lost += missing
                    if len(self._recently_lost) > 4096:
                        self._recently_lost.clear()
                    self._recently_lost.update(range(s.next_seq, seq))
                if t > s.next_ts:
                    kind: GapKind = "loss" if missing > 0 else "dtx"
                    if kind == "loss":
                        self.stats.loss_gaps += 1
                    else:
                        self.stats.dtx_gaps += 1
                    events.append(Gap(s.index, kind, s.next_ts, t - s.next_ts, max(missing, 0)))
            self.stats.packets += 1
            events.append(
                AudioPacket(s.index, seq, t, head.raw_ts, samples, head.arrival, head.payload)
            )
            s.next_seq = seq + 1
            # The writer's position: overlapping audio is written whole, so it advances from
            # wherever the previous packet ended.
            s.next_ts = max(s.next_ts, t) + samples

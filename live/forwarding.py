"""Speaker → speaker forwarding at the RTP level: no decode, no re-encode, no jitter buffer.

A speaker hears every other speaker on its own track. Each packet a speaker sends is sent, as
it arrives and inside the receive callback, to every speaker hearing it in one loop
(:class:`Forwarder`, :func:`live.aiortc_seam.send_forwarded`): per destination one 12-byte
header packed into its SRTP session's buffer, one protect and one ``sendto`` — no queue, no
coroutine, no per-destination lookup or object. Each destination's header is the source's
sequence number and timestamp plus offsets fixed when it started hearing that source
(:func:`open_segment` / :func:`close_segment`, pure), so gaps, DTX and reordering pass through
unchanged. An unbound track (unit tests) queues ``av.Packet``s for aiortc's own sender instead
(:meth:`ForwardTrack.push`, with :class:`TimestampRebaser`).

A forwarded track may carry different speakers over its life (slots are reused when speakers
come and go, since aiortc cannot remove m-lines): each new segment starts one sequence number
and one frame after the last one, so the track's RTP line stays continuous across such switches
and across a source's SSRC changes.
"""

from __future__ import annotations

import asyncio
import random
import struct
from dataclasses import dataclass, field
from typing import Any, TypeVar

import av
from aiortc import MediaStreamTrack, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from live.aiortc_seam import (
    DirectRoute,
    ForwardEntry,
    SrtpOutlet,
    opus_packet,
    send_forwarded,
    srtp_outlet,
)
from live.send_stats import SendStats

__all__ = [
    "FRAME_TICKS",
    "RTP_HEADER",
    "ForwardTrack",
    "Forwarder",
    "PacketQueueTrack",
    "TimestampRebaser",
    "bind_waiting",
    "close_segment",
    "open_segment",
    "unwrap_delta",
]

#: 20 ms at 48 kHz: the gap left between two sources on one forwarded track.
FRAME_TICKS = 960
_HALF = 1 << 31
_WRAP = 1 << 32
#: A plain RTP header (version 2, no CSRC, no extension): byte 0, marker|PT, seq, ts, SSRC.
RTP_HEADER = struct.Struct("!BBHII")


def unwrap_delta(previous: int, current: int) -> int:
    """Signed distance from 32-bit RTP timestamp ``previous`` to ``current`` (wrap-aware)."""
    delta = (current - previous) % _WRAP
    return delta - _WRAP if delta >= _HALF else delta


def open_segment(
    next_sequence: int, next_timestamp: int, sequence: int, timestamp: int
) -> tuple[int, int]:
    """Offsets that put a source's packet (``sequence``, ``timestamp``) at a track's next
    (``next_sequence``, ``next_timestamp``); later packets of the same source and SSRC keep
    their spacing (gaps, DTX, reordering) under the same offsets."""
    return (next_sequence - sequence) & 0xFFFF, (next_timestamp - timestamp) % _WRAP


def close_segment(
    high_sequence: int, high_timestamp: int, offsets: tuple[int, int]
) -> tuple[int, int]:
    """Where a track continues after a segment whose highest source packet was
    (``high_sequence``, ``high_timestamp``): the next sequence number, and the timestamp one
    frame after the latest one sent."""
    sequence_offset, timestamp_offset = offsets
    return (
        (high_sequence + sequence_offset + 1) & 0xFFFF,
        (high_timestamp + timestamp_offset + FRAME_TICKS) % _WRAP,
    )


@dataclass
class TimestampRebaser:
    """Maps (SSRC, RTP timestamp) of whatever feeds a track onto one continuous pts line.

    Within one source the spacing of timestamps is kept exactly (DTX gaps stay gaps); a new
    source or SSRC starts one frame after the latest pts handed out so far.
    """

    _source: tuple[str, int] | None = None
    _last_raw: int = 0
    _pts_of_last_raw: int = 0
    _max_pts: int = -FRAME_TICKS

    def switch_source(self) -> None:
        """The next packet starts a new source, whatever its SSRC."""
        self._source = None

    def map(self, source: str, ssrc: int, timestamp: int) -> int:
        """The output pts (48 kHz ticks, starting at 0) for this packet."""
        if self._source != (source, ssrc):
            self._source = (source, ssrc)
            pts = self._max_pts + FRAME_TICKS
        else:
            pts = self._pts_of_last_raw + unwrap_delta(self._last_raw, timestamp)
        self._last_raw = timestamp
        self._pts_of_last_raw = pts
        self._max_pts = max(self._max_pts, pts)
        return pts


class PacketQueueTrack(MediaStreamTrack):
    """A sendonly audio track whose "frames" are pre-encoded Opus ``av.Packet``s.

    aiortc's sender packs what ``recv`` returns without encoding it. ``offer`` is called on the
    event loop; the bounded queue drops the oldest packet when the sender is not draining it
    (e.g. before the peer is connected), so a stalled peer never grows memory.
    """

    kind = "audio"

    def __init__(self, *, capacity: int = 10) -> None:
        super().__init__()
        self._queue: asyncio.Queue[av.Packet[Any] | None] = asyncio.Queue(maxsize=capacity)
        self.dropped = 0
        self._transceiver: RTCRtpTransceiver | None = None
        self._outlet: SrtpOutlet | None = None

    @property
    def bound(self) -> bool:
        """Whether packets go straight to the transport (:meth:`bind`) rather than the queue."""
        return self._transceiver is not None

    def bind(self, transceiver: RTCRtpTransceiver) -> None:
        """Send directly on ``transceiver``'s transport from now on (dropped until connected).

        aiortc's sender keeps waiting on this track's (empty) queue, costing nothing per packet.
        """
        self._transceiver = transceiver
        self._outlet = None

    def outlet(self) -> SrtpOutlet | None:
        """The outlet to send on now, or ``None`` (unbound, or not connected yet / any more)."""
        outlet = self._outlet
        if outlet is None and self._transceiver is not None and self.readyState == "live":
            outlet = self._outlet = srtp_outlet(self._transceiver)
        return outlet

    def direct_route(self) -> DirectRoute | None:
        """A pre-bound route to send on now (:meth:`SrtpOutlet.direct_route`), or ``None``
        (unbound, not connected yet / any more, or the transport cannot be bound)."""
        outlet = self.outlet()
        return None if outlet is None else outlet.direct_route()

    def offer(self, item: av.Packet[Any] | None) -> None:
        """Queue one packet (``None`` ends the track)."""
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(item)

    async def recv(self) -> av.Packet[Any]:
        """The next packet to send (called by aiortc's sender loop)."""
        if self.readyState != "live":
            raise MediaStreamError
        item = await self._queue.get()
        if item is None:
            raise MediaStreamError
        return item

    def stop(self) -> None:
        if self.readyState == "live":
            super().stop()
            self._outlet = None
            self.offer(None)


_TrackT = TypeVar("_TrackT", bound=PacketQueueTrack)


def bind_waiting(
    waiting: set[_TrackT], routes: dict[_TrackT, DirectRoute], *, drop_unbound: bool
) -> tuple[list[_TrackT], int]:
    """Move every waiting bound track that is connected now from ``waiting`` to ``routes``.

    The set-up shared by the two send loops over pre-bound routes (:class:`Forwarder`,
    :class:`live.fanout.Fanout`): they call it only while something waits, never per
    destination. Unbound tracks (they send through their own queue) are removed from
    ``waiting`` with ``drop_unbound``, else left there. Returns the tracks routed now and how
    many bound tracks still wait (not connected yet, or any more).
    """
    routed: list[_TrackT] = []
    missing = 0
    for track in list(waiting):
        if not track.bound:
            if drop_unbound:
                waiting.discard(track)
            continue
        route = track.direct_route()
        if route is None:
            missing += 1
            continue
        waiting.discard(track)
        routes[track] = route
        routed.append(track)
    return routed, missing


class ForwardTrack(PacketQueueTrack):
    """One speaker's view of another speaker: their packets, payloads unchanged."""

    def __init__(self, *, capacity: int = 10) -> None:
        super().__init__(capacity=capacity)
        self._rebaser = TimestampRebaser()
        self.source: str | None = None
        self.pushed = 0
        # Random starts, as RFC 3550 asks; they only change at a source switch by continuity.
        self._sequence = random.getrandbits(16)
        self._timestamp_origin = random.getrandbits(32)
        self._next_timestamp = self._timestamp_origin

    def open_segment(self, sequence: int, timestamp: int) -> tuple[int, int]:
        """Offsets (:func:`open_segment`) that continue this track's line from the source
        packet (``sequence``, ``timestamp``) on (the :class:`Forwarder`'s direct path)."""
        return open_segment(
            (self._sequence + 1) & 0xFFFF, self._next_timestamp, sequence, timestamp
        )

    def resume_at(self, next_sequence: int, next_timestamp: int) -> None:
        """The next segment starts at (``next_sequence``, ``next_timestamp``)."""
        self._sequence = (next_sequence - 1) & 0xFFFF
        self._next_timestamp = next_timestamp

    def switch_source(self, source: str | None) -> None:
        """From now on this track carries ``source`` (``None``: nobody)."""
        self.source = source
        self._rebaser.switch_source()

    def push(self, source: str, packet: RtpPacket) -> bool:
        """Send (bound) or queue (unbound) ``packet``'s payload as-is; False when dropped."""
        pts = self._rebaser.map(source, packet.ssrc, packet.timestamp)
        if self._transceiver is None:
            self.offer(opus_packet(packet.payload, pts))
            self.pushed += 1
            return True
        outlet = self._outlet or self.outlet()
        if outlet is None:
            self.dropped += 1
            return False
        self._sequence = (self._sequence + 1) & 0xFFFF
        header = RTP_HEADER.pack(
            0x80,
            (packet.marker << 7) | outlet.payload_type,
            self._sequence,
            (self._timestamp_origin + pts) & 0xFFFFFFFF,
            outlet.ssrc,
        )
        if not outlet.send(header + packet.payload):
            self.dropped += 1
            return False
        self.pushed += 1
        return True


@dataclass
class _Source:
    """One speaker's destinations, with the state the hot loop needs kept per source."""

    tracks: dict[str, ForwardTrack] = field(default_factory=dict)
    #: Bound tracks without a direct route yet (not connected, or their route failed).
    waiting: set[ForwardTrack] = field(default_factory=set)
    routes: dict[ForwardTrack, DirectRoute] = field(default_factory=dict)
    #: (sequence, timestamp) offsets of each track's open segment (see :func:`open_segment`).
    segments: dict[ForwardTrack, tuple[int, int]] = field(default_factory=dict)
    #: The hot loop's input, rebuilt after any change; ``None`` when stale.
    entries: tuple[ForwardEntry, ...] | None = ()
    ssrc: int | None = None
    high_sequence: int = 0
    high_timestamp: int = 0

    def close(self, track: ForwardTrack) -> None:
        """End ``track``'s segment: it continues after the highest packet it was sent."""
        offsets = self.segments.pop(track, None)
        if offsets is not None:
            track.resume_at(*close_segment(self.high_sequence, self.high_timestamp, offsets))


class Forwarder:
    """The fan-out table: source speaker → {destination speaker: the track they hear it on}.

    Per packet and source, one loop over pre-bound destinations (:func:`send_forwarded`): each
    destination's header differs only by constants fixed when it started hearing the source
    (its own SSRC, payload type and sequence/timestamp offsets), so nothing per destination is
    looked up, mapped or allocated. Unbound tracks (unit tests) take ``av.Packet``s through
    :meth:`ForwardTrack.push`. The caller (``MediaRoom``) decides who may be forwarded; this
    class only moves packets.
    """

    def __init__(self, stats: SendStats | None = None) -> None:
        self._sources: dict[str, _Source] = {}
        self.stats = stats if stats is not None else SendStats()

    def connect(self, source: str, destination: str, track: ForwardTrack) -> None:
        """Send ``source``'s packets to ``destination`` on ``track``."""
        track.switch_source(source)
        entry = self._sources.setdefault(source, _Source())
        previous = entry.tracks.get(destination)
        if previous is not None and previous is not track:
            self._drop(entry, previous)
        entry.tracks[destination] = track
        entry.waiting.add(track)
        entry.entries = None

    def disconnect(self, source: str, destination: str) -> None:
        """Stop sending ``source`` to ``destination`` (the track then stays silent)."""
        entry = self._sources.get(source)
        if entry is None:
            return
        track = entry.tracks.pop(destination, None)
        if track is not None:
            self._drop(entry, track)
            if track.source == source:
                track.switch_source(None)
        if not entry.tracks:
            del self._sources[source]

    def forget(self, participant: str) -> None:
        """Remove every route from or to ``participant``."""
        for destination in list(self.destinations(participant)):
            self.disconnect(participant, destination)
        for source in list(self._sources):
            self.disconnect(source, participant)

    def destinations(self, source: str) -> frozenset[str]:
        """Who currently hears ``source``."""
        entry = self._sources.get(source)
        return frozenset(entry.tracks) if entry is not None else frozenset()

    def forward(self, source: str, packet: RtpPacket) -> int:
        """Send ``packet`` to every destination of ``source``; returns how many took it."""
        entry = self._sources.get(source)
        payload = packet.payload
        if entry is None or not payload:
            return 0
        sequence, timestamp = packet.sequence_number, packet.timestamp
        if packet.ssrc != entry.ssrc:
            # The speaker re-published: every destination starts a new segment on its line.
            for track in list(entry.segments):
                entry.close(track)
            entry.ssrc, entry.high_sequence, entry.high_timestamp = packet.ssrc, sequence, timestamp
            entry.entries = None
        else:
            if (sequence - entry.high_sequence) & 0xFFFF < 0x8000:
                entry.high_sequence = sequence
            if (timestamp - entry.high_timestamp) & 0xFFFFFFFF < _HALF:
                entry.high_timestamp = timestamp
        dropped = 0
        if entry.waiting:
            routed, dropped = bind_waiting(entry.waiting, entry.routes, drop_unbound=True)
            if routed:
                entry.entries = None
        entries = entry.entries
        if entries is None:
            entries = entry.entries = self._entries(entry, sequence, timestamp)
        taken = 0
        if entries:
            failed = send_forwarded(entries, payload, packet.marker, sequence, timestamp)
            taken = len(entries) - len(failed)
            if failed:
                dropped += len(failed)
                self._unroute(entry, failed)
        if len(entry.tracks) > len(entry.routes) + len(entry.waiting):
            for track in entry.tracks.values():
                if not track.bound:
                    taken += track.push(source, packet)
        self.stats.forwarded += taken
        self.stats.forward_dropped += dropped
        return taken

    def _drop(self, entry: _Source, track: ForwardTrack) -> None:
        entry.close(track)
        entry.waiting.discard(track)
        entry.routes.pop(track, None)
        entry.entries = None

    def _entries(self, entry: _Source, sequence: int, timestamp: int) -> tuple[ForwardEntry, ...]:
        rows: list[ForwardEntry] = []
        for track, route in entry.routes.items():
            offsets = entry.segments.get(track)
            if offsets is None:
                offsets = entry.segments[track] = track.open_segment(sequence, timestamp)
            outlet = route.outlet
            rows.append((route, outlet.payload_type, outlet.ssrc, *offsets))
        return tuple(rows)

    def _unroute(self, entry: _Source, failed: list[SrtpOutlet]) -> None:
        gone = set(failed)
        for track, route in list(entry.routes.items()):
            if route.outlet in gone:
                del entry.routes[track]
                entry.waiting.add(track)
        entry.entries = None

"""Speaker → speaker forwarding at the RTP level: no decode, no re-encode, no jitter buffer.

A speaker hears every other speaker on its own track. Each packet a speaker sends is handed,
as it arrives, to one :class:`ForwardTrack` per listening speaker; the track gives the Opus
payload unchanged to the destination. Once a track is bound to its transceiver
(:meth:`PacketQueueTrack.bind`) and the transport is connected, the packet is sent right there,
inside the receive callback: a timestamp mapping (:class:`TimestampRebaser`, pure), one 12-byte
header, one SRTP protect and one ``sendto`` (:class:`live.aiortc_seam.SrtpOutlet`) — no queue,
no coroutine per destination, nothing re-serialised but the header. An unbound track (unit
tests) queues ``av.Packet``s for aiortc's own sender instead.

A forwarded track may carry different speakers over its life (slots are reused when speakers
come and go, since aiortc cannot remove m-lines): the rebaser keeps its RTP timeline continuous
across such switches and across a source's SSRC changes.
"""

from __future__ import annotations

import asyncio
import random
import struct
from dataclasses import dataclass
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from live.aiortc_seam import SrtpOutlet, opus_packet, srtp_outlet
from live.send_stats import SendStats

__all__ = [
    "FRAME_TICKS",
    "RTP_HEADER",
    "ForwardTrack",
    "Forwarder",
    "PacketQueueTrack",
    "TimestampRebaser",
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


class Forwarder:
    """The fan-out table: source speaker → {destination speaker: the track they hear it on}.

    The caller (``MediaRoom``) decides who may be forwarded; this class only moves packets.
    """

    def __init__(self, stats: SendStats | None = None) -> None:
        self._routes: dict[str, dict[str, ForwardTrack]] = {}
        self.stats = stats if stats is not None else SendStats()

    def connect(self, source: str, destination: str, track: ForwardTrack) -> None:
        """Send ``source``'s packets to ``destination`` on ``track``."""
        track.switch_source(source)
        self._routes.setdefault(source, {})[destination] = track

    def disconnect(self, source: str, destination: str) -> None:
        """Stop sending ``source`` to ``destination`` (the track then stays silent)."""
        routes = self._routes.get(source)
        if routes is not None:
            track = routes.pop(destination, None)
            if track is not None and track.source == source:
                track.switch_source(None)
            if not routes:
                del self._routes[source]

    def forget(self, participant: str) -> None:
        """Remove every route from or to ``participant``."""
        for destination in list(self._routes.get(participant, {})):
            self.disconnect(participant, destination)
        for source in list(self._routes):
            self.disconnect(source, participant)

    def destinations(self, source: str) -> frozenset[str]:
        """Who currently hears ``source``."""
        return frozenset(self._routes.get(source, {}))

    def forward(self, source: str, packet: RtpPacket) -> int:
        """Hand ``packet`` to every destination of ``source``; returns how many took it."""
        routes = self._routes.get(source)
        if not routes or not packet.payload:
            return 0
        taken = 0
        for track in routes.values():
            taken += track.push(source, packet)
        self.stats.forwarded += taken
        self.stats.forward_dropped += len(routes) - taken
        return taken

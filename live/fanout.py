"""One RTP packet to every listener of a room: the mix's send loop, pre-bound per listener.

The room mix is one RTP stream (one SSRC, sequence and timestamp line, see
:meth:`live.mixer.RoomMixer.bind_listener`), so a tick serialises its header once per
(payload type, SSRC) group — in practice once — and then runs one tight loop of
:func:`live.aiortc_seam.send_direct` over pre-bound routes: per listener one DTLS state read,
one SRTP protect and one ``socket.sendto``; no per-listener lookups, dicts or counters.

Listeners come and go rarely, packets flow 50 times a second: a :class:`Fanout` keeps the
routes grouped between changes and only looks again at listeners without a route (bound but
not connected yet, or whose route failed). Unbound tracks (the mix link to edge nodes, unit
tests) take ``av.Packet``s through their queue instead (:meth:`Fanout.unbound`).
"""

from __future__ import annotations

from collections.abc import Iterator

from live.aiortc_seam import DirectRoute, SrtpOutlet, send_direct
from live.forwarding import RTP_HEADER, PacketQueueTrack, bind_waiting

__all__ = ["Fanout"]


class Fanout:
    """The set of a room's listener tracks, with each connected one's route bound once.

    Behaves as a set of tracks (``add``, ``discard``, ``len``, iteration, truthiness);
    :meth:`send` sends one packet to all of them.
    """

    def __init__(self) -> None:
        self._tracks: set[PacketQueueTrack] = set()
        #: Tracks without a route: unbound, or bound and not (or no longer) connected.
        self._waiting: set[PacketQueueTrack] = set()
        self._routes: dict[PacketQueueTrack, DirectRoute] = {}
        self._track_of: dict[SrtpOutlet, PacketQueueTrack] = {}
        #: (payload type, SSRC, routes) per header; ``None`` when it must be rebuilt.
        self._groups: list[tuple[int, int, tuple[DirectRoute, ...]]] | None = []

    def __len__(self) -> int:
        return len(self._tracks)

    def __bool__(self) -> bool:
        return bool(self._tracks)

    def __iter__(self) -> Iterator[PacketQueueTrack]:
        return iter(self._tracks)

    def __contains__(self, track: object) -> bool:
        return track in self._tracks

    @property
    def routed(self) -> int:
        """How many listeners currently have a direct route."""
        return len(self._routes)

    def add(self, track: PacketQueueTrack) -> None:
        """Send to ``track`` from the next packet on (once it has a route, if bound)."""
        if track not in self._tracks:
            self._tracks.add(track)
            self._waiting.add(track)

    def discard(self, track: PacketQueueTrack) -> None:
        """Stop sending to ``track`` (no error if absent)."""
        self._tracks.discard(track)
        self._waiting.discard(track)
        route = self._routes.pop(track, None)
        if route is not None:
            self._track_of.pop(route.outlet, None)
            self._groups = None

    def unbound(self) -> list[PacketQueueTrack]:
        """Tracks that send through their own queue (not bound to a transceiver)."""
        return [track for track in self._waiting if not track.bound]

    def send(self, payload: bytes, sequence: int, timestamp: int) -> tuple[int, int]:
        """Send one RTP packet (``payload`` under a plain header) to every routed listener.

        Returns (sent, dropped): dropped counts bound listeners that could not take it (not
        connected yet, or any more). Unbound tracks are in neither count.
        """
        dropped = 0
        if self._waiting:
            routed, dropped = bind_waiting(self._waiting, self._routes, drop_unbound=False)
            if routed:
                for track in routed:
                    self._track_of[self._routes[track].outlet] = track
                self._groups = None
        groups = self._groups
        if groups is None:
            groups = self._groups = self._regroup()
        sent = 0
        for payload_type, ssrc, routes in groups:
            rtp = RTP_HEADER.pack(0x80, payload_type, sequence, timestamp, ssrc) + payload
            failed = send_direct(routes, rtp)
            sent += len(routes) - len(failed)
            if failed:
                dropped += len(failed)
                self._unroute(failed)
        return sent, dropped

    def prime(self, track: PacketQueueTrack, payload: bytes, sequence: int, timestamp: int) -> bool:
        """Route ``track`` now if it can be, and send it this packet alone; False if not.

        For a listener that just connected: it gets the current packet without waiting for
        the next one (its route then stays bound for the loop of :meth:`send`).
        """
        if track not in self._waiting or not track.bound:
            return False
        route = track.direct_route()
        if route is None:
            return False
        self._waiting.discard(track)
        self._routes[track] = route
        self._track_of[route.outlet] = track
        self._groups = None
        bound = route.outlet
        rtp = RTP_HEADER.pack(0x80, bound.payload_type, sequence, timestamp, bound.ssrc) + payload
        failed = send_direct((route,), rtp)
        if failed:
            self._unroute(failed)
        return not failed

    def _unroute(self, outlets: list[SrtpOutlet]) -> None:
        for outlet in outlets:
            track = self._track_of.pop(outlet, None)
            if track is not None:
                self._routes.pop(track, None)
                self._waiting.add(track)
        self._groups = None

    def _regroup(self) -> list[tuple[int, int, tuple[DirectRoute, ...]]]:
        grouped: dict[tuple[int, int], list[DirectRoute]] = {}
        for route in self._routes.values():
            key = (route.outlet.payload_type, route.outlet.ssrc)
            grouped.setdefault(key, []).append(route)
        return [(pt, ssrc, tuple(routes)) for (pt, ssrc), routes in grouped.items()]

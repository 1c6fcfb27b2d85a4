"""A live room's media plane: one server-side peer connection per participant.

The server offers, clients answer. Every peer gets, in this order:

- its **mic** m-line, ``recvonly`` on the server for everyone, so a promotion needs no new
  m-line and the server (not the client) enforces who is heard: packets of a listener or a
  muted speaker are dropped at the RTP tap, never forwarded, mixed or tapped;
- as a **speaker**, one ``sendonly`` m-line per *other* speaker, carrying that speaker's
  packets unchanged (:mod:`live.forwarding`); the ``a=msid`` stream id names the speaker;
- as a **listener**, one ``sendonly`` m-line with the room mix (:mod:`live.mixer`), stream
  id ``"mix"``.

aiortc cannot remove m-lines: a slot whose speaker left goes ``inactive`` and is reused by the
next one. Layout decisions are pure (:mod:`live.layout`); the shell
applies them only when the peer's signaling is stable, with one outstanding offer per peer;
changes meanwhile are queued and offered once the answer arrives (no glare).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, get_args

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from core.errors import Conflict, InvalidInput, InvalidSdp, NegotiationMismatch, ParticipantNotFound
from core.settings import RtcSettings
from live import active_speaker as speakers
from live.aiortc_seam import set_stream_id, tap_receiver, tap_sender_reports
from live.forwarding import Forwarder, ForwardTrack, PacketQueueTrack
from live.layout import PeerLayout, Role, assign_slots, desired_layout
from live.mixer import RoomMixer
from live.rtc import create_peer_connection, prepare_ice
from live.send_stats import SendStats

__all__ = [
    "MIX_STREAM_ID",
    "MediaRoom",
    "PacketTap",
    "PeerLayout",
    "Role",
    "SenderReportTap",
    "assign_slots",
    "desired_layout",
]

logger = logging.getLogger(__name__)

SendOffer = Callable[[str, str, int], Awaitable[None]]
MIX_STREAM_ID = "mix"


class PacketTap(Protocol):
    """Receives every admitted speaker packet with its arrival time (the recorder).

    A tap may also define ``on_sender_report(participant_id, ssrc, ntp_unix, rtp_timestamp,
    arrival_monotonic)`` (see :class:`SenderReportTap`): it then gets the RTCP sender reports
    of the same speakers, under the same rule (only while their RTP is admitted).
    """

    def on_rtp(self, participant_id: str, packet: RtpPacket, arrival_monotonic: float) -> None: ...


class SenderReportTap(Protocol):
    """The optional sender-report method of a :class:`PacketTap` (looked up with ``getattr``)."""

    def __call__(
        self,
        participant_id: str,
        ssrc: int,
        ntp_unix: float,
        rtp_timestamp: int,
        arrival_monotonic: float,
    ) -> None: ...


@dataclass
class _Slot:
    transceiver: RTCRtpTransceiver
    track: ForwardTrack
    source: str | None = None


@dataclass
class _Peer:
    id: str
    role: Role
    pc: RTCPeerConnection
    mic: RTCRtpTransceiver
    muted: bool = False
    slots: list[_Slot] = field(default_factory=list)
    mix: tuple[RTCRtpTransceiver, PacketQueueTrack] | None = None
    negotiation: int = 0
    awaiting: int | None = None
    dirty: bool = False
    admitted: int = 0
    refused: int = 0


class MediaRoom:
    """The media plane of one room; driven by the signaling layer (see module docstring)."""

    def __init__(
        self,
        room_id: str,
        rtc: RtcSettings,
        *,
        send_offer: SendOffer,
        on_active_speakers: Callable[[list[str]], None] | None = None,
        packet_tap: PacketTap | None = None,
        active_speaker_config: speakers.ActiveSpeakerConfig = speakers.DEFAULT_CONFIG,
    ) -> None:
        prepare_ice(rtc)
        self.room_id = room_id
        self._rtc = rtc
        self._send_offer = send_offer
        self._on_active_speakers = on_active_speakers
        self._packet_tap = packet_tap
        self._sr_tap: SenderReportTap | None = getattr(packet_tap, "on_sender_report", None)
        self._peers: dict[str, _Peer] = {}
        #: Packets sent/dropped and server-added latency of this room (metrics, bench/sfu.py).
        self.send_stats = SendStats()
        self._forwarder = Forwarder(self.send_stats)
        self.mixer = RoomMixer(room_id, on_levels=self._on_mixer_levels, stats=self.send_stats)
        self._speaker_config = active_speaker_config
        self._speaker_state = speakers.ActiveSpeakerState()
        self._ext_levels: set[str] = set()
        self._speakers: list[str] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False

    # -- introspection (tests, metrics) -------------------------------------------------

    def participants(self) -> Mapping[str, Role]:
        """Current participants and roles."""
        return {pid: peer.role for pid, peer in self._peers.items()}

    def packet_counts(self, participant_id: str) -> tuple[int, int]:
        """(admitted, refused) mic packets of ``participant_id`` so far."""
        peer = self._peer(participant_id)
        return peer.admitted, peer.refused

    def forward_tracks(self, participant_id: str) -> dict[str, ForwardTrack]:
        """The forwarded tracks ``participant_id`` currently receives, by source speaker."""
        return {s.source: s.track for s in self._peer(participant_id).slots if s.source}

    # -- the interface signaling drives --------------------------------------------------

    async def add_participant(self, participant_id: str, role: Role) -> None:
        """Create the participant's server peer connection and send its first offer."""
        self._check_open()
        _check_role(role)
        if participant_id in self._peers:
            raise Conflict(
                f"{participant_id} already has media in room {self.room_id}",
                code="participant_already_joined",
            )
        pc = create_peer_connection(self._rtc)
        mic = pc.addTransceiver("audio", direction="recvonly")
        tap_receiver(mic.receiver, partial(self._on_mic_packet, participant_id), pass_through=False)
        if self._sr_tap is not None:
            tap_sender_reports(mic.receiver, partial(self._on_mic_sender_report, participant_id))
        pc.on("track", self._consume)
        peer = self._peers[participant_id] = _Peer(participant_id, role, pc, mic)
        self._speakers = None
        pc.on("connectionstatechange", partial(self._on_connection_state, peer))
        self._start()
        if role == "listener":
            # A listener changes nobody else's layout: offer to them alone, at once.
            await self._renegotiate(peer)
        else:
            await self._reconcile_all()

    async def handle_answer(self, participant_id: str, sdp: str, negotiation: int) -> None:
        """Apply the client's answer to offer number ``negotiation``; send queued changes."""
        peer = self._peer(participant_id)
        if peer.awaiting != negotiation:
            raise NegotiationMismatch(
                f"answer for negotiation {negotiation}, but the outstanding offer to"
                f" {participant_id} is {peer.awaiting}"
            )
        try:
            await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except (
            ValueError,
            # aiortc's SDP parsing trips over some malformed answers with these (``assert``s
            # in sdp.py, an m-line without a=fingerprint / a=setup): the client's bad SDP.
            AssertionError,
            AttributeError,
            IndexError,
            KeyError,
            TypeError,
            InternalError,
            InvalidAccessError,
            InvalidStateError,
            OperationError,
        ) as exc:
            raise InvalidSdp(f"answer from {participant_id} refused: {exc}") from exc
        peer.awaiting = None
        if peer.dirty:
            peer.dirty = False
            await self._renegotiate(peer)

    async def set_role(self, participant_id: str, role: Role) -> None:
        """Promote or demote; grants apply at once, every affected peer is renegotiated."""
        _check_role(role)
        peer = self._peer(participant_id)
        if peer.role == role:
            return
        peer.role = role
        self._speakers = None
        if role == "listener":
            self._silence(participant_id)
        await self._reconcile_all()

    def set_muted(self, participant_id: str, muted: bool) -> None:
        """Muted: the participant's packets are no longer forwarded, mixed or tapped."""
        peer = self._peer(participant_id)
        peer.muted = muted
        if muted:
            self._silence(participant_id)

    async def remove_participant(self, participant_id: str) -> None:
        """Close the participant's peer; the others stop receiving them."""
        peer = self._peers.pop(participant_id, None)
        if peer is None:
            raise ParticipantNotFound(f"{participant_id} has no media in room {self.room_id}")
        self._speakers = None
        self._silence(participant_id)
        self._forwarder.forget(participant_id)
        await self._close_peer(peer)
        if not self._closed:
            await self._reconcile_all()

    async def close(self) -> None:
        """Close every peer, the mixer and every background task."""
        if self._closed:
            return
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
        peers, self._peers = list(self._peers.values()), {}
        self._speakers = None
        for peer in peers:
            await self._close_peer(peer)
        await self.mixer.close()
        for task in list(self._tasks) + ([self._ticker] if self._ticker else []):
            task.cancel()
        await asyncio.gather(
            *self._tasks, *([self._ticker] if self._ticker else []), return_exceptions=True
        )
        self._tasks.clear()

    # -- media path (event loop, per packet) --------------------------------------------

    def _on_mic_packet(self, participant_id: str, packet: RtpPacket, arrival: float) -> None:
        peer = self._peers.get(participant_id)
        if peer is None or peer.role != "speaker" or peer.muted:
            if peer is not None:
                peer.refused += 1
            return
        peer.admitted += 1
        if self._forwarder.forward(participant_id, packet):
            # Sent inline to every destination: this is the whole server-added latency.
            self.send_stats.forward_latency.observe(time.monotonic() - arrival)
        self.mixer.push(participant_id, packet, arrival)
        level = speakers.level_from_extension(packet.extensions.audio_level)
        if level is not None:
            self._ext_levels.add(participant_id)
            self._speaker_state = speakers.observe(
                self._speaker_state, participant_id, level, arrival, self._speaker_config
            )
        if self._packet_tap is not None:
            try:
                self._packet_tap.on_rtp(participant_id, packet, arrival)
            except Exception:  # the recorder must never break the live room
                logger.exception("packet tap failed for %s", participant_id)

    def _on_mic_sender_report(
        self, participant_id: str, ssrc: int, ntp_unix: float, rtp_timestamp: int, arrival: float
    ) -> None:
        peer = self._peers.get(participant_id)
        if self._sr_tap is None or peer is None or peer.role != "speaker" or peer.muted:
            return
        try:
            self._sr_tap(participant_id, ssrc, ntp_unix, rtp_timestamp, arrival)
        except Exception:  # the recorder must never break the live room
            logger.exception("sender report tap failed for %s", participant_id)

    def _on_mixer_levels(self, levels: Mapping[str, float]) -> None:
        now = time.monotonic()
        for participant_id, level in levels.items():
            peer = self._peers.get(participant_id)
            if participant_id in self._ext_levels or peer is None or peer.muted:
                continue
            self._speaker_state = speakers.observe(
                self._speaker_state, participant_id, level, now, self._speaker_config
            )

    def _on_connection_state(self, peer: _Peer) -> None:
        # SRTP keys exist from now on: hand a listener the current mix packet right away
        # instead of at the next tick (up to 20 ms later).
        if peer.pc.connectionState == "connected" and peer.mix is not None:
            self.mixer.prime(peer.mix[1])

    def _silence(self, participant_id: str) -> None:
        self.mixer.drop_speaker(participant_id)
        self._ext_levels.discard(participant_id)
        self._speaker_state = speakers.forget(self._speaker_state, participant_id)

    # -- negotiation ---------------------------------------------------------------------

    def _speaker_ids(self) -> list[str]:
        # Cached between membership and role changes: a reconcile pass asks once per peer.
        if self._speakers is None:
            self._speakers = [pid for pid, peer in self._peers.items() if peer.role == "speaker"]
        return self._speakers

    async def _reconcile_all(self) -> None:
        for peer in list(self._peers.values()):
            if self._peers.get(peer.id) is peer:
                await self._renegotiate(peer)

    async def _renegotiate(self, peer: _Peer) -> None:
        if peer.awaiting is not None:
            peer.dirty = True
            return
        changed = self._apply_layout(peer)
        if not changed and peer.negotiation > 0:
            return
        peer.negotiation += 1
        peer.awaiting = number = peer.negotiation
        await peer.pc.setLocalDescription(await peer.pc.createOffer())
        try:
            await self._send_offer(peer.id, peer.pc.localDescription.sdp, number)
        except Exception:  # the signaling layer owns that connection's fate
            logger.exception("sending offer %d to %s failed", number, peer.id)

    def _apply_layout(self, peer: _Peer) -> bool:
        """Make ``peer``'s transceivers match the room; True when an offer is needed."""
        layout = desired_layout(peer.id, peer.role, self._speaker_ids())
        changed = False
        target = assign_slots([slot.source for slot in peer.slots], layout.forwards)
        for index, source in enumerate(target):
            if index == len(peer.slots):
                track = ForwardTrack()
                transceiver = peer.pc.addTransceiver(track, direction="inactive")
                track.bind(transceiver)
                peer.slots.append(_Slot(transceiver, track))
            slot = peer.slots[index]
            if slot.source == source:
                continue
            changed = True
            if slot.source is not None:
                self._forwarder.disconnect(slot.source, peer.id)
            slot.source = source
            if source is None:
                slot.transceiver.direction = "inactive"
            else:
                set_stream_id(slot.transceiver.sender, source)
                self._forwarder.connect(source, peer.id, slot.track)
                slot.transceiver.direction = "sendonly"
        return self._apply_mix(peer, layout.mix) or changed

    def _apply_mix(self, peer: _Peer, wanted: bool) -> bool:
        if peer.mix is None:
            if not wanted:
                return False
            track = self.mixer.attach_listener()
            transceiver = peer.pc.addTransceiver(track, direction="sendonly")
            self.mixer.bind_listener(track, transceiver)
            set_stream_id(transceiver.sender, MIX_STREAM_ID)
            peer.mix = (transceiver, track)
            return True
        transceiver, mix_track = peer.mix
        direction = "sendonly" if wanted else "inactive"
        if transceiver.direction == direction:
            return False
        transceiver.direction = direction
        self.mixer.set_listening(mix_track, wanted)
        return True

    # -- plumbing ------------------------------------------------------------------------

    def _start(self) -> None:
        self.mixer.start()
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(
                self._tick_active_speakers(), name=f"active-speakers-{self.room_id}"
            )

    async def _tick_active_speakers(self) -> None:
        while True:
            await asyncio.sleep(self._speaker_config.min_interval)
            self._speaker_state, update = speakers.decide(
                self._speaker_state, time.monotonic(), self._speaker_config
            )
            if update is not None and self._on_active_speakers is not None:
                try:
                    self._on_active_speakers(update)
                except Exception:
                    logger.exception("active speaker callback failed in %s", self.room_id)

    def _consume(self, track: MediaStreamTrack) -> None:
        # The mic is read at the RTP tap; draining the remote track still guarantees that
        # nothing ever queues on it, and the task ends when the receiver stops.
        task = asyncio.get_running_loop().create_task(_drain(track))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_peer(self, peer: _Peer) -> None:
        if peer.mix is not None:
            self.mixer.detach_listener(peer.mix[1])
        for slot in peer.slots:
            slot.track.stop()
        await peer.pc.close()

    def _peer(self, participant_id: str) -> _Peer:
        peer = self._peers.get(participant_id)
        if peer is None:
            raise ParticipantNotFound(f"{participant_id} has no media in room {self.room_id}")
        return peer

    def _check_open(self) -> None:
        if self._closed:
            raise Conflict(f"room {self.room_id} is closed", code="room_closed")


def _check_role(role: str) -> None:
    if role not in get_args(Role):
        raise InvalidInput(
            f"role must be 'speaker' or 'listener', not {role!r}", code="invalid_role"
        )


async def _drain(track: MediaStreamTrack) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()

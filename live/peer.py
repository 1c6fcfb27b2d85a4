"""The client side of a room's media: an aiortc peer that answers the server's offers.

Used by the tests and by the Python client (``live.client``). It publishes one given
``MediaStreamTrack`` on the mic m-line while it has one (:meth:`ClientPeer.publish`), consumes
every remote track it is offered (decoded audio is kept for a few seconds, mono float32), and
tells which room stream each m-line carries: the speaker id for forwarded tracks, ``"mix"`` for
the listener mix (the ``a=msid`` stream id of the server's offer).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from aiortc import MediaStreamTrack, RTCRtpTransceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket
from aiortc.sdp import SessionDescription
from av import AudioFrame
from numpy.typing import NDArray

from core.settings import RtcSettings
from live.aiortc_seam import RtpTap, is_tapped, tap_receiver
from live.rtc import create_peer_connection

__all__ = ["ClientPeer", "ReceivedAudio", "ReceivedPacket"]

SAMPLE_RATE = 48000


@dataclass(frozen=True)
class ReceivedPacket:
    """One RTP packet as the client saw it, before its jitter buffer."""

    payload: bytes
    timestamp: int
    arrival: float


@dataclass
class ReceivedAudio:
    """Decoded audio of one remote track: (arrival time, mono float32 chunk), bounded."""

    mid: str
    keep_seconds: float = 10.0
    chunks: deque[tuple[float, NDArray[np.float32]]] = field(default_factory=deque)
    frames: int = 0

    def add(self, arrival: float, samples: NDArray[np.float32]) -> None:
        self.chunks.append((arrival, samples))
        self.frames += 1
        while self.chunks and arrival - self.chunks[0][0] > self.keep_seconds:
            self.chunks.popleft()

    def since(self, start: float) -> NDArray[np.float32]:
        """Samples of frames that arrived at or after ``start`` (``time.monotonic()``)."""
        parts = [chunk for arrival, chunk in self.chunks if arrival >= start]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


class ClientPeer:
    """One participant's peer connection, answering the room's offers."""

    def __init__(
        self,
        rtc: RtcSettings,
        *,
        publish: MediaStreamTrack | None = None,
        record_rtp: bool = False,
    ) -> None:
        self.pc = create_peer_connection(rtc)
        self._publish = publish
        self._record_rtp = record_rtp
        self.audio: dict[str, ReceivedAudio] = {}
        self.rtp: dict[str, deque[ReceivedPacket]] = {}
        self._streams: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.pc.on("track", self._on_track)

    async def handle_offer(self, sdp: str) -> str:
        """Apply the server's offer; returns the answer SDP to send back."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        self._apply_publish()
        if self._record_rtp:
            for transceiver in self.pc.getTransceivers():
                if transceiver.mid is not None and not is_tapped(transceiver.receiver):
                    log: deque[ReceivedPacket] = deque(maxlen=5000)
                    self.rtp[transceiver.mid] = log
                    tap_receiver(transceiver.receiver, _recorder(log), pass_through=True)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._streams = _active_streams(self.pc.remoteDescription.sdp)
        return str(self.pc.localDescription.sdp)

    def publish(self, track: MediaStreamTrack | None) -> None:
        """Send ``track`` as the mic (``None``: stop sending); the next answer announces it."""
        self._publish = track
        self._apply_publish()

    def streams(self) -> dict[str, str]:
        """Room streams currently offered to this peer: stream id (speaker or "mix") → mid."""
        return dict(self._streams)

    def audio_of(self, stream_id: str) -> ReceivedAudio | None:
        """Decoded audio of the m-line that currently carries ``stream_id``."""
        mid = self._streams.get(stream_id)
        return self.audio.get(mid) if mid is not None else None

    async def close(self) -> None:
        """Close the peer connection and stop consuming."""
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def _mic(self) -> RTCRtpTransceiver | None:
        transceivers = self.pc.getTransceivers()
        return transceivers[0] if transceivers else None

    def _apply_publish(self) -> None:
        mic = self._mic()
        if mic is None:
            return
        if mic.sender.track is not self._publish:
            mic.sender.replaceTrack(self._publish)
        mic.direction = "sendrecv" if self._publish is not None else "recvonly"

    def _on_track(self, track: MediaStreamTrack) -> None:
        mid = next((t.mid for t in self.pc.getTransceivers() if t.receiver.track is track), None)
        if mid is None:
            mid = f"unknown-{len(self.audio)}"
        received = self.audio.setdefault(mid, ReceivedAudio(mid))
        task = asyncio.get_running_loop().create_task(_consume(track, received))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _recorder(log: deque[ReceivedPacket]) -> RtpTap:
    def record(packet: RtpPacket, arrival: float) -> None:
        log.append(ReceivedPacket(bytes(packet.payload), packet.timestamp, arrival))

    return record


def _active_streams(sdp: str) -> dict[str, str]:
    """stream id → mid for the m-lines the server is sending on."""
    description = SessionDescription.parse(sdp)
    streams: dict[str, str] = {}
    for media in description.media:
        if media.direction in ("sendonly", "sendrecv") and media.msid and media.rtp.muxId:
            streams[media.msid.split()[0]] = media.rtp.muxId
    return streams


async def _consume(track: MediaStreamTrack, received: ReceivedAudio) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            if not isinstance(frame, AudioFrame):
                continue
            samples = frame.to_ndarray()
            channels = len(frame.layout.channels)
            mono = samples.reshape(-1, channels).mean(axis=1).astype(np.float32) / 32768.0
            received.add(time.monotonic(), mono)

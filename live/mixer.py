"""The room mix for listeners: decode each speaker once, mix, encode once per 20 ms.

One clock per room ticks every 20 ms. On each tick the loop takes at most one packet per
speaker out of a short :class:`PlayoutBuffer` (pure, ~40 ms), then one job on the room's own
worker thread decodes those packets, measures each speaker's level, sums, clips and encodes one
Opus packet. That packet is serialised into ONE RTP packet (every listener's sender uses the
room's mix SSRC, sequence and timestamp line, :meth:`RoomMixer.bind_listener`), which the tick
then protects and sends to each listener in one pre-bound loop (:class:`live.fanout.Fanout`),
no queue or coroutine per listener. A listener costs one SRTP protect and one ``sendto`` per
tick, whatever the number of speakers.
(Unbound listener tracks — the mix link to edges, unit tests — get the ``av.Packet`` queued.)

A packet lost or late in the middle of a speaker's playout is concealed (:func:`conceal`: the
speaker's last frame again, fading, for up to 60 ms) rather than dropped to silence, so
listeners hear no hole where the network lost a packet.

The worker thread and the event loop share the GIL: a live node's process runs with a short
switch interval so renders do not wait on it (:func:`live.process.prepare_live_process`, set
once at the node's start-up, not here).

Nothing here decides who is mixed: ``MediaRoom`` only pushes packets of speakers who hold the
grant and are not muted.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import av
import numpy as np
from aiortc import RTCRtpTransceiver
from aiortc.rtp import RtpPacket
from numpy.typing import NDArray

from live.aiortc_seam import set_ssrc
from live.fanout import Fanout
from live.forwarding import FRAME_TICKS, PacketQueueTrack, unwrap_delta
from live.send_stats import SendStats

__all__ = [
    "CONCEAL_FADE",
    "CONCEAL_FRAMES",
    "LOST",
    "MIX_INTERVAL",
    "PlayoutBuffer",
    "RoomMixer",
    "conceal",
    "level_dbov",
]

logger = logging.getLogger(__name__)

MIX_INTERVAL = FRAME_TICKS / 48000
SILENCE_DBOV = -127.0
_TIME_BASE = fractions.Fraction(1, 48000)
#: Missing frames in a row that are concealed before a speaker's share of the mix goes silent.
CONCEAL_FRAMES = 3
#: Gain applied per concealed frame (the 1st at 0.7, the 2nd at 0.49, ...).
CONCEAL_FADE = 0.7
#: Marks a speaker's lost frame in the renderer's input (pushes never carry empty payloads).
LOST = b""


class PlayoutBuffer:
    """A short jitter buffer for one speaker, keyed by RTP timestamp (assumes 20 ms packets).

    ``push`` on arrival, ``pop`` once per mixer tick. Playout starts once ``prefetch`` packets
    are held; a missing packet yields ``None`` (silence) and playout moves on; after
    ``reset_after`` misses in a row with nothing buffered (the speaker paused, was muted, or
    uses DTX) playout stops and re-prefetches on the next packets, so a pause never turns into
    added delay. Late packets are dropped; more than ``capacity`` held drops the oldest. When a
    burst (or a sender clock running fast) leaves more than ``prefetch + slack`` packets
    waiting, each tick skips one stale packet until the depth is back: latency stays bounded
    (~``prefetch`` frames) instead of keeping whatever a burst once added.
    """

    def __init__(
        self, *, prefetch: int = 2, capacity: int = 8, reset_after: int = 5, slack: int = 2
    ) -> None:
        self.prefetch = prefetch
        self.capacity = capacity
        self.reset_after = reset_after
        self.slack = slack
        self.skipped = 0
        self.late = 0
        self.overflowed = 0
        self._packets: dict[int, bytes] = {}
        self._arrivals: dict[int, float] = {}
        #: Arrival time of the payload the last :meth:`pop` returned (latency accounting).
        self.last_arrival = 0.0
        #: Whether the last :meth:`pop`'s ``None`` was a packet missing mid-playout (lost or
        #: late: conceal it) rather than no playout at all (prefetching, paused).
        self.lost = False
        self._ssrc: int | None = None
        self._ref_raw = 0
        self._ref = 0
        self._next: int | None = None
        self._misses = 0

    def __len__(self) -> int:
        return len(self._packets)

    def reset(self) -> None:
        """Forget everything (the next packets start a new playout)."""
        self._packets.clear()
        self._arrivals.clear()
        self._ssrc = None
        self._next = None
        self._misses = 0

    def push(self, ssrc: int, timestamp: int, payload: bytes, arrival: float = 0.0) -> None:
        """Store one packet's payload (``arrival``: when it reached the server, monotonic)."""
        if ssrc != self._ssrc:
            self.reset()
            self._ssrc, self._ref_raw, self._ref = ssrc, timestamp, 0
        position = self._ref + unwrap_delta(self._ref_raw, timestamp)
        if position > self._ref:
            self._ref_raw, self._ref = timestamp, position
        if self._next is not None:
            if position < self._next:
                self.late += 1
                return
            if position - self._next > self.capacity * FRAME_TICKS:
                # A jump far ahead of playout (restart, long clock slip): start over there.
                self._packets.clear()
                self._arrivals.clear()
                self._next = None
        self._packets[position] = payload
        self._arrivals[position] = arrival
        while len(self._packets) > self.capacity:
            oldest = min(self._packets)
            del self._packets[oldest]
            self._arrivals.pop(oldest, None)
            self.overflowed += 1
            if self._next is not None:
                self._next = min(self._packets)

    def pop(self) -> bytes | None:
        """The payload to play on this tick, or ``None`` for silence (see :attr:`lost`)."""
        self.lost = False
        if self._next is None:
            if len(self._packets) < self.prefetch:
                return None
            self._next = min(self._packets)
        elif len(self._packets) > self.prefetch + self.slack:
            # Too deep: drop the oldest waiting frame instead of playing it late.
            self._next = min(self._packets)
            del self._packets[self._next]
            self._arrivals.pop(self._next, None)
            self._next += FRAME_TICKS
            self.skipped += 1
        payload = self._packets.pop(self._next, None)
        self.last_arrival = self._arrivals.pop(self._next, 0.0)
        self._next += FRAME_TICKS
        if payload is not None:
            self._misses = 0
            return payload
        self._misses += 1
        self.lost = True
        if not self._packets and self._misses >= self.reset_after:
            self._next = None
            self._misses = 0
        return None


def conceal(last: NDArray[np.float32], run: int) -> NDArray[np.float32] | None:
    """A stand-in for the ``run``-th missing frame in a row (1-based) after a speaker's ``last``
    decoded frame: ``last`` again at ``CONCEAL_FADE ** run``, or ``None`` (silence) past
    :data:`CONCEAL_FRAMES`. A repeated 20 ms of voice masks a lost packet far better than a
    hole; the fade keeps a longer outage from turning into a buzz."""
    if run < 1 or run > CONCEAL_FRAMES or last.size == 0:
        return None
    return (last * np.float32(CONCEAL_FADE**run)).astype(np.float32)


def level_dbov(samples: NDArray[np.float32]) -> float:
    """RMS level of ``samples`` (full scale ±1.0) in dBov, floored at −127."""
    if samples.size == 0:
        return SILENCE_DBOV
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(SILENCE_DBOV, 20.0 * math.log10(rms)) if rms > 0 else SILENCE_DBOV


class _Renderer:
    """Decoders, encoder and mixing maths; used only from the room's worker thread."""

    def __init__(self, bitrate: int) -> None:
        self._decoders: dict[str, av.AudioCodecContext] = {}
        self._encoder = av.CodecContext.create("libopus", "w")
        self._encoder.sample_rate = 48000
        self._encoder.layout = "mono"
        self._encoder.format = "s16"
        self._encoder.bit_rate = bitrate
        self._encoder.time_base = _TIME_BASE
        self._encoder.options = {"application": "voip"}
        self.decoders_created = 0
        self.decode_errors = 0
        self.concealed = 0
        #: speaker → (last decoded frame, missing frames concealed since).
        self._last: dict[str, tuple[NDArray[np.float32], int]] = {}

    def _decode(self, speaker: str, payload: bytes) -> NDArray[np.float32] | None:
        decoder = self._decoders.get(speaker)
        if decoder is None:
            decoder = av.CodecContext.create("libopus", "r")
            decoder.sample_rate = 48000
            decoder.layout = "mono"
            decoder.format = "s16"
            self._decoders[speaker] = decoder
            self.decoders_created += 1
        try:
            frames = decoder.decode(av.Packet(payload))
        except av.FFmpegError:
            self.decode_errors += 1
            return None
        if not frames:
            return None
        pcm = np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])
        return pcm[:FRAME_TICKS].astype(np.float32) / 32768.0

    def _play(self, speaker: str, payload: bytes | None) -> NDArray[np.float32] | None:
        """The speaker's samples this tick: decoded, concealed (``LOST`` or undecodable) or
        ``None`` when the speaker is not playing."""
        if payload is None:
            self._last.pop(speaker, None)
            return None
        pcm = self._decode(speaker, payload) if payload != LOST else None
        if pcm is not None:
            self._last[speaker] = (pcm, 0)
            return pcm
        last = self._last.get(speaker)
        if last is None:
            return None
        run = last[1] + 1
        self._last[speaker] = (last[0], run)
        stand_in = conceal(last[0], run)
        if stand_in is not None:
            self.concealed += 1
        return stand_in

    def render(
        self, payloads: Mapping[str, bytes | None], pts: int
    ) -> tuple[list[av.Packet[Any]], dict[str, float]]:
        """Decode, measure, mix and encode one 20 ms tick."""
        for gone in self._decoders.keys() - payloads.keys():
            del self._decoders[gone]
            self._last.pop(gone, None)
        mix = np.zeros(FRAME_TICKS, dtype=np.float32)
        levels: dict[str, float] = {}
        for speaker, payload in payloads.items():
            pcm = self._play(speaker, payload)
            if pcm is None:
                levels[speaker] = SILENCE_DBOV
                continue
            levels[speaker] = level_dbov(pcm)
            mix[: pcm.size] += pcm
        np.clip(mix, -1.0, 1.0, out=mix)
        frame = av.AudioFrame.from_ndarray(
            (mix * 32767.0).astype(np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = 48000
        frame.pts = pts
        frame.time_base = _TIME_BASE
        packets = list(self._encoder.encode(frame))
        for packet in packets:
            # Our own timeline: libopus starts at a negative pts (pre-skip).
            packet.pts = pts
            packet.time_base = _TIME_BASE
        return packets, levels


class RoomMixer:
    """The room's listener mix: one clock, one worker thread, one encoder.

    ``push`` (event loop, cheap) feeds speakers' packets; ``attach_listener`` gives the track to
    put on a listener's sender. Levels measured while decoding go to ``on_levels`` on the loop.
    """

    def __init__(
        self,
        room_id: str,
        *,
        on_levels: Callable[[Mapping[str, float]], None] | None = None,
        bitrate: int = 32000,
        prefetch: int = 2,
        stats: SendStats | None = None,
    ) -> None:
        self.room_id = room_id
        self._on_levels = on_levels
        self._buffers: dict[str, PlayoutBuffer] = {}
        self._prefetch = prefetch
        self._listeners = Fanout()
        self._renderer = _Renderer(bitrate)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mix-{room_id}")
        self._task: asyncio.Task[None] | None = None
        self._pts = 0
        self.ticks = 0
        self.skipped_ticks = 0
        self.stats = stats if stats is not None else SendStats()
        # The mix's one RTP stream, shared by every listener's sender (see module docstring).
        self.ssrc = random.getrandbits(32)
        self._sequence = random.getrandbits(16)
        self._timestamp_origin = random.getrandbits(32)
        #: The last mix packet sent (payload, sequence, timestamp), for :meth:`prime`.
        self._last: tuple[bytes, int, int] | None = None
        self.primed = 0

    @property
    def decoders_created(self) -> int:
        """How many Opus decoders the mix has created (one per speaker it has heard)."""
        return self._renderer.decoders_created

    @property
    def concealed(self) -> int:
        """Speaker frames concealed so far (lost or late packets mid-playout)."""
        return self._renderer.concealed

    def attach_listener(self) -> PacketQueueTrack:
        """A new track carrying the mix; put it on a listener's sender."""
        track = PacketQueueTrack(capacity=5)
        self._listeners.add(track)
        return track

    def bind_listener(self, track: PacketQueueTrack, transceiver: RTCRtpTransceiver) -> None:
        """Send the mix straight to ``transceiver`` (put ``track`` on it first); before its
        first offer, since its SSRC becomes the mix's."""
        set_ssrc(transceiver.sender, self.ssrc)
        track.bind(transceiver)

    def prime(self, track: PacketQueueTrack) -> bool:
        """Send a just-connected listener the current mix packet now (not at the next tick);
        False when there is none yet or ``track`` cannot take it."""
        if self._last is None or track not in self._listeners:
            return False
        if not self._listeners.prime(track, *self._last):
            return False
        self.primed += 1
        self.stats.mix_sent += 1
        return True

    def set_listening(self, track: PacketQueueTrack, listening: bool) -> None:
        """Pause or resume feeding ``track`` without ending it (its sender keeps running)."""
        if listening and track.readyState == "live":
            self._listeners.add(track)
        else:
            self._listeners.discard(track)

    def detach_listener(self, track: PacketQueueTrack) -> None:
        """Stop feeding ``track`` and end it."""
        self._listeners.discard(track)
        track.stop()

    def push(self, speaker: str, packet: RtpPacket, arrival: float | None = None) -> None:
        """Buffer one of ``speaker``'s packets (dropped while nobody listens)."""
        if not self._listeners or not packet.payload:
            return
        buffer = self._buffers.get(speaker)
        if buffer is None:
            buffer = self._buffers[speaker] = PlayoutBuffer(prefetch=self._prefetch)
        buffer.push(
            packet.ssrc,
            packet.timestamp,
            packet.payload,
            time.monotonic() if arrival is None else arrival,
        )

    def drop_speaker(self, speaker: str) -> None:
        """Take ``speaker`` out of the mix now (demoted, muted, left)."""
        self._buffers.pop(speaker, None)

    def start(self) -> None:
        """Start the room clock (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"mixer-{self.room_id}"
            )

    async def close(self) -> None:
        """Stop the clock, end every listener track, release the worker thread."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for track in list(self._listeners):
            self.detach_listener(track)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tick = 0
        while True:
            tick += 1
            delay = start + tick * MIX_INTERVAL - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -10 * MIX_INTERVAL:
                # Far behind (loop stalled): drop the backlog rather than burst-send it.
                skipped = int(-delay / MIX_INTERVAL)
                self.skipped_ticks += skipped
                tick += skipped
                self._pts += skipped * FRAME_TICKS
            try:
                await self._tick(loop)
            except Exception:  # one bad tick must not silence the room
                logger.exception("mixer tick failed in room %s", self.room_id)

    async def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._listeners:
            self._buffers.clear()
            return
        payloads: dict[str, bytes | None] = {}
        arrivals: list[float] = []
        for speaker, buffer in self._buffers.items():
            payload = payloads[speaker] = buffer.pop()
            if payload is not None:
                arrivals.append(buffer.last_arrival)
            elif buffer.lost:
                payloads[speaker] = LOST
        pts = self._pts
        self._pts += FRAME_TICKS
        packets, levels = await loop.run_in_executor(
            self._executor, self._renderer.render, payloads, pts
        )
        self.ticks += 1
        for packet in packets:
            self._send(packet)
        if packets and arrivals:
            sent = time.monotonic()
            for arrival in arrivals:
                self.stats.mix_latency.observe(sent - arrival)
        if self._on_levels is not None and levels:
            self._on_levels(levels)

    def _send(self, packet: av.Packet[Any]) -> None:
        """One mix packet to every listener: one header per tick, protected per listener."""
        self._sequence = (self._sequence + 1) & 0xFFFF
        timestamp = (self._timestamp_origin + (packet.pts or 0)) & 0xFFFFFFFF
        for track in self._listeners.unbound():
            track.offer(packet)
        payload = bytes(packet)
        self._last = (payload, self._sequence, timestamp)
        sent, dropped = self._listeners.send(payload, self._sequence, timestamp)
        self.stats.mix_sent += sent
        self.stats.mix_dropped += dropped

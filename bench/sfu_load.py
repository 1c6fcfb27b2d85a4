"""Lightweight room participants for bench/sfu.py: many per process, nothing decoded.

Each participant speaks the room signaling protocol over a WebSocket (snapshot, offers →
answers, requests → acks; docs/protocol.md) and completes ICE and DTLS with a real aiortc
``RTCPeerConnection``. Once the transport is connected, incoming SRTP packets are taken off the
UDP socket before aiortc sees them (:func:`live.aiortc_seam.tap_datagrams`): the RTP header is
in clear, so the client counts packets, sequence gaps and arrival times per SSRC without
unprotecting, parsing or decoding anything (a packet that slips through before the tap is
counted at the RTP tap instead, and aiortc never decodes it either).

Speakers publish real Opus (pre-encoded once, paced at 20 ms; the packets are sent as they
are). In ``speakers`` mode the first token is the host's: it opens the room, then invites
every other speaker, who accepts.

Control (one line each, on stdin/stdout, so the orchestrator can run several processes):
the process prints ``ready {json}`` once every participant has heard its first audio packet
(join times inside), answers ``mark`` with ``mark {json}`` (counters per participant), and
``stop`` makes everyone leave and the process exit. It also exits by itself after
``--max-seconds``.

Usage: ``python -m bench.sfu_load --url http://127.0.0.1:PORT --room ROOM --tokens FILE
[--mode listeners|speakers]`` where FILE holds ``[[user_id, token], ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aioice.stun
from aiortc import MediaStreamTrack, RTCRtpTransceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from core.settings import RtcSettings
from live.aiortc_seam import opus_packet, tap_datagrams, tap_receiver
from live.client import ws_url
from live.rtc import create_peer_connection

FRAME_SECONDS = 0.02
#: The steps of a join, in order: WebSocket open, snapshot received, first offer received,
#: answer sent (remote + local description set), ICE connected, DTLS connected (SRTP keys),
#: first audio packet received.
JOIN_STEPS = ("ws", "snapshot", "offer", "answer", "ice", "dtls", "audio")
_SEQ = 1 << 16
_TS = 1 << 32
_FRAME_TICKS = 960


@dataclass
class SeqTracker:
    """Received count, extended-sequence range and timestamp range of one SSRC.

    The load's streams never pause (speakers send every 20 ms, the mix ticks every 20 ms), so
    a 20 ms frame missing from the timestamp line is audio lost even when no sequence number
    is: a server that stalls and skips mix ticks shows up here.
    """

    received: int = 0
    first: int | None = None
    highest: int = 0
    first_time: int = 0
    highest_time: int = 0

    def add(self, sequence: int, timestamp: int = 0) -> None:
        self.received += 1
        if self.first is None:
            self.first = self.highest = sequence
            self.first_time = self.highest_time = timestamp
            return
        delta = (sequence - self.highest) % _SEQ
        if delta < _SEQ // 2:
            self.highest += delta
        elif self.highest - (_SEQ - delta) < self.first:
            self.first = self.highest - (_SEQ - delta)
        step = (timestamp - self.highest_time) % _TS
        if step < _TS // 2:
            self.highest_time += step
        elif self.highest_time - (_TS - step) < self.first_time:
            self.first_time = self.highest_time - (_TS - step)

    @property
    def expected(self) -> int:
        """Packets expected: by sequence numbers, or by 20 ms frames if that is more."""
        if self.first is None:
            return 0
        by_time = (self.highest_time - self.first_time) // _FRAME_TICKS + 1
        return max(self.highest - self.first + 1, by_time)


@dataclass
class Counters:
    """What one participant received (all SSRCs), for the orchestrator's marks."""

    streams: dict[int, SeqTracker] = field(default_factory=dict)
    first_arrival: float | None = None
    last_arrival: float = 0.0
    max_gap: float = 0.0

    def on_rtp(self, ssrc: int, sequence: int, arrival: float, timestamp: int = 0) -> None:
        tracker = self.streams.get(ssrc)
        if tracker is None:
            tracker = self.streams[ssrc] = SeqTracker()
        tracker.add(sequence, timestamp)
        if self.first_arrival is None:
            self.first_arrival = arrival
        elif arrival - self.last_arrival > self.max_gap:
            self.max_gap = arrival - self.last_arrival
        self.last_arrival = arrival

    def mark(self) -> dict[str, Any]:
        gap, self.max_gap = self.max_gap, 0.0
        return {
            "received": sum(t.received for t in self.streams.values()),
            "expected": sum(t.expected for t in self.streams.values()),
            "streams": len(self.streams),
            "max_gap": gap,
        }


class OpusSource(MediaStreamTrack):
    """Pre-encoded Opus packets, looped, paced in real time (sent as-is by aiortc)."""

    kind = "audio"

    def __init__(self, packets: list[bytes], offset: int) -> None:
        super().__init__()
        self._packets = packets
        self._index = offset
        self._start: float | None = None
        self._sent = 0

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        delay = self._start + self._sent * FRAME_SECONDS - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        payload = self._packets[self._index % len(self._packets)]
        packet = opus_packet(payload, self._sent * 960)
        self._index += 1
        self._sent += 1
        return packet


class Participant:
    """One signaling connection + one peer connection, counting what arrives."""

    def __init__(self, url: str, room: str, user: str, token: str, rtc: RtcSettings) -> None:
        self.user, self._url = user, ws_url(url, room, token)
        self._rtc = rtc
        self.counters = Counters()
        self.publish: MediaStreamTrack | None = None
        self.started = 0.0
        self.first_audio = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._pc = create_peer_connection(rtc)
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None
        self._tapped = False
        #: Monotonic time of each join step (see :data:`JOIN_STEPS`), first occurrence only.
        self.steps: dict[str, float] = {}
        self._pc.on("iceconnectionstatechange", self._on_ice_state)
        self._pc.on("connectionstatechange", self._on_state)

    def _step(self, name: str) -> None:
        self.steps.setdefault(name, time.monotonic())

    def _on_ice_state(self) -> None:
        if self._pc.iceConnectionState in ("connected", "completed"):
            self._step("ice")

    def _on_state(self) -> None:
        if self._pc.connectionState == "connected":
            self._step("dtls")

    def join_steps(self) -> dict[str, float] | None:
        """Milliseconds from the token in hand to each join step (None until joined)."""
        if self.counters.first_arrival is None:
            return None
        marks = {**self.steps, "audio": self.counters.first_arrival}
        return {name: 1000 * (marks[name] - self.started) for name in JOIN_STEPS if name in marks}

    @property
    def join_seconds(self) -> float | None:
        first = self.counters.first_arrival
        return None if first is None else first - self.started

    async def connect(self) -> None:
        """Token in hand → WebSocket → snapshot; offers are answered from then on."""
        self.started = time.monotonic()
        self._ws = await ws_connect(self._url, open_timeout=30, max_size=2**22)
        self._step("ws")
        snapshot = json.loads(await self._ws.recv())
        self._step("snapshot")
        if snapshot.get("type") != "snapshot":
            raise RuntimeError(f"{self.user}: expected a snapshot, got {snapshot.get('type')}")
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def request(self, kind: str, **fields: Any) -> None:
        if self._ws is None:
            raise RuntimeError("not connected")
        request_id = f"r{next(self._ids)}"
        future = self._pending[request_id] = asyncio.get_running_loop().create_future()
        await self._ws.send(json.dumps({"type": kind, "request_id": request_id, **fields}))
        await asyncio.wait_for(future, 30)

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
        await self._pc.close()

    def _on_packet(self, data: bytes, arrival: float) -> None:
        self.counters.on_rtp(
            int.from_bytes(data[8:12]),
            int.from_bytes(data[2:4]),
            arrival,
            int.from_bytes(data[4:8]),
        )
        if not self.first_audio.is_set():
            self.first_audio.set()

    def _on_parsed(self, packet: RtpPacket, arrival: float) -> None:
        self.counters.on_rtp(packet.ssrc, packet.sequence_number, arrival, packet.timestamp)
        if not self.first_audio.is_set():
            self.first_audio.set()

    async def _read(self) -> None:
        ws = self._ws
        if ws is None:
            return
        with contextlib.suppress(Exception):
            async for raw in ws:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "offer":
                    self._step("offer")
                    answer = await self._answer(message["sdp"])
                    reply = {"type": "answer", "sdp": answer, "negotiation": message["negotiation"]}
                    await ws.send(json.dumps(reply))
                    self._step("answer")
                elif kind in ("ack", "pong", "error"):
                    future = self._pending.pop(str(message.get("request_id")), None)
                    if future is not None and not future.done():
                        if kind == "error":
                            future.set_exception(RuntimeError(f"{self.user}: {message}"))
                        else:
                            future.set_result(None)

    async def _answer(self, sdp: str) -> str:
        pc = self._pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        transceivers = pc.getTransceivers()
        if self.publish is not None and transceivers:
            mic = transceivers[0]
            if mic.sender.track is not self.publish:
                mic.sender.replaceTrack(self.publish)
            mic.direction = "sendrecv"
        for transceiver in transceivers:
            receiver = transceiver.receiver
            if "_handle_rtp_packet" not in vars(receiver):
                tap_receiver(receiver, self._on_parsed, pass_through=False)
        await pc.setLocalDescription(await pc.createAnswer())
        if not self._tapped and transceivers:
            asyncio.get_running_loop().create_task(self._tap_when_connected(transceivers[0]))
        return str(pc.localDescription.sdp)

    async def _tap_when_connected(self, transceiver: RTCRtpTransceiver) -> None:
        for _ in range(600):
            if self._tapped:
                return
            if tap_datagrams(transceiver, self._on_packet):
                self._tapped = True
                return
            await asyncio.sleep(0.05)


async def _join_all(
    participants: list[Participant], concurrency: int, timeout: float
) -> dict[str, float | None]:
    gate = asyncio.Semaphore(concurrency)

    async def join(p: Participant) -> None:
        async with gate:
            await p.connect()
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(p.first_audio.wait(), timeout)

    await asyncio.gather(*(join(p) for p in participants))
    return {p.user: p.join_seconds for p in participants}


async def _promote(host: Participant, speakers: list[Participant]) -> None:
    for speaker in speakers:
        await host.request("invite", target=speaker.user)
        await speaker.request("accept_invite")


async def _control(participants: list[Participant], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while not stop.is_set():
        line = (await reader.readline()).decode().strip()
        if line == "mark":
            marks = {p.user: p.counters.mark() for p in participants}
            print("mark " + json.dumps({"at": time.monotonic(), "participants": marks}), flush=True)
        elif line in ("stop", ""):
            stop.set()


async def run(args: argparse.Namespace) -> int:
    aioice.stun.RETRY_MAX, aioice.stun.RETRY_RTO = 2, 0.2  # loopback: fail fast, as in tests
    rtc = RtcSettings(host_addresses=["127.0.0.1"], ice_servers=[])
    pairs: list[list[str]] = json.loads(Path(args.tokens).read_text())
    participants = [Participant(args.url, args.room, u, t, rtc) for u, t in pairs]
    stop = asyncio.Event()
    if args.mode == "speakers":
        from bench.recorder import opus_packets

        packets = opus_packets(4.0)
        for index, participant in enumerate(participants):
            participant.publish = OpusSource(packets, offset=index * 17)
        host, others = participants[0], participants[1:]
        await host.connect()
        for other in others:
            await other.connect()
        await _promote(host, others)
        await asyncio.sleep(1.0)
        joins = {p.user: p.join_seconds for p in participants}
    else:
        joins = await _join_all(participants, args.concurrency, args.join_timeout)
    steps = {p.user: p.join_steps() for p in participants}
    print("ready " + json.dumps({"joins": joins, "steps": steps}), flush=True)
    control = asyncio.get_running_loop().create_task(_control(participants, stop))
    with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    control.cancel()
    await asyncio.gather(*(p.close() for p in participants), return_exceptions=True)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.sfu_load", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--room", required=True)
    parser.add_argument("--tokens", required=True, help="JSON file: [[user_id, token], ...]")
    parser.add_argument("--mode", choices=["listeners", "speakers"], default="listeners")
    parser.add_argument("--concurrency", type=int, default=8, help="joins in flight")
    parser.add_argument("--join-timeout", type=float, default=30.0)
    parser.add_argument("--max-seconds", type=float, default=600.0, help="exit by itself after")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

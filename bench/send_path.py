"""The room mix's send path alone: CPU per packet per listener, old loop against the new one.

One process sends, in real time (one packet per listener every ``--interval``), to N listeners,
each with its own SRTP session (keys and policy as aiortc's ``RTCDtlsTransport`` sets them up,
its first negotiable profile) and its own UDP socket on 127.0.0.1 opened through asyncio, as
aioice opens them. A second process drains one receiving socket and counts what arrives, so the
loss of each path is known and the receive cost is not in the figures. Paths, run alternately,
``--repeats`` times each:

- **outlet**: the loop the mixer ran before — per listener ``track.outlet()``, a dict lookup of
  the serialised header by (payload type, SSRC) and :meth:`SrtpOutlet.send` (state checks,
  protect, asyncio's ``DatagramTransport.sendto``);
- **fanout**: :class:`live.fanout.Fanout` — header once per tick, then
  :func:`live.aiortc_seam.send_direct` over pre-bound (DTLS, protect, ``socket.sendto``,
  address) routes;
- **forward-track**: a forwarded speaker packet the way the forwarder sent it before —
  :meth:`live.forwarding.ForwardTrack.push` per destination (timestamp rebaser, header,
  :meth:`SrtpOutlet.send`);
- **forwarder**: :meth:`live.forwarding.Forwarder.forward` — one loop of
  :func:`live.aiortc_seam.send_forwarded` over pre-bound routes, each destination's own header
  packed into its session buffer.

Listener tracks are real :class:`PacketQueueTrack`s bound to stand-in transceivers that carry
the same private attributes aiortc's do, so both paths run the real seam code. CPU is this
process's ``time.process_time()`` around the sends (user + sys), reported per packet per
listener as the median over repeats, with the ratio.

``--spread P`` repeats the measurement with one receiving socket per listener over P processes
(as bench.sfu's load clients), where loopback charges the sender for delivery and wake-ups.

Usage: ``python -m bench.send_path [--quick] [--listeners N] [--ticks T] [--repeats R]
[--spread P]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import resource
import selectors
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import SimpleNamespace
from typing import Any

from aiortc.rtcdtlstransport import SRTP_PROFILES
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import RtpPacket
from pylibsrtp import Policy, Session

from bench.report import machine_line, markdown_table, median, write_section
from live.fanout import Fanout
from live.forwarding import RTP_HEADER, Forwarder, ForwardTrack, PacketQueueTrack

PATHS = ("outlet", "fanout", "forward-track", "forwarder")
#: The pairs compared in the ratio lines: (before, after).
RATIOS = (("outlet", "fanout"), ("forward-track", "forwarder"))
PAYLOAD_TYPE = 111
#: A typical 32 kb/s Opus mix packet.
PAYLOAD = bytes(random.Random(7).getrandbits(8) for _ in range(80))


# -- the receiving process ---------------------------------------------------------------------


def drain(control: Connection, sockets: int) -> None:
    """Count datagrams arriving on ``sockets`` sockets (their addresses go first on
    ``control``); answer each later message on ``control`` with the count so far."""
    selector = selectors.DefaultSelector()
    addresses = []
    for _ in range(sockets):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24 if sockets == 1 else 1 << 18)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        addresses.append(sock.getsockname())
    control.send(addresses)
    received = 0
    buffer = bytearray(2048)
    while True:
        for key, _ in selector.select(timeout=0.01):
            recv_into = key.fileobj.recv_into  # type: ignore[union-attr]
            try:
                while True:
                    recv_into(buffer)
                    received += 1
            except BlockingIOError:
                pass
        if control.poll():
            message = control.recv()
            control.send(received)
            if message == "stop":
                return


# -- the listeners -----------------------------------------------------------------------------


def srtp_session() -> Session:
    """A sending SRTP session as ``RTCDtlsTransport._setup_srtp`` builds one (random keys)."""
    profile = SRTP_PROFILES[0]
    policy = Policy(
        key=os.urandom(profile.key_length + profile.salt_length),
        ssrc_type=Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=profile.libsrtp_profile,
    )
    policy.allow_repeat_tx = True
    policy.window_size = 1024
    return Session(policy)


async def listener_tracks(
    ssrc: int, addresses: list[Any], factory: type[PacketQueueTrack] = PacketQueueTrack
) -> list[PacketQueueTrack]:
    """One track per address, bound to a connected stand-in transceiver with its own socket."""
    loop = asyncio.get_running_loop()
    tracks = []
    for address in addresses:
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        pair = SimpleNamespace(protocol=SimpleNamespace(transport=transport), remote_addr=address)
        ice = SimpleNamespace(_connection=SimpleNamespace(_nominated={1: pair}))
        dtls = SimpleNamespace(_state=DtlsState.CONNECTED, _tx_srtp=srtp_session(), transport=ice)
        transceiver: Any = SimpleNamespace(
            sender=SimpleNamespace(transport=dtls, _ssrc=ssrc),
            _codecs=[SimpleNamespace(payloadType=PAYLOAD_TYPE)],
        )
        track = factory(capacity=5)
        track.bind(transceiver)
        tracks.append(track)
    return tracks


def send_outlet(tracks: list[PacketQueueTrack], sequence: int, timestamp: int) -> int:
    """The mixer's loop before ``Fanout`` (live/mixer.py ``_send``), verbatim in substance."""
    serialised: dict[tuple[int, int], bytes] = {}
    sent = dropped = 0
    for track in tracks:
        outlet = track.outlet()
        if outlet is None:
            dropped += 1
            continue
        key = (outlet.payload_type, outlet.ssrc)
        data = serialised.get(key)
        if data is None:
            header = RTP_HEADER.pack(0x80, key[0], sequence, timestamp, key[1])
            data = serialised[key] = header + PAYLOAD
        if outlet.send(data):
            sent += 1
        else:
            dropped += 1
    return sent


def forward_track_loop(tracks: list[ForwardTrack], packet: RtpPacket) -> int:
    """The forwarder's loop before ``send_forwarded``: ``ForwardTrack.push`` per destination
    (rebaser, header, ``SrtpOutlet.send``)."""
    return sum(track.push("speaker", packet) for track in tracks)


# -- the measurement ---------------------------------------------------------------------------


@dataclass
class Run:
    path: str
    cpu: float  # process_time seconds spent in the sends
    user: float
    system: float
    packets: int
    received: int

    @property
    def us_per_packet(self) -> float:
        return 1e6 * self.cpu / max(1, self.packets)


async def measure(
    listeners: int, ticks: int, repeats: int, interval: float, spread: int = 0
) -> list[Run]:
    # One receiving socket (the sender's cost alone), or one per listener spread over
    # ``spread`` processes, like bench.sfu's load clients: on loopback the kernel then also
    # charges the sender for waking those processes.
    context = multiprocessing.get_context("spawn")
    controls, receivers = [], []
    for index in range(max(1, spread)):
        sockets = 1 if spread == 0 else len(range(index, listeners, spread))
        ours, theirs = context.Pipe()
        receiver = context.Process(target=drain, args=(theirs, sockets), daemon=True)
        receiver.start()
        controls.append(ours)
        receivers.append(receiver)

    def count() -> int:
        for control in controls:
            control.send("count")
        return sum(control.recv() for control in controls)

    try:
        addresses = [address for control in controls for address in control.recv()]
        if spread == 0:
            addresses *= listeners
        ssrc = random.getrandbits(32)
        tracks = await listener_tracks(ssrc, addresses)
        fanout = Fanout()
        for track in tracks:
            fanout.add(track)
        # The same destinations as forwarded-speaker tracks (each its own SSRC and line).
        forward_tracks = [
            track
            for track in await listener_tracks(0, addresses, ForwardTrack)
            if isinstance(track, ForwardTrack)
        ]
        for index, track in enumerate(forward_tracks):
            track.outlet().ssrc = ssrc + index + 1  # type: ignore[union-attr]
        forwarder = Forwarder()
        for index, track in enumerate(forward_tracks):
            forwarder.connect("speaker", f"d{index}", track)
        speaker_ssrc = random.getrandbits(32)
        runs: list[Run] = []
        sequence = timestamp = 0
        for _ in range(repeats):
            for path in PATHS:
                before_count = count()
                before = resource.getrusage(resource.RUSAGE_SELF)
                cpu = 0.0
                start = time.monotonic()
                for tick in range(ticks):
                    sequence = (sequence + 1) & 0xFFFF
                    timestamp = (timestamp + 960) & 0xFFFFFFFF
                    started = time.process_time()
                    if path == "outlet":
                        send_outlet(tracks, sequence, timestamp)
                    elif path == "fanout":
                        fanout.send(PAYLOAD, sequence, timestamp)
                    else:
                        packet = RtpPacket(
                            payload_type=PAYLOAD_TYPE,
                            sequence_number=sequence,
                            timestamp=timestamp,
                            ssrc=speaker_ssrc,
                            payload=PAYLOAD,
                        )
                        if path == "forward-track":
                            forward_track_loop(forward_tracks, packet)
                        else:
                            forwarder.forward("speaker", packet)
                    cpu += time.process_time() - started
                    delay = start + (tick + 1) * interval - time.monotonic()
                    await asyncio.sleep(max(0.0, delay))
                after = resource.getrusage(resource.RUSAGE_SELF)
                await asyncio.sleep(0.05)  # let the receiver drain
                received = count() - before_count
                runs.append(
                    Run(
                        path,
                        cpu,
                        after.ru_utime - before.ru_utime,
                        after.ru_stime - before.ru_stime,
                        ticks * listeners,
                        received,
                    )
                )
        for track in [*tracks, *forward_tracks]:
            outlet = track.outlet()
            if outlet is not None:
                outlet._nominated[1].protocol.transport.close()
        return runs
    finally:
        for control in controls:
            control.send("stop")
            control.recv()
        for receiver in receivers:
            receiver.join(5)


def table(runs: list[Run]) -> tuple[str, list[float]]:
    """The markdown table of one measurement, and its ratios (:data:`RATIOS`)."""
    rows: list[list[object]] = []
    costs: list[float] = []
    for path in PATHS:
        mine = [run for run in runs if run.path == path]
        cost = median([run.us_per_packet for run in mine])
        costs.append(cost)
        packets = sum(run.packets for run in mine)
        rows.append(
            [
                path,
                cost,
                median([1e6 * run.user / run.packets for run in mine]),
                median([1e6 * run.system / run.packets for run in mine]),
                cost * 50 / 1000,
                1e6 / max(1e-9, 50 * cost),
                f"{packets - sum(run.received for run in mine)} / {packets}",
            ]
        )
    markdown = markdown_table(
        [
            "path",
            "CPU µs per packet per listener (median)",
            "user µs (whole run)",
            "sys µs (whole run)",
            "ms/s per listener at 50 packets/s",
            "listeners per core",
            "lost / sent",
        ],
        rows,
    )
    cost_of = dict(zip(PATHS, costs, strict=True))
    return markdown, [cost_of[a] / max(1e-9, cost_of[b]) for a, b in RATIOS]


def render(
    measured: list[tuple[int, list[Run]]],
    listeners: int,
    ticks: int,
    interval: float,
    command: str,
) -> str:
    """The docs/performance.md section: one table per receiving layout (``spread``)."""
    runs_per_path = len(measured[0][1]) // len(PATHS)
    parts = [
        (
            f"## Send path (mix fan-out and speaker forwarding, one process)\n\n{machine_line()}\n\n`{command}`\n\n"
            f"{listeners} listeners, {ticks} ticks of {1000 * interval:g} ms per run,"
            f" {runs_per_path} runs per path, alternating; SRTP profile"
            f" {SRTP_PROFILES[0].openssl_profile.decode()}, {len(PAYLOAD)}-byte payload."
            " CPU is the sending process's, in the send calls (process_time: user + sys); the"
            " user/sys columns are the whole run's getrusage (pacing included).\n"
        )
    ]
    for spread, runs in measured:
        markdown, ratios = table(runs)
        where = (
            "one receiving socket (the sender's own cost)"
            if spread == 0
            else f"one receiving socket per listener in {spread} processes, as bench.sfu's load"
            " clients: on loopback the sender's syscall also delivers each packet and wakes"
            " its receiver, work a real network does on the listener's machine"
        )
        ratio_lines = "; ".join(
            f"{a} / {b}: {ratio:.2f}×" for (a, b), ratio in zip(RATIOS, ratios, strict=True)
        )
        parts.append(
            f"**Receivers: {where}.**\n\n{markdown}\n\n"
            f"Ratios, CPU per packet per destination: {ratio_lines}.\n"
        )
    one, five, _ = os.getloadavg()
    parts.append(
        f"Load average {one:.2f} (1 min) / {five:.2f} (5 min) on {os.cpu_count()}"
        " cores at the end.\n"
    )
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.send_path", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small run; docs not written")
    parser.add_argument("--listeners", type=int, default=500)
    parser.add_argument("--ticks", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between ticks")
    parser.add_argument(
        "--spread",
        type=int,
        default=5,
        help="also measure with one receiving socket per listener spread over"
        " this many processes (0: skip)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.listeners, args.ticks, args.repeats, args.spread = 20, 10, 2, 2
    measured = [
        (
            spread,
            asyncio.run(measure(args.listeners, args.ticks, args.repeats, args.interval, spread)),
        )
        for spread in ([0, args.spread] if args.spread > 0 else [0])
    ]
    command = ("python -m bench.send_path " + " ".join(argv)).strip()
    body = render(measured, args.listeners, args.ticks, args.interval, command)
    print(body)
    if not args.quick:
        write_section("send_path", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

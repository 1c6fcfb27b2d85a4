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
  address) routes.

Listener tracks are real :class:`PacketQueueTrack`s bound to stand-in transceivers that carry
the same private attributes aiortc's do, so both paths run the real seam code. CPU is this
process's ``time.process_time()`` around the sends (user + sys), reported per packet per
listener as the median over repeats, with the ratio.

Usage: ``python -m bench.send_path [--quick] [--listeners N] [--ticks T] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import resource
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import SimpleNamespace
from typing import Any

from aiortc.rtcdtlstransport import SRTP_PROFILES
from aiortc.rtcdtlstransport import State as DtlsState
from pylibsrtp import Policy, Session

from bench.report import machine_line, markdown_table, median, write_section
from live.fanout import Fanout
from live.forwarding import RTP_HEADER, PacketQueueTrack

PATHS = ("outlet", "fanout")
PAYLOAD_TYPE = 111
#: A typical 32 kb/s Opus mix packet.
PAYLOAD = bytes(random.Random(7).getrandbits(8) for _ in range(80))


# -- the receiving process ---------------------------------------------------------------------


def drain(control: Connection) -> None:
    """Count datagrams on one socket; answer each message on ``control`` with the count."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.01)
    control.send(sock.getsockname())
    received = 0
    buffer = bytearray(2048)
    while True:
        try:
            while True:
                sock.recv_into(buffer)
                received += 1
        except TimeoutError:
            pass
        if control.poll():
            if control.recv() == "stop":
                control.send(received)
                return
            control.send(received)


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


async def listener_tracks(count: int, ssrc: int, address: Any) -> list[PacketQueueTrack]:
    """``count`` tracks bound to connected stand-in transceivers, one UDP socket each."""
    loop = asyncio.get_running_loop()
    tracks = []
    for _ in range(count):
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
        track = PacketQueueTrack(capacity=5)
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


async def measure(listeners: int, ticks: int, repeats: int, interval: float) -> list[Run]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    receiver = context.Process(target=drain, args=(theirs,), daemon=True)
    receiver.start()
    try:
        address = ours.recv()
        ssrc = random.getrandbits(32)
        tracks = await listener_tracks(listeners, ssrc, address)
        fanout = Fanout()
        for track in tracks:
            fanout.add(track)
        runs: list[Run] = []
        sequence = timestamp = 0
        for _ in range(repeats):
            for path in PATHS:
                ours.send("count")
                before_count = ours.recv()
                before = resource.getrusage(resource.RUSAGE_SELF)
                cpu = 0.0
                start = time.monotonic()
                for tick in range(ticks):
                    sequence = (sequence + 1) & 0xFFFF
                    timestamp = (timestamp + 960) & 0xFFFFFFFF
                    started = time.process_time()
                    if path == "outlet":
                        send_outlet(tracks, sequence, timestamp)
                    else:
                        fanout.send(PAYLOAD, sequence, timestamp)
                    cpu += time.process_time() - started
                    delay = start + (tick + 1) * interval - time.monotonic()
                    await asyncio.sleep(max(0.0, delay))
                after = resource.getrusage(resource.RUSAGE_SELF)
                await asyncio.sleep(0.05)  # let the receiver drain
                ours.send("count")
                received = ours.recv() - before_count
                runs.append(Run(path, cpu, after.ru_utime - before.ru_utime,
                                after.ru_stime - before.ru_stime, ticks * listeners, received))
        for track in tracks:
            outlet = track.outlet()
            if outlet is not None:
                outlet._nominated[1].protocol.transport.close()
        return runs
    finally:
        ours.send("stop")
        ours.recv()
        receiver.join(5)


def render(runs: list[Run], listeners: int, ticks: int, interval: float, command: str) -> str:
    def of(path: str) -> list[Run]:
        return [run for run in runs if run.path == path]

    rows: list[list[object]] = []
    costs: list[float] = []
    for path in PATHS:
        mine = of(path)
        costs.append(median([run.us_per_packet for run in mine]))
        packets = sum(run.packets for run in mine)
        rows.append([
            path,
            median([run.us_per_packet for run in mine]),
            median([1e6 * run.user / run.packets for run in mine]),
            median([1e6 * run.system / run.packets for run in mine]),
            median([run.us_per_packet for run in mine]) * 50 / 1000,
            1e6 / max(1e-9, 50 * median([run.us_per_packet for run in mine])),
            f"{packets - sum(run.received for run in mine)} / {packets}",
        ])
    ratio = costs[0] / max(1e-9, costs[1])
    table = markdown_table(
        ["path", "CPU µs per packet per listener (median)", "of which user µs (whole run)",
         "sys µs (whole run)", "ms/s per listener at 50 packets/s", "listeners per core",
         "lost / sent"],
        rows,
    )
    one, five, _ = os.getloadavg()
    return (
        f"## Send path (mix fan-out, one process)\n\n{machine_line()}\n\n`{command}`\n\n"
        f"{listeners} listeners, {ticks} ticks of {1000 * interval:g} ms per run,"
        f" {len(runs) // len(PATHS)} runs per path, alternating; SRTP profile"
        f" {SRTP_PROFILES[0].openssl_profile.decode()}, {len(PAYLOAD)}-byte payload.\n\n"
        f"{table}\n\n**Ratio (outlet / fanout): {ratio:.2f}× CPU per packet per listener.**\n\n"
        f"Load average {one:.2f} (1 min) / {five:.2f} (5 min) on {os.cpu_count()} cores at the"
        " end. The user/sys columns are the whole run's getrusage (pacing included).\n"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.send_path", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small run; docs not written")
    parser.add_argument("--listeners", type=int, default=500)
    parser.add_argument("--ticks", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between ticks")
    args = parser.parse_args(argv)
    if args.quick:
        args.listeners, args.ticks, args.repeats = 20, 10, 2
    runs = asyncio.run(measure(args.listeners, args.ticks, args.repeats, args.interval))
    command = "python -m bench.send_path " + " ".join(argv)
    body = render(runs, args.listeners, args.ticks, args.interval, command.strip())
    print(body)
    if not args.quick:
        write_section("send_path", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""SFU at scale: one room, S speakers, L listeners — Roomcast against stock aiortc.

For each server, in this order and in the same invocation with the same S and L:

- **roomcast**: a real live node (``live.node``: signaling WebSocket, ``MediaRoom``, the
  queue-free send path) served by uvicorn in its own process;
- **baseline** (``bench/sfu_baseline.py``): the same signaling subset on stock aiortc, each
  listener subscribing to every speaker through ``MediaRelay`` (decode once, re-encode per
  subscriber) — what an aiortc SFU does without a mixer.

The speakers (``bench/sfu_load.py --mode speakers``, one process; the host opens the room and
invites the others) send real Opus at 20 ms. Listeners are lightweight load clients (ICE +
DTLS, then SRTP counted off the socket, never decoded) in ``--procs`` processes. Each server
process answers ``stats`` on stdin with its own CPU time (``getrusage``: user + sys, every
thread), RSS and, for Roomcast, its send-path counters and server-added latency histograms
(tap arrival → sendto, recorded inside the server).

Measured over a ``--seconds`` window after every listener has heard audio: server CPU per
listener (total / L) and per delivered packet, packets lost per listener (sequence gaps seen by
the clients), server-added latency p50/p99 (forwarded speaker audio; listener mix path), join
time (token in hand → WebSocket → first audio packet, p50/p99), memory per listener (server RSS
delta over the listeners' joins / L). Printed side by side with the ratio; a full run rewrites
the ``sfu`` section of docs/performance.md. Everything is on 127.0.0.1 and stops by itself.

Usage: ``python -m bench.sfu [--quick] [--speakers S] [--listeners L] [--procs P]
[--seconds T] [--baseline-listeners L2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shlex
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import machine_line, markdown_table, median, write_section

ROOM = "bench-room"
#: Listeners that join the full room one at a time, after the window, to time a join.
PROBES = 5
SIDES = ("roomcast", "baseline")


# -- the server side (run in the server processes) --------------------------------------------


def process_stats() -> dict[str, float]:
    """This process's CPU seconds (user + sys, all threads) and resident memory (bytes)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return {
        "cpu": usage.ru_utime + usage.ru_stime,
        "sys": usage.ru_stime,
        "rss": float(rss),
        "at": time.monotonic(),
    }


def bench_settings(secret: str) -> Any:
    """Settings both the server and the token issuer use (loopback ICE, the run's secret)."""
    from core.settings import Settings

    return Settings.model_validate(
        {
            "rtc": {"host_addresses": ["127.0.0.1"], "ice_servers": []},
            "auth": {"secret_key": secret},
            "rooms": {"messages_per_second": 1000.0, "message_burst": 10000},
        }
    )


async def serve_app(app: Any, port: int, extra: Callable[[], dict[str, Any]]) -> None:
    """Serve ``app`` on 127.0.0.1:``port``; answer ``stats`` lines on stdin until ``quit``."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    print(f"ready {port}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    profile_to = os.environ.get("BENCH_SFU_PROFILE")  # a developer aid: cProfile the window
    profiler = None
    while True:
        line = (await reader.readline()).decode().strip()
        if line == "stats" and profile_to:
            import cProfile

            if profiler is None:
                profiler = cProfile.Profile()
                profiler.enable()
            else:
                profiler.disable()
                profiler.dump_stats(profile_to)
        if line == "stats":
            print("stats " + json.dumps({**process_stats(), **extra()}), flush=True)
        elif line in ("quit", ""):
            break
    server.should_exit = True
    with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
        await asyncio.wait_for(task, 10)


def serve_roomcast(port: int, secret: str) -> int:
    """The Roomcast live node under test."""
    import aioice.stun

    from live.node import LiveNode, create_live_app

    aioice.stun.RETRY_MAX, aioice.stun.RETRY_RTO = 2, 0.2
    settings = bench_settings(secret)

    async def run() -> None:
        node = LiveNode(settings)

        def extra() -> dict[str, Any]:
            session = node.room(ROOM)
            if session is None:
                return {}
            mixer = session.media.mixer
            return {
                "send": session.media.send_stats.to_dict(),
                "mixer": {"ticks": mixer.ticks, "skipped_ticks": mixer.skipped_ticks},
            }

        await serve_app(create_live_app(settings, node=node), port, extra)

    asyncio.run(run())
    return 0


# -- the orchestrator ---------------------------------------------------------------------------


@dataclass
class Proc:
    """A child process driven by lines on stdin/stdout."""

    name: str
    process: asyncio.subprocess.Process

    async def expect(self, prefix: str, timeout: float) -> str:
        if self.process.stdout is None:
            raise RuntimeError("no stdout")
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: no '{prefix}' within {timeout:.0f} s")
            raw = await asyncio.wait_for(self.process.stdout.readline(), remaining)
            if not raw:
                raise RuntimeError(f"{self.name} exited (code {self.process.returncode})")
            line = raw.decode().strip()
            if line.startswith(prefix + " "):
                return line[len(prefix) + 1 :]

    async def ask(self, command: str, prefix: str, timeout: float = 60) -> dict[str, Any]:
        if self.process.stdin is None:
            raise RuntimeError("no stdin")
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()
        result: dict[str, Any] = json.loads(await self.expect(prefix, timeout))
        return result

    async def stop(self, command: str) -> None:
        with contextlib.suppress(Exception):
            if self.process.stdin is not None:
                self.process.stdin.write(command.encode() + b"\n")
                await self.process.stdin.drain()
                self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 20)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def _spawn(name: str, args: list[str], log: Path) -> Proc:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=log.open("ab"), env=env, limit=2**24,
    )
    return Proc(name, process)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class SideResult:
    """One server's figures over the measurement window."""

    side: str
    speakers: int
    listeners: int
    seconds: float
    cpu_base: float  # CPU seconds per second with speakers only
    cpu: float  # CPU seconds per second with everyone
    sys_share: float  # of which in the kernel (loopback UDP delivery is charged to the sender)
    delivered: int  # packets the clients received in the window
    lost_per_listener: float
    loss_fraction: float
    listeners_heard: int
    join: list[float]  # probes joining the full room one at a time
    ramp_join: list[float]  # the L listeners, joining concurrently
    rss_per_listener: float
    forward_latency: tuple[float, float] | None = None
    mix_latency: tuple[float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_per_listener_ms(self) -> float:
        return 1000 * self.cpu / max(1, self.listeners)

    @property
    def cpu_per_packet_us(self) -> float:
        return 1e6 * self.cpu * self.seconds / max(1, self.delivered)


def _tokens(secret: str, speakers: int, listeners: int) -> tuple[list[list[str]], list[list[str]]]:
    from core.rooms import Role
    from core.tokens import issue_join_token

    settings = bench_settings(secret)

    def token(user: str, role: Role) -> list[str]:
        return [user, issue_join_token(
            settings, room_id=ROOM, user_id=user, display_name=user, role=role
        )]

    speaker_tokens = [token("s0", Role.HOST)] + [
        token(f"s{i}", Role.LISTENER) for i in range(1, speakers)
    ]
    return speaker_tokens, [token(f"l{i}", Role.LISTENER) for i in range(listeners)]


def _probe_tokens(secret: str, count: int) -> list[list[str]]:
    from core.rooms import Role
    from core.tokens import issue_join_token

    settings = bench_settings(secret)
    return [[f"p{i}", issue_join_token(
        settings, room_id=ROOM, user_id=f"p{i}", display_name=f"p{i}", role=Role.LISTENER
    )] for i in range(count)]


def _window(marks_a: list[dict[str, Any]], marks_b: list[dict[str, Any]], users: set[str]) -> dict[str, tuple[int, int]]:
    """Per participant: (received, expected) between two marks."""
    out: dict[str, tuple[int, int]] = {}
    for a, b in zip(marks_a, marks_b, strict=True):
        for user, end in b["participants"].items():
            if user in users:
                start = a["participants"][user]
                out[user] = (end["received"] - start["received"], end["expected"] - start["expected"])
    return out


def _latency_window(a: dict[str, Any], b: dict[str, Any], key: str) -> tuple[float, float] | None:
    from live.send_stats import LatencyHistogram

    if "send" not in a or "send" not in b:
        return None
    start = LatencyHistogram.from_dict(a["send"][key])
    end = LatencyHistogram.from_dict(b["send"][key])
    delta = LatencyHistogram(
        [y - x for x, y in zip(start.counts, end.counts, strict=True)],
        end.total - start.total,
        end.sum_seconds - start.sum_seconds,
    )
    if delta.total == 0:
        return None
    return 1000 * delta.percentile(50), 1000 * delta.percentile(99)


async def run_side(
    side: str, speakers: int, listeners: int, procs: int, seconds: float, logs: Path
) -> SideResult:
    """Start one server, its speakers and listeners; measure; stop everything."""
    secret = secrets.token_urlsafe(32)
    port = _free_port()
    module = "bench.sfu" if side == "roomcast" else "bench.sfu_baseline"
    server_args = ["-m", module, "--serve", side, "--port", str(port), f"--secret={secret}"]
    server = await _spawn(f"{side} server", server_args, logs / f"{side}-server.log")
    children: list[Proc] = []
    try:
        await server.expect("ready", 60)
        url = f"http://127.0.0.1:{port}"
        speaker_tokens, listener_tokens = _tokens(secret, speakers, listeners)
        files = []
        for index, chunk in enumerate([speaker_tokens] + [
            listener_tokens[i::procs] for i in range(procs) if listener_tokens[i::procs]
        ]):
            path = logs / f"{side}-tokens-{index}.json"
            path.write_text(json.dumps(chunk))
            files.append(path)
        load = ["-m", "bench.sfu_load", "--url", url, "--room", ROOM, "--max-seconds", "900"]
        speaker_proc = await _spawn(
            f"{side} speakers", [*load, "--tokens", str(files[0]), "--mode", "speakers"],
            logs / f"{side}-speakers.log",
        )
        children.append(speaker_proc)
        await speaker_proc.expect("ready", 120)
        await asyncio.sleep(1.0)
        base_a = await server.ask("stats", "stats")
        await asyncio.sleep(min(seconds, 3.0))
        base_b = await server.ask("stats", "stats")
        cpu_base = (base_b["cpu"] - base_a["cpu"]) / (base_b["at"] - base_a["at"])
        for index, path in enumerate(files[1:]):
            children.append(await _spawn(
                f"{side} listeners {index}", [*load, "--tokens", str(path)],
                logs / f"{side}-listeners-{index}.log",
            ))
        ramp_join: list[float] = []
        for child in children[1:]:
            ready = json.loads(await child.expect("ready", 120 + listeners * 0.5))
            ramp_join += [1000 * t for t in ready["joins"].values() if t is not None]
        joined = await server.ask("stats", "stats")
        await asyncio.sleep(2.0)  # let every jitter and queue settle
        server_a = await server.ask("stats", "stats")
        marks_a = [await c.ask("mark", "mark") for c in children]
        await asyncio.sleep(seconds)
        server_b = await server.ask("stats", "stats")
        marks_b = [await c.ask("mark", "mark") for c in children]
        probe_file = logs / f"{side}-tokens-probes.json"
        probe_file.write_text(json.dumps(_probe_tokens(secret, PROBES)))
        probe = await _spawn(f"{side} probes", [*load, "--tokens", str(probe_file),
                             "--concurrency", "1", "--join-timeout", "10"],
                             logs / f"{side}-probes.log")
        children.append(probe)
        probed = json.loads(await probe.expect("ready", 60 + PROBES * 15))
        join = [1000 * t for t in probed["joins"].values() if t is not None]
        elapsed = server_b["at"] - server_a["at"]
        diagnostics = {
            key: {k: server_b[key][k] - server_a[key][k] for k in server_b[key]
                  if isinstance(server_b[key][k], int)}
            for key in ("send", "mixer") if key in server_b
        }
        print(f"   {side} window {elapsed:.1f} s: {diagnostics}", file=sys.stderr, flush=True)
        listener_ids = {user for user, _ in listener_tokens}
        window = _window(marks_a[1:], marks_b[1:], listener_ids)
        speaker_window = _window(marks_a[:1], marks_b[:1], {u for u, _ in speaker_tokens})
        lost = [max(0, expected - received) for received, expected in window.values()]
        expected_total = sum(expected for _, expected in window.values())
        delivered = sum(r for r, _ in window.values()) + sum(r for r, _ in speaker_window.values())
        return SideResult(
            side=side,
            speakers=speakers,
            listeners=listeners,
            seconds=elapsed,
            cpu_base=cpu_base,
            cpu=(server_b["cpu"] - server_a["cpu"]) / elapsed,
            sys_share=(server_b["sys"] - server_a["sys"])
            / max(1e-9, server_b["cpu"] - server_a["cpu"]),
            delivered=delivered,
            lost_per_listener=sum(lost) / max(1, listeners),
            loss_fraction=sum(lost) / max(1, expected_total),
            listeners_heard=sum(1 for received, _ in window.values() if received > 0),
            join=join,
            ramp_join=ramp_join,
            rss_per_listener=(joined["rss"] - base_b["rss"]) / max(1, listeners),
            forward_latency=_latency_window(server_a, server_b, "forward_latency"),
            mix_latency=_latency_window(server_a, server_b, "mix_latency"),
            extra={"speaker_packets": sum(r for r, _ in speaker_window.values()),
                   "speaker_lost": sum(max(0, e - r) for r, e in speaker_window.values())},
        )
    finally:
        for child in children:
            await child.stop("stop")
        await server.stop("quit")


def _latency(value: tuple[float, float] | None) -> str:
    return "n/a" if value is None else f"{value[0]:.2g} / {value[1]:.2g}"


def render(results: list[SideResult], command: str, load: str) -> str:
    """The markdown section: both servers side by side, then the ratio."""
    rows: list[list[object]] = []
    metrics: list[tuple[str, Callable[[SideResult], object]]] = [
        ("listeners (S speakers)", lambda r: f"{r.listeners} ({r.speakers})"),
        ("listeners that heard audio", lambda r: r.listeners_heard),
        ("server CPU, % of one core (speakers only)", lambda r: 100 * r.cpu_base),
        ("server CPU, % of one core (everyone)", lambda r: 100 * r.cpu),
        ("  of which in the kernel (sys), %", lambda r: 100 * r.sys_share),
        ("CPU per listener, ms per second (total / L)", lambda r: r.cpu_per_listener_ms),
        ("CPU per added listener, ms per second ((everyone − speakers only) / L)",
         lambda r: 1000 * (r.cpu - r.cpu_base) / max(1, r.listeners)),
        ("listeners per core at that cost", lambda r: 1000 / max(1e-9, r.cpu_per_listener_ms)),
        ("CPU per delivered packet, µs", lambda r: r.cpu_per_packet_us),
        ("packets lost per listener (window)", lambda r: r.lost_per_listener),
        ("loss, % of expected", lambda r: 100 * r.loss_fraction),
        ("added latency, forwarded p50 / p99 ms", lambda r: _latency(r.forward_latency)),
        ("added latency, mix path p50 / p99 ms", lambda r: _latency(r.mix_latency)),
        (f"join into the full room, token → first audio, p50 ms ({PROBES} probes)",
         lambda r: median(r.join)),
        ("join into the full room, max ms", lambda r: max(r.join, default=float("nan"))),
        ("join while all L join at once, p50 ms", lambda r: median(r.ramp_join)),
        ("server memory per listener, MB", lambda r: r.rss_per_listener / 1e6),
    ]
    for name, get in metrics:
        rows.append([name, *(get(r) for r in results)])
    by_side = {r.side: r for r in results}
    lines = [markdown_table(["", *(r.side for r in results)], rows)]
    if "roomcast" in by_side and "baseline" in by_side:
        ours, theirs = by_side["roomcast"], by_side["baseline"]
        ratio = theirs.cpu_per_listener_ms / max(1e-9, ours.cpu_per_listener_ms)
        per_packet = theirs.cpu_per_packet_us / max(1e-9, ours.cpu_per_packet_us)
        lines.append(
            f"\n**Ratio (baseline / roomcast): {ratio:.1f}× CPU per listener,"
            f" {per_packet:.1f}× CPU per delivered packet.**"
        )
    return "\n".join(lines) + f"\n\nLoad during the run: {load}."


def _load_line() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) / {five:.2f} (5 min) on {os.cpu_count()} cores"


async def _run(args: argparse.Namespace) -> list[SideResult]:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-sfu-") as tmp:
        logs = Path(args.logs) if args.logs else Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        for side in args.sides:
            listeners = args.listeners if side == "roomcast" else args.baseline_listeners
            procs = max(1, min(args.procs, listeners))
            print(f"-- {side}: S={args.speakers} L={listeners} in {procs} load processes",
                  file=sys.stderr, flush=True)
            results.append(
                await run_side(side, args.speakers, listeners, procs, args.seconds, logs)
            )
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.sfu", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="S=2, L=3, 3 s: a harness check")
    parser.add_argument("--speakers", type=int, default=10)
    parser.add_argument("--listeners", type=int, default=300)
    parser.add_argument("--baseline-listeners", type=int, default=None,
                        help="listeners for the baseline (default: the same L)")
    parser.add_argument("--procs", type=int, default=4, help="listener load processes")
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--logs", default="", help="keep child logs in this directory")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--serve", choices=["roomcast"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--secret", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve_roomcast(args.port, args.secret)
    if args.quick:
        args.speakers, args.listeners, args.procs, args.seconds = 2, 3, 2, 3.0
        args.baseline_listeners = args.baseline_listeners or 2
    if args.baseline_listeners is None:
        args.baseline_listeners = args.listeners
    command = "python -m bench.sfu " + shlex.join(argv) if argv else "python -m bench.sfu"
    load_before = _load_line()
    results = asyncio.run(_run(args))
    body = render(results, command, f"{load_before} before, {_load_line()} after")
    print(body)
    if not args.quick and not args.no_write:
        write_section("sfu", f"## SFU at scale\n\n{machine_line()}\n\n`{command}`\n\n{body}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

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
#: How the join steps (bench.sfu_load.JOIN_STEPS) read in the report.
STEP_NAMES = {
    "ws": "WebSocket open",
    "snapshot": "snapshot",
    "offer": "offer in",
    "answer": "answer out",
    "ice": "ICE connected",
    "dtls": "DTLS connected",
    "audio": "first audio",
}


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

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
        ws_per_message_deflate=False,  # as `roomcast live` serves it (roomcast/cli.py)
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    print(f"ready {port}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    # A developer aid: cProfile from the BENCH_SFU_PROFILE_AT-th ``stats`` to the next one
    # (1: speakers only; 7: the window at L).
    profile_to = os.environ.get("BENCH_SFU_PROFILE")
    profile_at = int(os.environ.get("BENCH_SFU_PROFILE_AT", "1"))
    profiler = None
    asked = 0
    while True:
        line = (await reader.readline()).decode().strip()
        asked += line == "stats"
        if line == "stats" and profile_to and asked in (profile_at, profile_at + 1):
            import cProfile

            if profiler is None:
                profiler = cProfile.Profile(time.process_time)
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
    from live.process import prepare_live_process

    prepare_live_process()  # as every entry point that runs a live node
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
        sys.executable,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=log.open("ab"),
        env=env,
        limit=2**24,
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
    join_steps: dict[str, float]  # median ms from the token to each step (bench.sfu_load)
    ramp_join: list[float]  # the L listeners, joining concurrently
    rss_per_listener: float
    forward_latency: tuple[float, float] | None = None
    mix_latency: tuple[float, float] | None = None
    half_listeners: int = 0  # listeners in the first window (0: no such window)
    cpu_half: float = 0.0  # CPU seconds per second with those listeners
    user_half: float = 0.0  # of which outside the kernel
    user: float = 0.0  # CPU outside the kernel with all L
    lost_half: int = 0  # packets the first window's listeners lost in it
    skipped_ticks: int | None = None  # mix ticks the server skipped in the full window (stalls)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_per_added_listener_ms(self) -> float:
        """The slope between the two windows: (CPU at L − CPU at L/2) / (L − L/2), ms/s."""
        added = self.listeners - self.half_listeners
        if not self.half_listeners or added <= 0:
            return float("nan")
        return 1000 * (self.cpu - self.cpu_half) / added

    @property
    def user_per_added_listener_ms(self) -> float:
        """The same slope for user time only (the kernel's share of ``sendto`` left out)."""
        added = self.listeners - self.half_listeners
        if not self.half_listeners or added <= 0:
            return float("nan")
        return 1000 * (self.user - self.user_half) / added

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
        return [
            user,
            issue_join_token(settings, room_id=ROOM, user_id=user, display_name=user, role=role),
        ]

    speaker_tokens = [token("s0", Role.HOST)] + [
        token(f"s{i}", Role.LISTENER) for i in range(1, speakers)
    ]
    return speaker_tokens, [token(f"l{i}", Role.LISTENER) for i in range(listeners)]


def _probe_tokens(secret: str, count: int) -> list[list[str]]:
    from core.rooms import Role
    from core.tokens import issue_join_token

    settings = bench_settings(secret)
    return [
        [
            f"p{i}",
            issue_join_token(
                settings, room_id=ROOM, user_id=f"p{i}", display_name=f"p{i}", role=Role.LISTENER
            ),
        ]
        for i in range(count)
    ]


def _window(
    marks_a: list[dict[str, Any]], marks_b: list[dict[str, Any]], users: set[str]
) -> dict[str, tuple[int, int]]:
    """Per participant: (received, expected) between two marks."""
    out: dict[str, tuple[int, int]] = {}
    for a, b in zip(marks_a, marks_b, strict=True):
        for user, end in b["participants"].items():
            if user in users:
                start = a["participants"][user]
                out[user] = (
                    end["received"] - start["received"],
                    end["expected"] - start["expected"],
                )
    return out


def _median_steps(probes: list[dict[str, float]]) -> dict[str, float]:
    """Per join step, the median over probes of ms from the token to it."""
    names: list[str] = []
    for steps in probes:
        names += [name for name in steps if name not in names]
    return {name: median([s[name] for s in probes if name in s]) for name in names}


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


@dataclass
class _Window:
    """Server stats and client marks at both ends of one measurement window."""

    server_a: dict[str, Any]
    server_b: dict[str, Any]
    marks_a: list[dict[str, Any]]
    marks_b: list[dict[str, Any]]

    @property
    def cpu(self) -> float:
        """Server CPU seconds per second over the window."""
        used = float(self.server_b["cpu"] - self.server_a["cpu"])
        return used / max(1e-9, float(self.server_b["at"] - self.server_a["at"]))

    @property
    def sys_share(self) -> float:
        kernel = float(self.server_b["sys"] - self.server_a["sys"])
        return kernel / max(1e-9, float(self.server_b["cpu"] - self.server_a["cpu"]))

    @property
    def user(self) -> float:
        """Server CPU seconds per second outside the kernel over the window."""
        return (self.cpu * (1 - self.sys_share)) if self.cpu > 0 else 0.0


async def _measure_window(server: Proc, children: list[Proc], seconds: float) -> _Window:
    server_a = await server.ask("stats", "stats")
    marks_a = [await c.ask("mark", "mark") for c in children]
    await asyncio.sleep(seconds)
    server_b = await server.ask("stats", "stats")
    marks_b = [await c.ask("mark", "mark") for c in children]
    return _Window(server_a, server_b, marks_a, marks_b)


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
        # Two stages: L/2 listeners in half the load processes, then the other L/2 in the
        # rest; the CPU slope between the two windows is the cost of one more listener.
        half = listeners // 2 if listeners >= 2 else listeners
        stage_procs = (max(1, procs // 2), max(1, procs - procs // 2))
        stages = [listener_tokens[:half], listener_tokens[half:]]
        speaker_file = logs / f"{side}-tokens-speakers.json"
        speaker_file.write_text(json.dumps(speaker_tokens))
        stage_files: list[list[Path]] = []
        for stage, (tokens, count) in enumerate(zip(stages, stage_procs, strict=True)):
            stage_files.append([])
            for index in range(count):
                chunk = tokens[index::count]
                if chunk:
                    path = logs / f"{side}-tokens-{stage}-{index}.json"
                    path.write_text(json.dumps(chunk))
                    stage_files[stage].append(path)
        load = ["-m", "bench.sfu_load", "--url", url, "--room", ROOM, "--max-seconds", "900"]
        speaker_proc = await _spawn(
            f"{side} speakers",
            [*load, "--tokens", str(speaker_file), "--mode", "speakers"],
            logs / f"{side}-speakers.log",
        )
        children.append(speaker_proc)
        await speaker_proc.expect("ready", 120)
        await asyncio.sleep(1.0)
        base_a = await server.ask("stats", "stats")
        await asyncio.sleep(min(seconds, 3.0))
        base_b = await server.ask("stats", "stats")
        cpu_base = (base_b["cpu"] - base_a["cpu"]) / (base_b["at"] - base_a["at"])
        ramp_join: list[float] = []
        windows: list[_Window] = []
        for stage, paths in enumerate(stage_files):
            started = len(children)
            for index, path in enumerate(paths):
                children.append(
                    await _spawn(
                        f"{side} listeners {stage}.{index}",
                        [*load, "--tokens", str(path)],
                        logs / f"{side}-listeners-{stage}-{index}.log",
                    )
                )
            for child in children[started:]:
                ready = json.loads(await child.expect("ready", 120 + listeners * 0.5))
                ramp_join += [1000 * t for t in ready["joins"].values() if t is not None]
            joined = await server.ask("stats", "stats")
            await asyncio.sleep(2.0)  # let every jitter and queue settle
            windows.append(await _measure_window(server, children, seconds))
        probe_file = logs / f"{side}-tokens-probes.json"
        probe_file.write_text(json.dumps(_probe_tokens(secret, PROBES)))
        probe = await _spawn(
            f"{side} probes",
            [*load, "--tokens", str(probe_file), "--concurrency", "1", "--join-timeout", "10"],
            logs / f"{side}-probes.log",
        )
        children.append(probe)
        probed = json.loads(await probe.expect("ready", 60 + PROBES * 15))
        join = [1000 * t for t in probed["joins"].values() if t is not None]
        join_steps = _median_steps([v for v in probed.get("steps", {}).values() if v])
        print(
            f"   {side} probe join steps (ms from token, median): {join_steps}",
            file=sys.stderr,
            flush=True,
        )
        first, full = windows[0], windows[-1]
        server_a, server_b = full.server_a, full.server_b
        elapsed = server_b["at"] - server_a["at"]
        diagnostics = {
            key: {
                k: server_b[key][k] - server_a[key][k]
                for k in server_b[key]
                if isinstance(server_b[key][k], int)
            }
            for key in ("send", "mixer")
            if key in server_b
        }
        print(f"   {side} window {elapsed:.1f} s: {diagnostics}", file=sys.stderr, flush=True)
        listener_ids = {user for user, _ in listener_tokens}
        window = _window(full.marks_a[1:], full.marks_b[1:], listener_ids)
        half_window = _window(first.marks_a[1:], first.marks_b[1:], listener_ids)
        speaker_window = _window(full.marks_a[:1], full.marks_b[:1], {u for u, _ in speaker_tokens})
        lost = [max(0, expected - received) for received, expected in window.values()]
        lost_half = [max(0, expected - received) for received, expected in half_window.values()]
        expected_total = sum(expected for _, expected in window.values())
        delivered = sum(r for r, _ in window.values()) + sum(r for r, _ in speaker_window.values())
        return SideResult(
            side=side,
            speakers=speakers,
            listeners=listeners,
            seconds=elapsed,
            cpu_base=cpu_base,
            cpu=full.cpu,
            sys_share=full.sys_share,
            delivered=delivered,
            lost_per_listener=sum(lost) / max(1, listeners),
            loss_fraction=sum(lost) / max(1, expected_total),
            listeners_heard=sum(1 for received, _ in window.values() if received > 0),
            join=join,
            join_steps=join_steps,
            ramp_join=ramp_join,
            rss_per_listener=(joined["rss"] - base_b["rss"]) / max(1, listeners),
            forward_latency=_latency_window(server_a, server_b, "forward_latency"),
            mix_latency=_latency_window(server_a, server_b, "mix_latency"),
            half_listeners=half if len(windows) > 1 else 0,
            cpu_half=first.cpu,
            user_half=first.user,
            user=full.user,
            lost_half=sum(lost_half),
            skipped_ticks=diagnostics.get("mixer", {}).get("skipped_ticks"),
            extra={
                "speaker_packets": sum(r for r, _ in speaker_window.values()),
                "speaker_lost": sum(max(0, e - r) for r, e in speaker_window.values()),
            },
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
        ("server CPU, % of one core: speakers only", lambda r: 100 * r.cpu_base),
        (
            "server CPU, % of one core: speakers + L/2 listeners",
            lambda r: f"{100 * r.cpu_half:.3g} (L/2 = {r.half_listeners})",
        ),
        ("server CPU, % of one core: speakers + L listeners", lambda r: 100 * r.cpu),
        ("  of which in the kernel (sys), %", lambda r: 100 * r.sys_share),
        (
            "**CPU per added listener, ms/s: (CPU at L − CPU at L/2) / (L/2)**",
            lambda r: r.cpu_per_added_listener_ms,
        ),
        (
            "**listeners per core at that cost**",
            lambda r: (
                1000 / r.cpu_per_added_listener_ms
                if r.cpu_per_added_listener_ms > 0
                else float("nan")
            ),
        ),
        (
            "  of which user time (the process's own work, kernel left out), ms/s",
            lambda r: r.user_per_added_listener_ms,
        ),
        (
            "CPU per listener, ms/s: total / L (fixed costs included)",
            lambda r: r.cpu_per_listener_ms,
        ),
        (
            "CPU per listener, ms/s: (CPU at L − speakers only) / L (mixer included)",
            lambda r: 1000 * (r.cpu - r.cpu_base) / max(1, r.listeners),
        ),
        ("CPU per delivered packet, µs (total)", lambda r: r.cpu_per_packet_us),
        ("packets lost, all listeners, window at L/2", lambda r: r.lost_half),
        ("packets lost per listener, window at L", lambda r: r.lost_per_listener),
        ("loss at L, % of expected", lambda r: 100 * r.loss_fraction),
        (
            "mix ticks skipped by the server, window at L",
            lambda r: "n/a" if r.skipped_ticks is None else r.skipped_ticks,
        ),
        ("added latency, forwarded p50 / p99 ms", lambda r: _latency(r.forward_latency)),
        ("added latency, mix path p50 / p99 ms", lambda r: _latency(r.mix_latency)),
        (
            f"join into the full room, token → first audio, p50 ms ({PROBES} probes)",
            lambda r: median(r.join) if r.join else "none heard audio within 10 s",
        ),
        ("join into the full room, max ms", lambda r: max(r.join, default=float("nan"))),
        ("join while L/2 join at once, p50 ms", lambda r: median(r.ramp_join)),
        ("server memory per listener, MB", lambda r: r.rss_per_listener / 1e6),
    ]
    for name, get in metrics:
        rows.append([name, *(get(r) for r in results)])
    by_side = {r.side: r for r in results}
    lines = [markdown_table(["", *(r.side for r in results)], rows)]
    for r in results:
        if r.join_steps:
            steps = " → ".join(f"{STEP_NAMES.get(k, k)} {v:.0f}" for k, v in r.join_steps.items())
            lines.append(
                f"\nJoin steps, {r.side} (median of the probes, ms from the token): {steps}."
            )
    if "roomcast" in by_side and "baseline" in by_side:
        ours, theirs = by_side["roomcast"], by_side["baseline"]
        slope = theirs.cpu_per_added_listener_ms / max(1e-9, ours.cpu_per_added_listener_ms)
        ratio = theirs.cpu_per_listener_ms / max(1e-9, ours.cpu_per_listener_ms)
        per_packet = theirs.cpu_per_packet_us / max(1e-9, ours.cpu_per_packet_us)
        slope_text = "" if saturated(theirs) else f"{slope:.1f}× CPU per added listener, "
        lines.append(
            f"\n**Ratio (baseline / roomcast): {slope_text}{ratio:.1f}× CPU per listener"
            f" (total / L), {per_packet:.1f}× CPU per delivered packet.**"
        )
        if saturated(theirs) or near_capacity(theirs):
            lines.append(
                f"\nThe baseline is at capacity: its {theirs.speakers} speakers alone take"
                f" {100 * theirs.cpu_base:.0f} % of a core (aiortc decodes every speaker in its"
                " receiver, on one event loop plus a decoder thread per speaker), so its CPU"
                " can hardly grow with listeners and its slope understates what each one costs"
                + (" (here it did not grow at all: no slope)" if saturated(theirs) else "")
                + (
                    f". It cannot run at roomcast's L: at L = {theirs.listeners} the probes"
                    " joining the full room already got no audio within 10 s."
                    if not theirs.join
                    else "."
                )
            )
        elif theirs.listeners != ours.listeners and theirs.cpu_per_added_listener_ms > 0:
            ceiling = 1000 * (1 - theirs.cpu_base) / theirs.cpu_per_added_listener_ms
            lines.append(
                f"\nThe baseline ran at L = {theirs.listeners}, not {ours.listeners}: a stock"
                " aiortc server is one event loop (one core), and at"
                f" {theirs.cpu_per_added_listener_ms:.3g} ms/s per added listener it runs out of"
                f" that core near L ≈ {ceiling:.0f}; past that it loses packets and its CPU"
                " stops growing, which would make the ratio look better than it is."
            )
    lines.append("\n" + ACCOUNTING.strip())
    if "roomcast" in by_side:
        lines.append("\n" + goals(by_side["roomcast"], by_side.get("baseline")))
    return "\n".join(lines) + f"\n\nLoad during the run: {load}."


ACCOUNTING = """
How the figures are derived. Server CPU is the server process's own `getrusage` (user + sys,
every thread) over each window. The room first runs with its S speakers only, then with L/2
listeners, then with all L (each window after every listener has heard audio and 2 s to
settle). **CPU per added listener** is the slope between the last two windows, (CPU at L − CPU
at L/2) / (L − L/2): fixed costs (the speakers' receive and forwarding, the mixer's decode and
encode, timers) cancel out. "total / L" keeps everything in, so it falls as L grows; "(CPU at L
− speakers only) / L" also carries the mixer, which idles while nobody listens. On loopback the
kernel's work to deliver each packet to its listener's socket and wake that process is charged
to the server's `sendto` (the sys share): on a real network that work happens on the
listeners' machines, so these figures overstate a production server's cost. Loss is counted
by the clients from sequence numbers and from 20 ms frames missing in the timestamp line (a
stalled server skips mix ticks without skipping sequence numbers); "mix ticks skipped" is the
server's own count. The machine is shared with other work: compare ratios measured in the same
run, and read the load average below.
"""


def saturated(result: SideResult) -> bool:
    """Whether a server's CPU did not grow with its listeners: its slope then measures nothing."""
    return not result.cpu_per_added_listener_ms > 0


def near_capacity(result: SideResult) -> bool:
    """Whether a server was already near a full core before its listeners joined: its slope is
    then likely understated (it cannot spend what it would need)."""
    return result.cpu_base >= 0.8


def goals(ours: SideResult, baseline: SideResult | None) -> str:
    """Issue 7's goals against this run's figures, each marked met or not."""
    per_core = 1000 / ours.cpu_per_added_listener_ms if ours.cpu_per_added_listener_ms > 0 else 0
    no_loss = ours.loss_fraction == 0 and ours.lost_half == 0 and not ours.skipped_ticks
    forward = ours.forward_latency or (float("nan"), float("nan"))
    mix = ours.mix_latency or (float("nan"), float("nan"))
    join = median(ours.join)

    def mark(ok: bool) -> str:
        return "met" if ok else "**not met**"

    if ours.skipped_ticks:
        per_core_text = (
            f"not measurable in this run: the server was starved of CPU ({ours.skipped_ticks}"
            f" mix ticks skipped, loss {100 * ours.loss_fraction:.2g} %), so the CPU it got is"
            " not the CPU it needed"
        )
    else:
        per_core_text = (
            f"{per_core:.0f} per core by the slope, loss {100 * ours.loss_fraction:.2g} %"
        )
    items = [
        (
            f"≥ 1000 listeners per core with no loss: {per_core_text} —"
            f" {mark(per_core >= 1000 and no_loss)}"
        ),
    ]
    if baseline is not None:
        slope = baseline.cpu_per_added_listener_ms / max(1e-9, ours.cpu_per_added_listener_ms)
        total = baseline.cpu_per_listener_ms / max(1e-9, ours.cpu_per_listener_ms)
        if saturated(baseline):
            items.append(
                f"≥ 30× less CPU per listener than MediaRelay: {total:.1f}× total / L (baseline"
                f" at L = {baseline.listeners}, at capacity, no slope) —"
                f" {mark(total >= 30)} by total / L only"
            )
        else:
            caveat = (
                ", the baseline's slope understated at capacity" if near_capacity(baseline) else ""
            )
            items.append(
                f"≥ 30× less CPU per listener than MediaRelay: {slope:.1f}× per added listener"
                f"{caveat}; {total:.1f}× total / L (baseline at L = {baseline.listeners}) —"
                f" {mark(slope >= 30)} by the slope, {mark(total >= 30)} by total / L"
            )
    items += [
        (
            f"forwarded p50 ≤ 5 ms, p99 ≤ 20 ms: {forward[0]:.2g} / {forward[1]:.2g} ms —"
            f" {mark(forward[0] <= 5 and forward[1] <= 20)}"
        ),
        f"mix path p50 ≤ 60 ms: {mix[0]:.2g} ms — {mark(mix[0] <= 60)}",
        f"join p50 ≤ 150 ms: {join:.0f} ms — {mark(join <= 150)}",
        (
            f"≤ 0.5 MB per listener: {ours.rss_per_listener / 1e6:.2f} MB —"
            f" {mark(ours.rss_per_listener <= 0.5e6)}"
        ),
    ]
    return "Goals (issue 7), this run:\n\n" + "\n".join(f"- {item}" for item in items)


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
            print(
                f"-- {side}: S={args.speakers} L={listeners} in {procs} load processes",
                file=sys.stderr,
                flush=True,
            )
            results.append(
                await run_side(side, args.speakers, listeners, procs, args.seconds, logs)
            )
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.sfu", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="S=2, L=3, 3 s: a harness check")
    parser.add_argument("--speakers", type=int, default=10)
    parser.add_argument("--listeners", type=int, default=300)
    parser.add_argument(
        "--baseline-listeners",
        type=int,
        default=None,
        help="listeners for the baseline (default: the same L)",
    )
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

"""Soak: one room held for minutes, server memory and CPU sampled over time (`make soak`).

A real live node (``bench.sfu --serve roomcast``: the live app under uvicorn, answering
``stats`` with its own CPU seconds and RSS) on 127.0.0.1; S speakers sending real Opus at 20 ms
(``bench.sfu_load --mode speakers``: the host opens the room and invites the others on stage)
and L lightweight listeners (``bench.sfu_load``: ICE + DTLS, SRTP counted off the socket, never
decoded) in ``--procs`` processes. Every ``--interval`` seconds it records the server's RSS and
CPU share; at the end it reports the memory growth over the **last half** of the run (the first
half absorbs allocator warm-up), the listeners' packet loss and longest gap, and the samples.

The growth figure is reported, not asserted (the issue asks ≤ 5 %). A full run rewrites the
``soak`` section of docs/reliability.md; ``--quick`` (a short, small run usable as a test)
writes nothing.

Usage: ``python -m bench.soak [--minutes 10] [--speakers 3] [--listeners 50] [--procs 2]
[--interval 15] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.report import machine_line, markdown_table, median, write_section
from bench.sfu import ROOM, Proc, _free_port, _spawn, _tokens

RELIABILITY_MD = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


@dataclass(frozen=True)
class Sample:
    """One server sample: seconds since the room was full, RSS (MiB), CPU share since the last."""

    at: float
    rss_mib: float
    cpu_percent: float


@dataclass(frozen=True)
class SoakResult:
    speakers: int
    listeners: int
    minutes: float
    samples: list[Sample]
    received: int
    expected: int
    max_gap_ms: float
    listeners_heard: int

    @property
    def growth_last_half(self) -> float:
        """RSS growth from the sample at half time to the last one, as a fraction."""
        return growth_last_half(self.samples)

    @property
    def loss(self) -> float:
        return max(0, self.expected - self.received) / max(1, self.expected)


def growth_last_half(samples: list[Sample]) -> float:
    """``(last − middle) / middle`` of RSS, where middle is the first sample at ≥ half time."""
    if len(samples) < 2:
        return 0.0
    half = samples[-1].at / 2
    middle = next(s for s in samples if s.at >= half)
    return (samples[-1].rss_mib - middle.rss_mib) / middle.rss_mib


async def soak(
    speakers: int, listeners: int, procs: int, minutes: float, interval: float, logs: Path
) -> SoakResult:
    secret = secrets.token_urlsafe(32)
    port = _free_port()
    server = await _spawn(
        "server",
        ["-m", "bench.sfu", "--serve", "roomcast", "--port", str(port), f"--secret={secret}"],
        logs / "server.log",
    )
    children: list[Proc] = []
    try:
        await server.expect("ready", 60)
        url = f"http://127.0.0.1:{port}"
        speaker_tokens, listener_tokens = _tokens(secret, speakers, listeners)
        chunks = [speaker_tokens] + [
            listener_tokens[i::procs] for i in range(procs) if listener_tokens[i::procs]
        ]
        files = []
        for index, chunk in enumerate(chunks):
            path = logs / f"tokens-{index}.json"
            path.write_text(json.dumps(chunk))
            files.append(path)
        load = [
            "-m",
            "bench.sfu_load",
            "--url",
            url,
            "--room",
            ROOM,
            "--max-seconds",
            str(minutes * 60 + 600),
        ]
        children.append(
            await _spawn(
                "speakers",
                [*load, "--tokens", str(files[0]), "--mode", "speakers"],
                logs / "speakers.log",
            )
        )
        await children[0].expect("ready", 120)
        for index, path in enumerate(files[1:]):
            children.append(
                await _spawn(
                    f"listeners {index}",
                    [*load, "--tokens", str(path)],
                    logs / f"listeners-{index}.log",
                )
            )
        for child in children[1:]:
            await child.expect("ready", 120 + listeners)
        marks_a = [await c.ask("mark", "mark") for c in children[1:]]
        first = previous = await server.ask("stats", "stats")
        samples = [Sample(0.0, first["rss"] / 2**20, 0.0)]
        max_gap = 0.0
        deadline = time.monotonic() + minutes * 60
        while time.monotonic() < deadline:
            await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            stats = await server.ask("stats", "stats")
            share = (stats["cpu"] - previous["cpu"]) / max(1e-9, stats["at"] - previous["at"])
            samples.append(Sample(stats["at"] - first["at"], stats["rss"] / 2**20, 100 * share))
            previous = stats
            print(
                f"  {samples[-1].at:7.0f} s  rss {samples[-1].rss_mib:7.1f} MiB  "
                f"cpu {samples[-1].cpu_percent:5.1f} %",
                file=sys.stderr,
                flush=True,
            )
            # Marks reset each participant's longest gap: take them as we go.
            for mark in [await c.ask("mark", "mark") for c in children[1:]]:
                for counters in mark["participants"].values():
                    max_gap = max(max_gap, counters["max_gap"])
        marks_b = [await c.ask("mark", "mark") for c in children[1:]]
        received = expected = heard = 0
        for a, b in zip(marks_a, marks_b, strict=True):
            for user, end in b["participants"].items():
                start = a["participants"][user]
                got = end["received"] - start["received"]
                received += got
                expected += end["expected"] - start["expected"]
                heard += got > 0
        return SoakResult(
            speakers, listeners, minutes, samples, received, expected, 1000 * max_gap, heard
        )
    finally:
        for child in children:
            await child.stop("stop")
        await server.stop("quit")


def render(result: SoakResult, command: str) -> str:
    cpu = [s.cpu_percent for s in result.samples[1:]]
    middle = next(s for s in result.samples if s.at >= result.samples[-1].at / 2)
    rss = (
        f"{result.samples[0].rss_mib:.1f} / {middle.rss_mib:.1f} / {result.samples[-1].rss_mib:.1f}"
    )
    room = f"{result.speakers} speakers, {result.listeners} listeners, {result.minutes:.3g} min"
    summary = markdown_table(
        ["measure", "value"],
        [
            ["room", room],
            ["listeners that heard audio", f"{result.listeners_heard} / {result.listeners}"],
            ["server RSS at start / half time / end, MiB", rss],
            ["RSS growth over the last half, % (goal ≤ 5)", 100 * result.growth_last_half],
            [
                "server CPU, % of one core, median / max",
                f"{median(cpu):.1f} / {max(cpu, default=0):.1f}",
            ],
            ["packets lost by listeners, % of expected", 100 * result.loss],
            ["longest gap between two packets at a listener, ms", result.max_gap_ms],
        ],
    )
    series = markdown_table(
        ["t (s)", "RSS (MiB)", "CPU (% of a core)"],
        [[f"{s.at:.0f}", f"{s.rss_mib:.1f}", f"{s.cpu_percent:.1f}"] for s in result.samples],
    )
    return (
        f"Command: `{command}`  \nMachine: {machine_line()}\n\n{summary}\n\n"
        f"<details><summary>samples</summary>\n\n{series}\n\n</details>\n"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--speakers", type=int, default=3)
    parser.add_argument("--listeners", type=int, default=50)
    parser.add_argument("--procs", type=int, default=2, help="listener processes")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--quick", action="store_true", help="20 s, 2 speakers, 4 listeners")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.speakers, args.listeners, args.procs, args.interval = (
            1 / 3,
            2,
            4,
            1,
            5.0,
        )
    with tempfile.TemporaryDirectory(prefix="roomcast-soak-") as logs:
        result = asyncio.run(
            soak(args.speakers, args.listeners, args.procs, args.minutes, args.interval, Path(logs))
        )
    command = "python -m bench.soak " + shlex.join(argv) if argv else "make soak"
    body = render(result, command.strip())
    print(body)
    print(f"memory growth over the last half: {100 * result.growth_last_half:.2f} %")
    if not args.quick:
        write_section("soak", body, path=RELIABILITY_MD)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

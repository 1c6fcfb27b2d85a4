"""One room across two live processes: what an edge costs the origin, and what it adds.

Starts a redis-server, an origin and an edge (``live.cluster``, each in its own process on
127.0.0.1), S speakers on the origin (``bench/sfu_load.py --mode speakers``: real Opus at 20
ms) and, in turn, the same L load listeners (ICE + DTLS, SRTP counted, never decoded):

1. **via the edge** — the listeners connect to the edge, which gets the mix once from the origin;
2. **direct** — the same number of listeners connect to the origin itself.

Over a ``--seconds`` window each time it reads both servers' CPU (user + sys from
``/proc/PID/stat``) and the listeners' packet counters, and from the edge's ``/metrics`` the
time a mix packet spends on the edge. Printed: origin CPU per listener in both layouts (the
origin's saving is the point of an edge), edge CPU per listener, loss, edge-added latency.
A full run rewrites the ``sfu-edge`` section of docs/performance.md.

Usage: ``python -m bench.sfu_edge [--quick] [--speakers S] [--listeners L] [--procs P]
[--seconds T]``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.report import machine_line, markdown_table, write_section
from core.adapters.redis_process import RedisProcess
from core.rooms import Role
from core.settings import Settings
from core.tokens import issue_join_token

ROOM = "edge-bench"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + sys CPU seconds of process ``pid`` (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


class Proc:
    """A child process speaking the one-line control protocol of bench/sfu_load.py."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(log, "wb"),  # noqa: SIM115 (lives as long as the process)
            text=True,
        )

    def expect(self, word: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.log}: exited: {self.log.read_text()[-2000:]}")
            if line.startswith(word + " "):
                return dict(json.loads(line[len(word) + 1 :]))
        raise TimeoutError(f"no {word!r} from {self.log}")

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("stop")
                self.process.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def start_node(node_id: str, role: str, env: dict[str, str], work: Path) -> tuple[Any, str]:
    port = free_port()
    node_env = {
        **env,
        "ROOMCAST_LIVE__NODE_ID": node_id,
        "ROOMCAST_LIVE__ROLE": role,
        "ROOMCAST_RTC__PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ROOMCAST_VAR_DIR": str(work / node_id),
    }
    argv = [sys.executable, "-m", "uvicorn", "--factory", "live.cluster:app_from_env"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    log = open(work / f"{node_id}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(argv, env=node_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            get(url + "/healthz")
            return process, url
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{node_id} did not start") from None
            time.sleep(0.2)


def edge_latency(metrics: str) -> tuple[float, float]:
    """p50 / p99 (ms, bucket upper bounds) of the edge's mix-path latency histogram."""
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if (
                sample.name == "roomcast_live_added_latency_seconds_bucket"
                and sample.labels.get("path") == "mix"
            ):
                buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0

    def at(q: float) -> float:
        for bound, count in buckets:
            if total and count >= q * total:
                return bound * 1000
        return float("nan")

    return at(0.5), at(0.99)


def listeners(
    url: str, tokens: list[list[str]], procs: int, env: dict[str, str], work: Path, tag: str
) -> list[Proc]:
    started = []
    for index in range(procs):
        part = tokens[index::procs]
        path = work / f"{tag}-{index}.json"
        path.write_text(json.dumps(part))
        argv = [sys.executable, "-m", "bench.sfu_load", "--url", url, "--room", ROOM]
        argv += ["--tokens", str(path), "--concurrency", "4", "--max-seconds", "600"]
        started.append(Proc(argv, env, work / f"{tag}-{index}.log"))
    return started


def window(
    load: list[Proc], servers: dict[str, int], seconds: float
) -> tuple[dict[str, float], int, int]:
    """CPU % of one core per server, and packets (received, expected) over ``seconds``."""
    for proc in load:
        proc.send("mark")
    before = [proc.expect("mark", 30)["participants"] for proc in load]
    cpu = {name: cpu_seconds(pid) for name, pid in servers.items()}
    started = time.monotonic()
    time.sleep(seconds)
    used = {name: cpu_seconds(pid) - cpu[name] for name, pid in servers.items()}
    elapsed = time.monotonic() - started
    for proc in load:
        proc.send("mark")
    after = [proc.expect("mark", 30)["participants"] for proc in load]
    received = expected = 0
    for first, second in zip(before, after, strict=True):
        for user, end in second.items():
            start = first.get(user, {"received": 0, "expected": 0})
            received += end["received"] - start["received"]
            expected += end["expected"] - start["expected"]
    return {k: 100 * v / elapsed for k, v in used.items()}, received, expected


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="sfu-edge-"))
    redis = RedisProcess("redis-server", 0, work / "redis")
    redis.start()
    secret = secrets.token_urlsafe(32)
    base = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    env = {
        **base,
        "ROOMCAST_AUTH__SECRET_KEY": secret,
        "ROOMCAST_REDIS__URL": redis.url,
        "ROOMCAST_RTC__HOST_ADDRESSES": "127.0.0.1",
        "ROOMCAST_RTC__ICE_SERVERS": "",
        "ROOMCAST_LIVE__HEARTBEAT_SECONDS": "0.5",
    }
    settings = Settings(auth={"secret_key": secret})  # type: ignore[arg-type]

    def token(user: str, role: Role) -> list[str]:
        return [
            user,
            issue_join_token(settings, room_id=ROOM, user_id=user, display_name=user, role=role),
        ]

    nodes: list[Any] = []
    load: list[Proc] = []
    try:
        origin, origin_url = start_node("origin", "origin", env, work)
        edge, edge_url = start_node("edge", "edge", env, work)
        nodes += [origin, edge]
        servers = {"origin": origin.pid, "edge": edge.pid}
        speakers = [token("host", Role.HOST)] + [
            token(f"s{i}", Role.LISTENER) for i in range(1, args.speakers)
        ]
        (work / "speakers.json").write_text(json.dumps(speakers))
        argv = [sys.executable, "-m", "bench.sfu_load", "--url", origin_url, "--room", ROOM]
        argv += ["--tokens", str(work / "speakers.json"), "--mode", "speakers"]
        talk = Proc(argv, env, work / "speakers.log")
        load.append(talk)
        talk.expect("ready", 120)
        deadline = time.monotonic() + 30
        while '"origin"' not in _placement(edge_url):
            if time.monotonic() > deadline:
                raise RuntimeError("the room was never placed")
            time.sleep(0.2)
        # One listener on the origin throughout: its mixer runs in every window, so the
        # differences below are what the L listeners (or the edge link) add.
        probe = listeners(origin_url, [token("probe", Role.LISTENER)], 1, env, work, "probe")
        load += probe
        probe[0].expect("ready", 120)
        quiet, _, _ = window(probe, servers, args.seconds)
        results: dict[str, Any] = {"speakers_only": quiet}
        for layout, url in (("edge", edge_url), ("direct", origin_url)):
            tokens = [token(f"{layout}-l{i}", Role.LISTENER) for i in range(args.listeners)]
            group = listeners(url, tokens, args.procs, env, work, layout)
            load += group
            for proc in group:
                proc.expect("ready", 300)
            time.sleep(2.0)
            cpu, received, expected = window(group, servers, args.seconds)
            results[layout] = {"cpu": cpu, "received": received, "expected": expected}
            if layout == "edge":
                results["edge_latency_ms"] = edge_latency(get(edge_url + "/metrics"))
            for proc in group:
                proc.stop()
                load.remove(proc)
            time.sleep(2.0)
        return results
    finally:
        for proc in load:
            proc.stop()
        for process in nodes:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        redis.stop()


def _placement(url: str) -> str:
    try:
        return get(f"{url}/v1/rooms/{ROOM}/placement")
    except OSError:
        return ""


def report(args: argparse.Namespace, results: dict[str, Any], command: str) -> str:
    quiet = results["speakers_only"]
    edge, direct = results["edge"], results["direct"]
    listeners_n = int(args.listeners)

    def per_listener(pct: float) -> float:
        return 10 * pct / listeners_n  # % of a core → ms of CPU per second, per listener

    origin_edge = edge["cpu"]["origin"] - quiet["origin"]
    origin_direct = direct["cpu"]["origin"] - quiet["origin"]
    p50, p99 = results["edge_latency_ms"]

    def loss(side: dict[str, Any]) -> float:
        return 100 * (1 - side["received"] / side["expected"]) if side["expected"] else float("nan")

    rows = [
        ["origin CPU, speakers + 1 listener, % of a core", quiet["origin"], "—"],
        [
            "origin CPU with the L listeners, % of a core",
            edge["cpu"]["origin"],
            direct["cpu"]["origin"],
        ],
        [
            "origin CPU added by the listeners, ms/s per listener",
            per_listener(origin_edge),
            per_listener(origin_direct),
        ],
        ["edge CPU, ms/s per listener", per_listener(edge["cpu"]["edge"] - quiet["edge"]), "—"],
        ["loss, % of expected packets", loss(edge), loss(direct)],
        ["time a mix packet spends on the edge, p50 / p99 ms", f"{p50:.3g} / {p99:.3g}", "—"],
    ]
    table = markdown_table(["", f"via the edge (L = {listeners_n})", "direct to the origin"], rows)
    return (
        f"## One room on two processes: origin + edge (bench/sfu_edge.py)\n\n{machine_line()}\n\n"
        f"`{command}` — S = {args.speakers} speakers on the origin, L = {listeners_n} load"
        " listeners, first all on the edge, then all on the origin (one more listener stays on the"
        " origin throughout, so its mixer always runs); CPU is user + sys of each server"
        f" process, each layout measured over {args.seconds:g} s.\n\n{table}\n"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.sfu_edge", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run; docs left unchanged")
    parser.add_argument("--speakers", type=int, default=4)
    parser.add_argument("--listeners", type=int, default=100)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.quick:
        args.speakers, args.listeners, args.procs, args.seconds = 2, 4, 1, 2.0
    results = run(args)
    command = "python -m bench.sfu_edge " + shlex.join(argv)
    text = report(args, results, command.strip())
    print(text)
    if not args.quick:
        write_section("sfu-edge", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

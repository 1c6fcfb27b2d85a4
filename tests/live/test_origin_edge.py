"""One room across two live processes on 127.0.0.1: an origin and an edge sharing a redis-server.

Both run ``uvicorn --factory live.cluster:app_from_env``. The host and a speaker (distinct
tones) are attached to the origin; two listeners are attached to the edge, which receives the
room mix once from the origin and fans it out. Checks are FFT peaks on what each client decoded:
the edge listeners hear both speakers, a raised hand on the edge reaches the host (room actions
are relayed), both nodes report the room on /metrics. Then the edge is SIGKILLed: only its
listeners leave the room, the speakers on the origin keep hearing each other, and the dropped
listeners rejoin — one through the node the registry now names (a second edge), one through
the origin — and hear the room again.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.adapters.subprocesses import die_with_parent, stop_process_group
from core.rooms import Role
from core.settings import Settings
from core.tokens import issue_join_token
from live.client import RoomClient
from live.registry import Registry
from tests.live.audio import ToneTrack, tones_present
from tests.support.net import free_port, wait_for_port

ROOM = "room-edge"
HOST, S1 = 440.0, 660.0
TONES = [HOST, S1]
WINDOW = 0.8
DEADLINE = 15.0
LOOPBACK = ["127.0.0.1"]

pytestmark = pytest.mark.slow


@dataclass
class Node:
    node_id: str
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


@dataclass
class Cluster:
    settings: Settings
    start: Callable[[str, str], Node]
    redis_url: str

    def token(self, user: str, role: Role = Role.LISTENER) -> str:
        return issue_join_token(
            self.settings, room_id=ROOM, user_id=user, display_name=user.title(), role=role
        )


@pytest.fixture
def cluster(settings: Settings, tmp_path: Path, redis_url: str) -> Iterator[Cluster]:
    secret = secrets.token_urlsafe(32)
    started: list[Node] = []

    def start(node_id: str, role: str) -> Node:
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")},
            "ROOMCAST_VAR_DIR": str(tmp_path / node_id),
            "ROOMCAST_AUTH__SECRET_KEY": secret,
            "ROOMCAST_REDIS__URL": redis_url,
            "ROOMCAST_RTC__HOST_ADDRESSES": "127.0.0.1",
            "ROOMCAST_RTC__ICE_SERVERS": "",
            "ROOMCAST_RTC__PUBLIC_URL": f"http://127.0.0.1:{port}",
            "ROOMCAST_LIVE__NODE_ID": node_id,
            "ROOMCAST_LIVE__ROLE": role,
            "ROOMCAST_LIVE__HEARTBEAT_SECONDS": "0.2",
            "ROOMCAST_LIVE__NODE_TTL_SECONDS": "1.5",
        }
        log = tmp_path / f"{node_id}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "live.cluster:app_from_env",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 (only prctl: fork-safe)
            )
        node = Node(node_id, f"http://127.0.0.1:{port}", process, log)
        started.append(node)
        wait_for_port(port, timeout=30)
        return node

    auth = settings.auth.model_copy(
        update={"secret_key": settings.auth.secret_key.__class__(secret)}
    )
    try:
        yield Cluster(settings.model_copy(update={"auth": auth}), start, redis_url)
    except BaseException:
        for node in started:
            sys.stderr.write(f"--- {node.node_id} ---\n{node.log.read_text()[-3000:]}\n")
        raise
    finally:
        for node in started:
            if node.process.poll() is None:
                stop_process_group(node.process, signal.SIGTERM, timeout=10)


def heard(client: RoomClient, stream: str) -> set[float]:
    audio = client.audio_of(stream)
    if audio is None:
        return set()
    return tones_present(audio.since(time.monotonic() - WINDOW), TONES)


def hears_exactly(client: RoomClient, expected: dict[str, set[float]]) -> bool:
    return set(client.streams()) == set(expected) and all(
        heard(client, stream) == tones for stream, tones in expected.items()
    )


async def until(description: str, condition: Callable[[], bool], timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {description}")
        await asyncio.sleep(0.2)


async def until_async(
    description: str, condition: Callable[[], Awaitable[bool]], timeout: float = DEADLINE
) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {description}")
        await asyncio.sleep(0.2)


def metric(text: str, name: str) -> float:
    """The value of the sample line starting with ``name`` (labels included) in ``text``."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_edge_listeners_hear_origin_speakers_and_survive_losing_the_edge(cluster: Cluster) -> None:
    origin = cluster.start("origin", "origin")
    edge = cluster.start("edge-1", "edge")
    spare = cluster.start("edge-2", "edge")

    async def join(node: Node, user: str, role: Role = Role.LISTENER, **kw: object) -> RoomClient:
        return await RoomClient.connect(
            node.base_url,
            ROOM,
            cluster.token(user, role),
            host_addresses=LOOPBACK,
            ice_servers=[],
            **kw,  # type: ignore[arg-type]
        )

    async def registry_says(where: dict[str, str]) -> bool:
        registry = Registry(cluster.redis_url, ttl_seconds=1)
        try:
            return await registry.participants(ROOM) == where
        finally:
            await registry.close()

    async def scenario() -> None:
        clients: list[RoomClient] = []
        try:
            # Before the room exists the edge refuses: it never opens rooms itself.
            with pytest.raises(Exception) as refused:
                await join(edge, "early")
            assert getattr(refused.value, "close_code", None) == 4004

            host = await join(origin, "host", Role.HOST, publish_track=ToneTrack(HOST, seed=1))
            s1 = await join(origin, "s1", publish_track=ToneTrack(S1, seed=2))
            clients += [host, s1]
            await host.invite("s1")
            await s1.wait_for(lambda c: c.user_id in c.invited)
            await s1.accept_invite()

            # The origin's heartbeat claims the room in Redis; the edge then finds it there.
            def placed() -> bool:
                status, body = edge.get(f"/v1/rooms/{ROOM}/placement")
                return status == 200 and json.loads(body)["origin"]["node_id"] == "origin"

            await until("the room is placed on the origin", placed)
            _, body = origin.get(f"/v1/rooms/{ROOM}/placement")
            assert json.loads(body)["listener"]["node_id"] == "edge-1"

            l1 = await join(edge, "l1")
            l2 = await join(edge, "l2")
            clients += [l1, l2]
            await host.wait_for(lambda c: {"l1", "l2"} <= set(c.participants))
            await until(
                "edge listeners hear both origin speakers in the mix; speakers hear each other",
                lambda: (
                    all(hears_exactly(c, {"mix": {HOST, S1}}) for c in (l1, l2))
                    and hears_exactly(host, {"s1": {S1}})
                    and hears_exactly(s1, {"host": {HOST}})
                ),
            )
            assert l1.role == "listener" and l1.participants["s1"]["role"] == "speaker"
            where = {"host": "origin", "s1": "origin", "l1": "edge-1", "l2": "edge-1"}
            await until_async("the registry knows where everyone is", lambda: registry_says(where))

            # A room action on the edge is applied by the origin and seen by everyone.
            await l1.raise_hand()
            await host.wait_for(lambda c: c.participants["l1"]["hand_raised"])
            await l2.wait_for(lambda c: c.participants["l1"]["hand_raised"])

            _, origin_metrics = origin.get("/metrics")
            _, edge_metrics = edge.get("/metrics")
            assert metric(origin_metrics, 'roomcast_live_rooms{kind="origin"}') == 1
            assert metric(origin_metrics, 'roomcast_live_participants{role="listener"}') == 2
            assert metric(origin_metrics, "roomcast_live_packets_forwarded_total") > 10
            assert metric(edge_metrics, 'roomcast_live_rooms{kind="edge"}') == 1
            assert metric(edge_metrics, "roomcast_live_edge_listeners") == 2
            assert metric(edge_metrics, "roomcast_live_mix_packets_sent_total") > 10

            # Kill the edge outright: only its listeners go.
            os.killpg(edge.process.pid, signal.SIGKILL)
            edge.process.wait(timeout=10)
            await host.wait_for(lambda c: not ({"l1", "l2"} & set(c.participants)), timeout=10)
            assert set(host.participants) == {"host", "s1"}
            await l1.wait_closed(timeout=10)
            await until(
                "speakers on the origin keep hearing each other",
                lambda: hears_exactly(host, {"s1": {S1}}) and hears_exactly(s1, {"host": {HOST}}),
            )

            # Once the dead edge's entry expired, the registry sends listeners to the other
            # edge; l1 rejoins there (a new edge room, linked to the origin), l2 at the origin.
            def listener_node() -> str | None:
                status, body = origin.get(f"/v1/rooms/{ROOM}/placement")
                listener = json.loads(body).get("listener") if status == 200 else None
                return None if listener is None else str(listener["node_id"])

            await until("the dead edge left the registry", lambda: listener_node() == "edge-2")
            await l1.close()
            await l2.close()
            back1 = await join(spare, "l1")
            back2 = await join(origin, "l2")
            clients += [back1, back2]
            await until(
                "the rejoined listeners hear the room through the other edge and the origin",
                lambda: all(hears_exactly(c, {"mix": {HOST, S1}}) for c in (back1, back2)),
            )
            assert host.participants["l1"]["role"] == "listener"
            where = {"host": "origin", "s1": "origin", "l1": "edge-2", "l2": "origin"}
            await until_async("the registry follows the rejoins", lambda: registry_says(where))
        finally:
            for client in clients:
                await client.close()

    asyncio.run(asyncio.wait_for(scenario(), 55))

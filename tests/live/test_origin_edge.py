"""One room across two live processes on 127.0.0.1: an origin and an edge sharing a redis-server.

Both run ``uvicorn --factory live.cluster:app_from_env`` (the shared launcher,
:func:`tests.support.live_node.running_live_node`). The host and a speaker (distinct
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
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.rooms import Role
from core.settings import Settings
from live.client import RoomClient
from live.registry import Registry
from tests.live.audio import ToneTrack, tones_present
from tests.support.live_node import LiveNodeProcess, running_live_node

ROOM = "room-edge"
HOST, S1 = 440.0, 660.0
TONES = [HOST, S1]
WINDOW = 0.8
DEADLINE = 15.0
LOOPBACK = ["127.0.0.1"]

pytestmark = pytest.mark.slow


@dataclass
class Cluster:
    """Live nodes sharing one redis-server and one signing secret (a token from any node's
    :meth:`LiveNodeProcess.token` is accepted by all of them)."""

    start: Callable[[str, str], LiveNodeProcess]
    redis_url: str
    nodes: dict[str, LiveNodeProcess]

    def logs(self) -> str:
        return "".join(f"--- {name} ---\n{node.tail(3000)}\n" for name, node in self.nodes.items())


@pytest.fixture
def cluster(settings: Settings, tmp_path: Path, redis_url: str) -> Iterator[Cluster]:
    secret = secrets.token_urlsafe(32)
    nodes: dict[str, LiveNodeProcess] = {}
    with ExitStack() as stack:

        def start(node_id: str, role: str) -> LiveNodeProcess:
            workdir = tmp_path / node_id
            workdir.mkdir()
            env = {
                "ROOMCAST_REDIS__URL": redis_url,
                "ROOMCAST_LIVE__NODE_ID": node_id,
                "ROOMCAST_LIVE__ROLE": role,
                "ROOMCAST_LIVE__HEARTBEAT_SECONDS": "0.2",
                "ROOMCAST_LIVE__NODE_TTL_SECONDS": "1.5",
            }
            node = stack.enter_context(
                running_live_node(
                    settings, workdir, env, app="live.cluster:app_from_env", secret=secret
                )
            )
            nodes[node_id] = node
            return node

        yield Cluster(start, redis_url, nodes)


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

    async def join(
        node: LiveNodeProcess, user: str, role: Role = Role.LISTENER, **kw: object
    ) -> RoomClient:
        return await RoomClient.connect(
            node.base_url,
            ROOM,
            node.token(ROOM, user, role),
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

    try:
        asyncio.run(asyncio.wait_for(scenario(), 55))
    except BaseException:
        sys.stderr.write(cluster.logs())
        raise

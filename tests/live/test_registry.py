"""The live registry (live.registry) against a real redis-server."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import DependencyUnavailable, NoLiveNode
from core.placement import NodeInfo
from live.registry import Registry


def info(node_id: str, role: str = "auto", participants: int = 0) -> NodeInfo:
    return NodeInfo(node_id, f"http://{node_id}.test", role, 0, participants)  # type: ignore[arg-type]


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_nodes_rooms_and_participants_are_published_and_expire(redis_url: str) -> None:
    async def scenario() -> None:
        a, b = Registry(redis_url, ttl_seconds=0.6), Registry(redis_url, ttl_seconds=0.6)
        try:
            await a.heartbeat(info("a", "origin", 3), {"r1": {"host", "s1"}}, ["r1"])
            await b.heartbeat(info("b", "edge", 2), {"r1": {"l1", "l2"}})
            assert [n.node_id for n in await a.nodes()] == ["a", "b"]
            assert (await b.origin_of("r1")) == info("a", "origin", 3)
            assert await a.participants("r1") == {"host": "a", "s1": "a", "l1": "b", "l2": "b"}
            assert await a.participant_node("r1", "l2") == "b"
            assert (await a.listener_node("r1")) == info("b", "edge", 2)

            # A room b no longer holds is withdrawn at its next heartbeat.
            await b.heartbeat(info("b", "edge", 0), {})
            assert await a.participants("r1") == {"host": "a", "s1": "a"}

            # b stops beating (killed): after the TTL it is gone, a (still beating) stays.
            await b.heartbeat(info("b", "edge", 1), {"r1": {"l3"}})
            for _ in range(4):
                await asyncio.sleep(0.25)
                await a.heartbeat(info("a", "origin", 3), {"r1": {"host", "s1"}}, ["r1"])
            assert [n.node_id for n in await a.nodes()] == ["a"]
            assert "l3" not in await a.participants("r1")
            assert (await a.listener_node("r1")) == info("a", "origin", 3)

            # a stops too: its origin claim expires with it.
            await asyncio.sleep(0.7)
            assert await a.origin_of("r1") is None
            assert await a.listener_node("r1") is None
        finally:
            await a.close()
            await b.close()

    run(scenario())


def test_place_room_picks_the_least_loaded_origin_and_sticks(redis_url: str) -> None:
    async def scenario() -> None:
        registry = Registry(redis_url, ttl_seconds=30)
        try:
            with pytest.raises(NoLiveNode) as none:
                await registry.place_room("r")
            assert none.value.code == "no_live_node"
            await registry.heartbeat(info("busy", "origin", 50), {})
            await registry.heartbeat(info("idle", "auto", 1), {})
            await registry.heartbeat(info("edge", "edge", 0), {})
            assert (await registry.place_room("r")).node_id == "idle"
            await registry.heartbeat(info("idle", "auto", 500), {})
            # Placed rooms stay where they are; new ones follow the load.
            assert (await registry.place_room("r")).node_id == "idle"
            assert (await registry.place_room("other")).node_id == "busy"
            # Another node cannot take a held claim; the holder keeps it by heartbeat.
            assert not await registry.claim_origin("r", "busy")
            lost = await registry.heartbeat(info("busy", "origin", 50), {}, ["r", "other"])
            assert lost == frozenset({"r"})
            await registry.withdraw("idle", ["r"])
            assert await registry.origin_of("r") is None
            assert (await registry.place_room("r")).node_id == "busy"
        finally:
            await registry.close()

    run(scenario())


def test_an_unreachable_redis_is_a_dependency_error() -> None:
    async def scenario() -> None:
        registry = Registry("redis://127.0.0.1:1/0", ttl_seconds=1)
        try:
            with pytest.raises(DependencyUnavailable):
                await registry.nodes()
        finally:
            await registry.close()

    run(scenario())

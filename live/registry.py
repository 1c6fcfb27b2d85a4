"""The live nodes' shared registry in Redis: who is up, which node holds which room and user.

Every clustered live node calls :meth:`Registry.heartbeat` every ``live.heartbeat_seconds``;
every key it writes expires ``live.node_ttl_seconds`` later, so a node that dies (SIGKILL, a
lost host) drops out on its own — nothing has to clean up after it. Keys (prefix
``roomcast:live:``):

========================== =========================================================
``nodes``                  set of node ids ever seen (pruned when their entry expired)
``node:{node}``            hash: url, role, rooms, participants (:class:`NodeInfo`)
``origin:{room}``          the origin node's id; claimed with SET NX, kept by heartbeats
``room:{room}:nodes``      set of node ids holding participants of the room
``room:{room}:at:{node}``  set of the user ids whose signaling ends on that node
========================== =========================================================

The decisions (which node opens a room, where a listener goes) are pure, in
:mod:`core.placement`; this module only reads and writes Redis.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.errors import DependencyUnavailable, NoLiveNode
from core.placement import NodeInfo, choose_listener_node, choose_origin, parse_node

__all__ = ["PREFIX", "Registry"]

PREFIX: Final = "roomcast:live:"

#: Keep the origin claim if it is ours (refresh its TTL) or free (take it); 1 when we hold it.
_CLAIM: Final = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


class Registry:
    """Registry operations over one Redis connection pool (create once per process)."""

    def __init__(self, redis_url: str, *, ttl_seconds: float) -> None:
        # decode_responses: every key, member and field is text (typed as Any by redis-py).
        self._redis: Any = aioredis.Redis.from_url(redis_url, decode_responses=True)
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        #: Rooms this process published participants of at its last heartbeat.
        self._held: set[str] = set()

    async def close(self) -> None:
        await self._redis.aclose()

    # -- writes (the node's own heartbeat) ----------------------------------------------

    async def heartbeat(
        self,
        info: NodeInfo,
        holdings: Mapping[str, Collection[str]],
        origins: Collection[str] = (),
    ) -> frozenset[str]:
        """Publish ``info``, the users whose signaling ends here per room, and keep the origin
        claims of ``origins``. Returns the rooms of ``origins`` another node holds instead."""
        node, ttl = info.node_id, self._ttl_ms
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(_node_key(node), mapping=info.to_fields())
                pipe.pexpire(_node_key(node), ttl)
                pipe.sadd(_key("nodes"), node)
                for room in self._held - holdings.keys():
                    pipe.delete(_at_key(room, node))
                    pipe.srem(_room_nodes_key(room), node)
                for room, users in holdings.items():
                    pipe.delete(_at_key(room, node))
                    if users:
                        pipe.sadd(_at_key(room, node), *users)
                        pipe.pexpire(_at_key(room, node), ttl)
                    pipe.sadd(_room_nodes_key(room), node)
                    pipe.pexpire(_room_nodes_key(room), ttl)
                ordered = list(origins)
                for room in ordered:
                    pipe.eval(_CLAIM, 1, _origin_key(room), node, ttl)
                results = await pipe.execute()
        except RedisError as exc:
            raise _unavailable(exc) from exc
        self._held = set(holdings)
        claims = results[len(results) - len(ordered) :] if ordered else []
        return frozenset(room for room, held in zip(ordered, claims, strict=True) if not held)

    async def claim_origin(self, room_id: str, node_id: str) -> bool:
        """Become (or stay) the origin of ``room_id``; False when another node holds it."""
        try:
            return bool(
                await self._redis.eval(_CLAIM, 1, _origin_key(room_id), node_id, self._ttl_ms)
            )
        except RedisError as exc:
            raise _unavailable(exc) from exc

    async def withdraw(self, node_id: str, rooms: Collection[str] = ()) -> None:
        """Remove this node at once (clean shutdown) rather than waiting for its TTL."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.delete(_node_key(node_id))
                pipe.srem(_key("nodes"), node_id)
                for room in set(rooms) | self._held:
                    pipe.delete(_at_key(room, node_id))
                    pipe.srem(_room_nodes_key(room), node_id)
                await pipe.execute()
            for room in rooms:
                # Only our own claims: the script compares the holder first.
                await self._redis.eval(_RELEASE, 1, _origin_key(room), node_id)
        except RedisError as exc:
            raise _unavailable(exc) from exc
        self._held.clear()

    # -- reads ----------------------------------------------------------------------------

    async def nodes(self) -> list[NodeInfo]:
        """Every node whose entry has not expired (sorted by id); expired ids are pruned."""
        try:
            ids = sorted(await self._redis.smembers(_key("nodes")))
            async with self._redis.pipeline(transaction=False) as pipe:
                for node in ids:
                    pipe.hgetall(_node_key(node))
                entries = await pipe.execute()
            gone = [node for node, fields in zip(ids, entries, strict=True) if not fields]
            if gone:
                await self._redis.srem(_key("nodes"), *gone)
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return [
            parse_node(node, fields) for node, fields in zip(ids, entries, strict=True) if fields
        ]

    async def node(self, node_id: str) -> NodeInfo | None:
        """One node, or ``None`` when it is not up."""
        try:
            fields = await self._redis.hgetall(_node_key(node_id))
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return parse_node(node_id, fields) if fields else None

    async def origin_id(self, room_id: str) -> str | None:
        """The id of the node holding ``room_id``'s claim, if any."""
        try:
            value = await self._redis.get(_origin_key(room_id))
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return str(value) if value else None

    async def origin_of(self, room_id: str) -> NodeInfo | None:
        """The live origin node of ``room_id``, or ``None`` (no room, or its node is down)."""
        node_id = await self.origin_id(room_id)
        return None if node_id is None else await self.node(node_id)

    async def place_room(self, room_id: str) -> NodeInfo:
        """The origin of ``room_id``: the current one, else the least loaded node that may
        open rooms (claimed now, so concurrent callers agree). DependencyUnavailable
        ``no_live_node`` when no such node is up."""
        current = await self.origin_of(room_id)
        if current is not None:
            return current
        chosen = choose_origin(await self.nodes())
        if chosen is None:
            raise NoLiveNode("live registry", "no live node may open rooms")
        if await self.claim_origin(room_id, chosen.node_id):
            return chosen
        winner = await self.origin_of(room_id)
        if winner is None:
            raise NoLiveNode("live registry", f"the origin of room {room_id!r} went away meanwhile")
        return winner

    async def listener_node(self, room_id: str) -> NodeInfo | None:
        """Where a listener of ``room_id`` should connect (None: the room has no live origin)."""
        origin = await self.origin_id(room_id)
        if origin is None:
            return None
        return choose_listener_node(await self.nodes(), origin)

    async def participants(self, room_id: str) -> dict[str, str]:
        """User id → id of the node their signaling ends on, for every node still up."""
        try:
            nodes = sorted(await self._redis.smembers(_room_nodes_key(room_id)))
            async with self._redis.pipeline(transaction=False) as pipe:
                for node in nodes:
                    pipe.smembers(_at_key(room_id, node))
                    pipe.exists(_node_key(node))
                found = await pipe.execute()
        except RedisError as exc:
            raise _unavailable(exc) from exc
        where: dict[str, str] = {}
        for index, node in enumerate(nodes):
            users, alive = found[2 * index], found[2 * index + 1]
            if alive:
                where.update(dict.fromkeys(users, node))
        return where

    async def participant_node(self, room_id: str, user_id: str) -> str | None:
        """The node ``user_id``'s signaling ends on in ``room_id``, if known."""
        return (await self.participants(room_id)).get(user_id)


_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _key(name: str) -> str:
    return PREFIX + name


def _node_key(node_id: str) -> str:
    return _key(f"node:{node_id}")


def _origin_key(room_id: str) -> str:
    return _key(f"origin:{room_id}")


def _room_nodes_key(room_id: str) -> str:
    return _key(f"room:{room_id}:nodes")


def _at_key(room_id: str, node_id: str) -> str:
    return _key(f"room:{room_id}:at:{node_id}")


def _unavailable(exc: RedisError) -> DependencyUnavailable:
    return DependencyUnavailable("live registry (Redis)", str(exc))

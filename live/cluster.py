"""A clustered live node: the live app plus the Redis registry, edge serving and ``/metrics``.

``uvicorn --factory live.cluster:app_from_env`` runs one. Several of them share a Redis
(``ROOMCAST_REDIS__URL``) and an ``auth.secret_key``; each has its own ``live.node_id``,
``live.role`` and ``rtc.public_url`` (how clients and the other nodes reach it). See
docs/scaling.md. On top of :func:`live.node.create_live_app`'s routes it serves:

- ``/v1/rooms/{room}/ws`` — the public signaling route, now placement-aware: a room open here
  is served here; a room whose origin (per the registry) is another node is served as an
  edge (:mod:`live.edge`) when this node's role allows, else 4004.
- ``/v1/internal/rooms/{room}/…`` — what edges open on an origin (:mod:`live.relay`).
- ``/v1/rooms/{room}/placement`` — JSON: the room's origin and where a listener should connect
  (``place=true`` places a room that has no origin yet).
- ``/metrics`` (:mod:`live.metrics`) and ``/healthz``.

Its heartbeat publishes, every ``live.heartbeat_seconds``, the node's load, the rooms it is
origin of (claims kept alive) and the users whose signaling ends here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse

from core.errors import DependencyUnavailable, RoomcastError
from core.placement import NodeInfo
from core.protocol.close_codes import CloseCode
from core.settings import Settings, load_settings
from live.edge import EdgeNode
from live.metrics import LiveSnapshot, LoopLagMonitor, mount_metrics, sessions_snapshot
from live.node import LiveNode
from live.process import prepare_live_process
from live.registry import Registry
from live.relay import RelayIndex, create_relay_router
from live.signaling import _serve

__all__ = ["ClusterNode", "app_from_env", "create_cluster_app"]

logger = logging.getLogger(__name__)


class ClusterNode:
    """This process's live node, edge rooms and registry membership."""

    def __init__(self, settings: Settings, *, registry: Registry | None = None) -> None:
        live = settings.live
        self.settings = settings
        self.node_id = live.node_id or f"{socket.gethostname()}:{live.port}"
        self.url = (settings.rtc.public_url or f"http://{live.host}:{live.port}").rstrip("/")
        self.role = live.role
        self.node = LiveNode(settings)
        self.edge = EdgeNode(settings, self.node_id)
        self.relayed = RelayIndex()
        self.registry = registry or Registry(settings.redis_url, ttl_seconds=live.node_ttl_seconds)
        self.lag = LoopLagMonitor()
        self._heartbeat: asyncio.Task[None] | None = None

    # -- what the registry hears --------------------------------------------------------

    def info(self) -> NodeInfo:
        origin_people = sum(len(s.state.participants) for s in self.node.rooms.values())
        edge_people = sum(len(room.clients()) for room in self.edge.rooms.values())
        return NodeInfo(
            self.node_id,
            self.url,
            self.role,
            rooms=len(self.node.rooms) + len(self.edge.rooms),
            participants=origin_people + edge_people,
        )

    def holdings(self) -> dict[str, frozenset[str]]:
        """Room → users whose signaling ends on this node (relayed ones end on their edge)."""
        held = {
            room_id: session.connected() - self.relayed.relayed(room_id)
            for room_id, session in self.node.rooms.items()
        }
        for room_id, room in self.edge.rooms.items():
            held[room_id] = held.get(room_id, frozenset()) | room.clients()
        return held

    def snapshot(self) -> LiveSnapshot:
        return sessions_snapshot(self.node.rooms.values(), self.edge.rooms.values())

    async def beat(self) -> None:
        """One heartbeat (also run once at start so the node is listed at once)."""
        lost = await self.registry.heartbeat(self.info(), self.holdings(), list(self.node.rooms))
        for room_id in lost:
            logger.error("room %s is open here but another node holds its origin claim", room_id)

    async def _beat_forever(self) -> None:
        while True:
            try:
                await self.beat()
            except DependencyUnavailable as exc:
                logger.warning("registry heartbeat failed: %s", exc)
            await asyncio.sleep(self.settings.live.heartbeat_seconds)

    async def start(self) -> None:
        # A node that crashed left its recordings in the spool: upload and finalise them
        # before serving, as a standalone node does (create_live_app's lifespan).
        await self.node.recover()
        self.lag.start()
        self._heartbeat = asyncio.get_running_loop().create_task(
            self._beat_forever(), name="registry-heartbeat"
        )

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self.lag.stop()
        rooms = list(self.node.rooms)
        await self.edge.close()
        await self.node.close()
        with contextlib.suppress(DependencyUnavailable):
            await self.registry.withdraw(self.node_id, rooms)
        await self.registry.close()

    # -- the public signaling route ----------------------------------------------------

    async def serve(self, websocket: WebSocket, room_id: str, token: str) -> None:
        if self.node.room(room_id) is not None or self.role == "origin":
            await _serve(self.node, websocket, room_id, token)
            return
        try:
            origin = await self.registry.origin_of(room_id)
        except DependencyUnavailable as exc:
            logger.warning("registry unavailable, serving %s locally: %s", room_id, exc)
            origin = None
        if origin is not None and origin.node_id != self.node_id:
            await self.edge.serve(websocket, room_id, token, origin)
        elif self.role == "edge":
            await websocket.accept()
            await websocket.close(int(CloseCode.ROOM_NOT_FOUND), "room_not_found")
        else:
            await _serve(self.node, websocket, room_id, token)


def create_cluster_app(settings: Settings, *, cluster: ClusterNode | None = None) -> FastAPI:
    """The clustered live node's ASGI app (see module docstring)."""
    me = cluster or ClusterNode(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await me.start()
        try:
            yield
        finally:
            await me.stop()

    app = FastAPI(title="Roomcast live node (clustered)", lifespan=lifespan)
    app.state.cluster = me
    app.state.live_node = me.node

    @app.websocket("/v1/rooms/{room_id}/ws")
    async def room_socket(websocket: WebSocket, room_id: str, token: str = "") -> None:
        await me.serve(websocket, room_id, token)

    app.include_router(create_relay_router(me.node, me.relayed))

    @app.get("/v1/rooms/{room_id}/placement")
    async def placement(room_id: str, place: bool = False) -> Any:
        try:
            origin = await (
                me.registry.place_room(room_id) if place else me.registry.origin_of(room_id)
            )
            listener = await me.registry.listener_node(room_id) if origin else None
        except RoomcastError as exc:
            return JSONResponse({"code": exc.code, "message": exc.message}, status_code=503)
        if origin is None:
            return JSONResponse(
                {"code": "room_not_found", "message": f"room {room_id!r} has no live origin"},
                status_code=404,
            )
        return {
            "room_id": room_id,
            "origin": {"node_id": origin.node_id, "url": origin.url},
            "listener": None
            if listener is None
            else {"node_id": listener.node_id, "url": listener.url},
        }

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        return {
            "status": "ok",
            "node_id": me.node_id,
            "role": me.role,
            "rooms": len(me.node.rooms),
            "edge_rooms": len(me.edge.rooms),
        }

    mount_metrics(app, me.snapshot, lag=me.lag)
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory: settings from ``ROOMCAST_*`` (one build per process); prepares the
    process for a live node."""
    prepare_live_process()
    return create_cluster_app(load_settings())

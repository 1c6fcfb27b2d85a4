"""The live node's composition root: room sessions, the signaling router, the ASGI app.

A :class:`LiveNode` owns the room sessions of one process, created lazily: the first holder of
a host join token for a room id opens its session (the token, signed by the API, carries all
the live node needs: no database on this path). Other tokens join an open session; with none
the socket closes with 4004, and a room that ended here closes later joins with 4010.

``create_live_app(settings)`` serves the signaling route and ``/healthz``: ``roomcast live``
runs it with uvicorn on ``settings.live.host:port``, while ``roomcast up`` mounts
:func:`live.signaling.create_live_router` into the API app instead. ``app_from_env`` is a
uvicorn factory (``uvicorn --factory live.node:app_from_env``) reading ``ROOMCAST_*``.

This is the one module of ``live`` allowed to import ``recorder`` (to give sessions a packet
tap); that wiring comes with the recorder.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

from fastapi import FastAPI

from core.errors import NotFound
from core.protocol.close_codes import CloseCode
from core.rooms import Role, rule_error
from core.settings import Settings, load_settings
from core.tokens import JoinClaims
from live.media_room import PacketTap
from live.room_session import Connection, RoomSession
from live.rtc import prepare_ice
from live.signaling import create_live_router

__all__ = ["LiveNode", "app_from_env", "create_live_app", "mount_live"]

logger = logging.getLogger(__name__)

#: Ended room ids remembered so late joiners get 4010 rather than 4004 (oldest forgotten first).
MAX_ENDED_REMEMBERED: Final = 10_000


class LiveNode:
    """Room sessions of this process, by room id."""

    def __init__(
        self,
        settings: Settings,
        *,
        packet_tap_factory: Callable[[str], PacketTap | None] | None = None,
    ) -> None:
        self.settings = settings
        self._tap_factory = packet_tap_factory
        self._sessions: dict[str, RoomSession] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        prepare_ice(settings.rtc)

    def room(self, room_id: str) -> RoomSession | None:
        """The open session of ``room_id``, if any."""
        return self._sessions.get(room_id)

    @property
    def rooms(self) -> dict[str, RoomSession]:
        return dict(self._sessions)

    async def admit(self, claims: JoinClaims, connection: Connection) -> RoomSession:
        """Join ``connection`` to its room, opening the session for a host token.

        Raises NotFound ``room_not_found`` (4004) without a session and a host token,
        ``room_ended`` (4010) for a room that ended here, or what the room's rules refuse.
        """
        session = self._sessions.get(claims.room_id)
        if session is None:
            if claims.room_id in self._ended:
                raise rule_error("room_ended")
            if claims.role is not Role.HOST:
                raise NotFound(
                    f"no live room {claims.room_id!r}; its host has not opened it",
                    code="room_not_found",
                )
            tap = self._tap_factory(claims.room_id) if self._tap_factory else None
            session = RoomSession(
                claims.room_id,
                self.settings,
                host_id=claims.user_id,
                host_name=claims.display_name,
                on_ended=self._forget,
                packet_tap=tap,
            )
            self._sessions[claims.room_id] = session
            try:
                await session.join(claims, connection)
            except BaseException:
                # Nobody got in: do not leave an empty room behind.
                await session.close(CloseCode.INTERNAL_ERROR)
                raise
            return session
        await session.join(claims, connection)
        return session

    async def close(self) -> None:
        """Close every room (1001: the node is going away)."""
        sessions, self._sessions = list(self._sessions.values()), {}
        results = await asyncio.gather(
            *(session.close(CloseCode.GOING_AWAY) for session in sessions),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                logger.error("closing a room failed: %r", result)

    def _forget(self, session: RoomSession) -> None:
        if self._sessions.get(session.room_id) is session:
            del self._sessions[session.room_id]
        if session.state.ended_reason is not None:
            self._ended[session.room_id] = None
            while len(self._ended) > MAX_ENDED_REMEMBERED:
                self._ended.popitem(last=False)


def create_live_app(settings: Settings, *, node: LiveNode | None = None) -> FastAPI:
    """An ASGI app serving the signaling route and ``/healthz``; closes the node on shutdown."""
    live_node = node or LiveNode(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await live_node.close()

    app = FastAPI(title="Roomcast live node", lifespan=lifespan)
    app.state.live_node = live_node
    app.include_router(create_live_router(live_node))

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        return {"status": "ok", "rooms": len(live_node.rooms)}

    return app


def app_from_env() -> FastAPI:
    """uvicorn factory: settings from ``ROOMCAST_*`` (one build per process)."""
    return create_live_app(load_settings())


def mount_live(app: FastAPI, node: LiveNode) -> None:
    """Serve ``node``'s signaling route from ``app`` too (``roomcast up``: API + live on one
    port), closing the node's rooms when ``app`` shuts down, after its own lifespan."""
    app.include_router(create_live_router(node))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[Any]:
        try:
            async with inner(application) as state:
                yield state
        finally:
            await node.close()

    app.router.lifespan_context = lifespan
    app.state.live_node = node

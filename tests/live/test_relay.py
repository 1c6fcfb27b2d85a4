"""The origin side of the origin ↔ edge link (live.relay): service tokens and who may connect."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from core.errors import InvalidToken, TokenExpired
from core.rooms import Role
from core.settings import Settings
from core.tokens import issue_join_token
from live.edge import RelayedMixer, internal_url
from live.node import LiveNode
from live.relay import RelayIndex, create_relay_router, decode_service_token, issue_service_token


def test_service_tokens_name_their_node_and_expire(settings: Settings) -> None:
    token = issue_service_token(settings, "edge-1", now=1_000_000)
    assert decode_service_token(settings, token, now=1_000_100) == "edge-1"
    with pytest.raises(TokenExpired):
        decode_service_token(settings, token, now=1_000_000 + 301)
    join = issue_join_token(settings, room_id="r", user_id="u", display_name="U", role=Role.HOST)
    with pytest.raises(InvalidToken):
        decode_service_token(settings, join)  # a user's token is never a service token
    other = settings.model_copy(
        update={
            "auth": settings.auth.model_copy(
                update={"secret_key": type(settings.auth.secret_key)("x" * 40)}
            )
        }
    )
    with pytest.raises(InvalidToken):
        decode_service_token(other, token)  # another deployment's key


def test_relay_index_counts_overlapping_connections() -> None:
    index = RelayIndex()
    index.add("r", "u")
    index.add("r", "u")
    index.discard("r", "u")
    assert index.relayed("r") == {"u"}
    index.discard("r", "u")
    assert index.relayed("r") == frozenset()


def test_internal_urls_keep_the_base_path_and_quote_values() -> None:
    url = internal_url("https://live.example.test/base/", "room 1", "ws", token="a+b", service="s")
    assert url == "wss://live.example.test/base/v1/internal/rooms/room%201/ws?token=a%2Bb&service=s"


def test_internal_routes_refuse_without_a_service_token_or_a_room(settings: Settings) -> None:
    app = FastAPI()
    app.include_router(create_relay_router(LiveNode(settings), RelayIndex()))
    service = issue_service_token(settings, "edge-1")
    join = issue_join_token(
        settings, room_id="r", user_id="u", display_name="U", role=Role.LISTENER
    )
    with TestClient(app) as client:
        for path in (
            f"/v1/internal/rooms/r/ws?token={join}",
            "/v1/internal/rooms/r/mix?service=bad",
        ):
            with client.websocket_connect(path) as ws, pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
            assert closed.value.code == 4001
        mix = f"/v1/internal/rooms/r/mix?service={service}"
        with client.websocket_connect(mix) as ws, pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_bytes()
        assert closed.value.code == 4004
        # A relayed listener of a room not open here gets the public route's answer.
        path = f"/v1/internal/rooms/r/ws?token={join}&service={service}"
        with client.websocket_connect(path) as ws, pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 4004


def test_the_edge_mixer_sends_the_origin_packets_as_they_are_without_a_clock() -> None:
    async def scenario() -> tuple[bytes, int | None, int, int]:
        mixer = RelayedMixer("r")
        track = mixer.attach_listener()  # unbound: the packet is queued, as for a sender
        mixer.start()
        mixer.relay(b"\xf8opus", 96_000)
        packet = await asyncio.wait_for(track.recv(), 1)
        await asyncio.sleep(0.1)  # a clock would have ticked 5 times by now
        ticks = mixer.ticks
        await mixer.close()
        return bytes(packet), packet.pts, ticks, mixer.stats.mix_latency.total

    payload, pts, ticks, timed = asyncio.run(scenario())
    assert (payload, pts, ticks, timed) == (b"\xf8opus", 96_000, 0, 1)

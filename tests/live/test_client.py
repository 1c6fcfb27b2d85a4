"""``live.client.RoomClient`` against a real uvicorn live node on 127.0.0.1 (same event loop).

The client keeps a room view from the snapshot plus events, settles each action on its ack or
raises the refusal with its stable code, answers offers with a real aiortc peer, and reports
the close code when the server ends the connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import uvicorn

from core.errors import RoomActionForbidden, RoomStateConflict, SignalingClosed
from core.rooms import Role
from core.settings import Settings
from core.tokens import issue_join_token
from live.client import RoomClient, ws_url
from live.node import create_live_app
from tests.live.audio import ToneTrack, tones_present
from tests.support.net import free_port

ROOM = "room-c"
LOOPBACK = ["127.0.0.1"]


def test_ws_url_keeps_the_base_path_and_quotes_the_token() -> None:
    assert ws_url("http://127.0.0.1:8000", "r1", "a.b+c") == (
        "ws://127.0.0.1:8000/v1/rooms/r1/ws?token=a.b%2Bc"
    )
    assert ws_url("https://live.example/base/", "r 2", "t") == (
        "wss://live.example/base/v1/rooms/r%202/ws?token=t"
    )


@asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[str]:
    rtc = settings.rtc.model_copy(update={"host_addresses": LOOPBACK, "ice_servers": []})
    settings = settings.model_copy(update={"rtc": rtc})
    port = free_port()
    config = uvicorn.Config(
        create_live_app(settings), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def run(
    settings: Settings,
    scenario: Callable[[str, Callable[..., Awaitable[RoomClient]]], Awaitable[None]],
) -> None:
    async def main() -> None:
        async with live_server(settings) as base_url:
            clients: list[RoomClient] = []

            async def join(user: str, role: Role = Role.LISTENER, **kwargs: object) -> RoomClient:
                token = issue_join_token(
                    settings, room_id=ROOM, user_id=user, display_name=user.title(), role=role
                )
                client = await RoomClient.connect(
                    base_url,
                    ROOM,
                    token,
                    host_addresses=LOOPBACK,
                    **kwargs,  # type: ignore[arg-type]
                )
                clients.append(client)
                return client

            try:
                await scenario(base_url, join)
            finally:
                for client in clients:
                    await client.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_client_keeps_the_room_view_and_settles_requests(settings: Settings) -> None:
    async def scenario(base_url: str, join: Callable[..., Awaitable[RoomClient]]) -> None:
        host = await join("hana", Role.HOST)
        assert host.role == "host" and host.grants["record"] is True
        ann = await join("ann")
        bob = await join("bob")
        await host.wait_for(lambda c: set(c.participants) == {"hana", "ann", "bob"})
        assert ann.role == "listener" and ann.grants["publish"] is False

        await ann.raise_hand()
        await host.wait_for(lambda c: c.participants["ann"]["hand_raised"])
        await host.invite("bob")
        await bob.wait_for(lambda c: "bob" in c.invited)
        await bob.decline_invite()
        await host.wait_for(lambda c: not c.invited)

        await host.bring_up("ann")
        await ann.wait_for(lambda c: c.role == "speaker")
        assert ann.grants["publish"] is True and not ann.participants["ann"]["hand_raised"]
        await host.mute("ann")
        await bob.wait_for(lambda c: c.participants["ann"]["muted"])
        await ann.mute("ann", muted=False)
        await bob.wait_for(lambda c: not c.participants["ann"]["muted"])

        await host.set_recording(True)
        await bob.wait_for(lambda c: c.recording)
        await host.add_marker("Intro")
        await bob.wait_for(lambda c: any(m["type"] == "marker_added" for m in c.messages))

        # Refusals raise the rule's typed error with its stable code; nothing changes.
        with pytest.raises(RoomActionForbidden) as forbidden:
            await ann.add_marker("Mine")
        assert forbidden.value.code == "host_only"
        with pytest.raises(RoomActionForbidden) as not_moderator:
            await bob.bring_up("ann")
        assert not_moderator.value.code == "not_a_moderator"
        with pytest.raises(RoomStateConflict) as conflict:
            await host.bring_up("bob")
        assert conflict.value.code == "hand_not_raised"
        await bob.ping()

        await host.remove("bob")
        assert await bob.wait_closed() == 4003
        with pytest.raises(SignalingClosed):
            await bob.raise_hand()
        await host.wait_for(lambda c: "bob" not in c.participants)
        with pytest.raises(SignalingClosed) as again:
            await join("bob")
        assert again.value.close_code == 4003

        await ann.leave()
        assert ann.close_code == 1000
        await host.wait_for(lambda c: set(c.participants) == {"hana"})

        await host.end_room()
        assert host.close_code == 4010 and host.ended_reason == "ended_by_host"

    run(settings, scenario)


def test_connect_refusals_raise_with_the_close_code(settings: Settings) -> None:
    async def scenario(base_url: str, join: Callable[..., Awaitable[RoomClient]]) -> None:
        with pytest.raises(SignalingClosed) as no_room:
            await join("ann")
        assert no_room.value.close_code == 4004
        with pytest.raises(SignalingClosed) as bad_token:
            await RoomClient.connect(base_url, ROOM, "not-a-token", host_addresses=LOOPBACK)
        assert (bad_token.value.close_code, bad_token.value.reason) == (4001, "invalid_token")

    run(settings, scenario)


def test_client_answers_offers_and_a_muted_speaker_goes_silent(settings: Settings) -> None:
    async def scenario(base_url: str, join: Callable[..., Awaitable[RoomClient]]) -> None:
        host = await join("hana", Role.HOST, publish_track=ToneTrack(440.0, seed=1))
        ann = await join("ann", publish_track=ToneTrack(660.0, seed=2))
        await ann.raise_hand()
        await host.wait_for(lambda c: c.participants.get("ann", {}).get("hand_raised", False))
        await host.bring_up("ann")

        def host_hears_ann() -> set[float]:
            audio = host.audio_of("ann")
            if audio is None:
                return set()
            return tones_present(audio.since(time.monotonic() - 0.6), [440.0, 660.0])

        await host.wait_for(lambda c: host_hears_ann() == {660.0}, timeout=15)
        assert host.peer.pc.connectionState == "connected"
        offers = [m["negotiation"] for m in ann.messages if m["type"] == "offer"]
        assert offers == list(range(1, len(offers) + 1)) and len(offers) >= 2

        await host.mute("ann")
        await host.wait_for(lambda c: host_hears_ann() == set(), timeout=15)

    run(settings, scenario)

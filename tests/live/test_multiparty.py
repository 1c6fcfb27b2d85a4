"""A whole room through ``live.client`` against a real uvicorn live node on 127.0.0.1.

The node runs in its own process (``uvicorn --factory live.node:app_from_env``, ICE host address
127.0.0.1, no ICE server); six clients join it from this process: a host and two speakers
sending distinct tones, three listeners. Checks are FFT peaks on what each client decoded,
polled with deadlines: speakers hear each other (one forwarded track per speaker) and never
themselves, listeners hear every speaker in the one mixed track, a listener brought on stage
is then heard by all, a speaker moved to the audience no longer is, and a listener that sends
audio anyway is never heard.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.rooms import Role
from core.settings import Settings
from live.client import RoomClient
from tests.live.audio import ToneTrack, tones_present
from tests.support.live_node import LiveNodeProcess, running_live_node

ROOM = "room-mp"
HOST, S1, S2, L1, ROGUE = 440.0, 660.0, 880.0, 1100.0, 1320.0
TONES = [HOST, S1, S2, L1, ROGUE]
WINDOW = 0.8  # seconds of the most recent decoded audio analysed
DEADLINE = 20.0

pytestmark = pytest.mark.slow


@pytest.fixture
def live_node(settings: Settings, tmp_path: Path) -> Iterator[LiveNodeProcess]:
    with running_live_node(settings, tmp_path) as node:
        yield node


def heard(client: RoomClient, stream: str) -> set[float]:
    audio = client.audio_of(stream)
    if audio is None:
        return set()
    return tones_present(audio.since(time.monotonic() - WINDOW), TONES)


async def until(description: str, condition: Callable[[], bool], timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {description}")
        await asyncio.sleep(0.2)


def hears_exactly(client: RoomClient, expected: dict[str, set[float]]) -> bool:
    """``client`` receives exactly these streams, each carrying exactly these tones."""
    return set(client.streams()) == set(expected) and all(
        heard(client, stream) == tones for stream, tones in expected.items()
    )


def test_host_speakers_and_listeners_hear_what_the_room_allows(live_node: LiveNodeProcess) -> None:
    async def scenario() -> None:
        loopback = ["127.0.0.1"]

        async def join(user: str, role: Role = Role.LISTENER, **kwargs: object) -> RoomClient:
            return await RoomClient.connect(
                live_node.base_url,
                ROOM,
                live_node.token(ROOM, user, role),
                host_addresses=loopback,
                ice_servers=[],
                **kwargs,  # type: ignore[arg-type]
            )

        host = await join("host", Role.HOST, publish_track=ToneTrack(HOST, seed=1))
        clients = [host]
        try:
            s1 = await join("s1", publish_track=ToneTrack(S1, seed=2))
            s2 = await join("s2", publish_track=ToneTrack(S2, seed=3))
            l1 = await join("l1", publish_track=ToneTrack(L1, seed=4))
            l2 = await join("l2")
            # Sends audio although it is a listener: the server must never relay it.
            rogue = await join("rogue", publish_track=ToneTrack(ROGUE, seed=5), always_publish=True)
            clients += [s1, s2, l1, l2, rogue]
            await host.wait_for(lambda c: len(c.participants) == 6)

            for speaker in (s1, s2):
                await host.invite(speaker.user_id)
                await speaker.wait_for(lambda c: c.user_id in c.invited)
                await speaker.accept_invite()
            await host.wait_for(
                lambda c: (
                    [p["role"] for p in c.participants.values()]
                    == ["host", "speaker", "speaker", "listener", "listener", "listener"]
                )
            )

            await until(
                "speakers hear each other, listeners hear the mix, nobody hears the rogue",
                lambda: (
                    hears_exactly(host, {"s1": {S1}, "s2": {S2}})
                    and hears_exactly(s1, {"host": {HOST}, "s2": {S2}})
                    and hears_exactly(s2, {"host": {HOST}, "s1": {S1}})
                    and all(hears_exactly(c, {"mix": {HOST, S1, S2}}) for c in (l1, l2, rogue))
                ),
            )
            await host.wait_for(lambda c: set(c.active_speakers) >= {"host", "s1", "s2"})

            # l1 raises a hand and is brought up: everyone hears l1 from then on.
            await l1.raise_hand()
            await host.wait_for(lambda c: c.participants["l1"]["hand_raised"])
            await host.bring_up("l1")
            await until(
                "the promoted listener is heard by everyone",
                lambda: (
                    hears_exactly(host, {"s1": {S1}, "s2": {S2}, "l1": {L1}})
                    and hears_exactly(s1, {"host": {HOST}, "s2": {S2}, "l1": {L1}})
                    and hears_exactly(s2, {"host": {HOST}, "s1": {S1}, "l1": {L1}})
                    and hears_exactly(l1, {"host": {HOST}, "s1": {S1}, "s2": {S2}})
                    and all(hears_exactly(c, {"mix": {HOST, S1, S2, L1}}) for c in (l2, rogue))
                ),
            )

            # s2 is sent back to the audience: nobody hears s2 any more; s2 hears the mix.
            await host.move_to_audience("s2")
            await until(
                "the demoted speaker is no longer heard",
                lambda: (
                    hears_exactly(host, {"s1": {S1}, "l1": {L1}})
                    and hears_exactly(s1, {"host": {HOST}, "l1": {L1}})
                    and hears_exactly(l1, {"host": {HOST}, "s1": {S1}})
                    and all(hears_exactly(c, {"mix": {HOST, S1, L1}}) for c in (s2, l2, rogue))
                ),
            )
            assert s2.role == "listener" and s2.grants["publish"] is False

            await host.end_room()
            for client in clients[1:]:
                assert await client.wait_closed() == 4010
                assert client.ended_reason == "ended_by_host"
        finally:
            for client in clients:
                await client.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 80))
    except BaseException:
        sys.stderr.write(live_node.log.read_text()[-4000:])
        raise

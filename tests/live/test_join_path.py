"""What a listener's join costs the room: one offer to them alone, and the current mix packet as
soon as their transport is up (not at the next tick). Real aiortc peers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools

from core.settings import RtcSettings
from tests.live.audio import ToneTrack
from tests.live.harness import RoomHarness


def test_listener_join_offers_to_them_alone_and_gets_the_current_mix_packet(
    rtc: RtcSettings,
) -> None:
    async def run() -> tuple[list[tuple[str, int]], int, list[list[int]]]:
        h = RoomHarness(rtc)
        try:
            await h.join("a", "speaker", publish=ToneTrack(440.0, seed=1))
            await h.join("l1", "listener")
            await h.settle()
            await asyncio.sleep(0.3)  # the mix is running
            offers_before = len(h.offers)
            primed_before = h.room.mixer.primed
            stamps = []
            for name in ("l2", "l3"):
                client = await h.join(name, "listener", record_rtp=True)
                await h.settle()
                await asyncio.sleep(0.2)
                stamps.append([p.timestamp for log in client.rtp.values() for p in log][:5])
            return h.offers[offers_before:], h.room.mixer.primed - primed_before, stamps
        finally:
            await h.close()

    offers, primed, stamps = asyncio.run(run())
    assert offers == [("l2", 1), ("l3", 1)]  # nobody else renegotiated
    assert primed == 2
    for received in stamps:
        # The primed packet, then the next ticks: no duplicate, no hole.
        assert len(received) == 5
        assert [(b - a) % 2**32 for a, b in itertools.pairwise(received)] == [960] * 4

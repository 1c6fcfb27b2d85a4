"""Timestamp rebasing and the fan-out table, fed with packets (no network)."""

from __future__ import annotations

import asyncio
import itertools

from aiortc.rtp import RtpPacket
from hypothesis import given
from hypothesis import strategies as st

from live.forwarding import Forwarder, ForwardTrack, TimestampRebaser, unwrap_delta


def packet(timestamp: int, payload: bytes = b"\x01", ssrc: int = 1) -> RtpPacket:
    return RtpPacket(payload_type=96, timestamp=timestamp % (1 << 32), ssrc=ssrc, payload=payload)


def test_unwrap_delta_handles_wraparound() -> None:
    assert unwrap_delta(100, 1060) == 960
    assert unwrap_delta(2**32 - 480, 480) == 960
    assert unwrap_delta(480, 2**32 - 480) == -960


@given(start=st.integers(0, 2**32 - 1), steps=st.lists(st.integers(1, 48000), max_size=30))
def test_rebaser_keeps_spacing_within_a_source(start: int, steps: list[int]) -> None:
    rebaser = TimestampRebaser()
    timestamps = [start]
    for step in steps:
        timestamps.append(timestamps[-1] + step)
    out = [rebaser.map("a", 7, ts % (1 << 32)) for ts in timestamps]
    assert out[0] == 0
    assert [b - a for a, b in itertools.pairwise(out)] == steps


def test_rebaser_continues_after_a_source_switch_or_new_ssrc() -> None:
    rebaser = TimestampRebaser()
    assert [rebaser.map("a", 1, ts) for ts in (5000, 5960, 6920)] == [0, 960, 1920]
    rebaser.switch_source()
    assert rebaser.map("b", 2, 123) == 2880
    assert rebaser.map("b", 2, 123 + 960) == 3840
    # Same speaker, new SSRC (re-published): one frame after the latest pts.
    assert rebaser.map("b", 3, 99) == 4800
    # A reordered (older) packet keeps its place on the timeline.
    assert rebaser.map("b", 3, 99 + 1920) == 6720
    assert rebaser.map("b", 3, 99 + 960) == 5760


def test_forwarder_fans_out_unchanged_payloads() -> None:
    async def run() -> None:
        forwarder = Forwarder()
        to_b, to_c = ForwardTrack(), ForwardTrack()
        forwarder.connect("a", "b", to_b)
        forwarder.connect("a", "c", to_c)
        assert forwarder.forward("a", packet(1000, b"opus-1")) == 2
        assert forwarder.forward("a", packet(1960, b"")) == 0  # padding only: nothing to send
        assert forwarder.forward("z", packet(1000, b"x")) == 0
        first_b, first_c = await to_b.recv(), await to_c.recv()
        assert bytes(first_b) == bytes(first_c) == b"opus-1"
        assert first_b.pts == 0
        forwarder.disconnect("a", "b")
        assert forwarder.destinations("a") == {"c"}
        assert to_b.source is None
        forwarder.forget("c")
        assert forwarder.destinations("a") == frozenset()

    asyncio.run(run())


def test_forward_track_queue_is_bounded_and_drops_oldest() -> None:
    async def run() -> None:
        track = ForwardTrack(capacity=3)
        for index in range(5):
            track.push("a", packet(index * 960, bytes([index])))
        assert track.dropped == 2
        assert [bytes(await track.recv()) for _ in range(3)] == [b"\x02", b"\x03", b"\x04"]
        track.stop()
        assert track.readyState == "ended"

    asyncio.run(run())

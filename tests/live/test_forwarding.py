"""Timestamp rebasing, segment offsets and the fan-out table: fed with packets, and over real
aiortc peers on loopback for the direct path."""

from __future__ import annotations

import asyncio
import itertools

from aiortc.rtp import RtpPacket
from hypothesis import given
from hypothesis import strategies as st

from core.settings import RtcSettings
from live import aiortc_seam
from live.forwarding import (
    RTP_HEADER,
    Forwarder,
    ForwardTrack,
    TimestampRebaser,
    close_segment,
    open_segment,
    unwrap_delta,
)
from live.rtc import create_peer_connection


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


@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 2**32 - 1),
    st.integers(0, 0xFFFF),
    st.integers(0, 2**32 - 1),
    st.lists(st.integers(1, 5), min_size=1, max_size=20),
)
def test_segment_offsets_keep_the_source_spacing_and_continue_after_it(
    next_seq: int, next_ts: int, seq: int, ts: int, steps: list[int]
) -> None:
    seq_off, ts_off = open_segment(next_seq, next_ts, seq, ts)
    assert ((seq + seq_off) & 0xFFFF, (ts + ts_off) % 2**32) == (next_seq, next_ts)
    high_seq, high_ts = seq, ts
    for step in steps:  # gaps (lost packets, DTX) pass through unchanged
        high_seq, high_ts = (high_seq + step) & 0xFFFF, (high_ts + step * 960) % 2**32
        assert ((high_seq + seq_off) - (seq + seq_off)) & 0xFFFF == (high_seq - seq) & 0xFFFF
    resume_seq, resume_ts = close_segment(high_seq, high_ts, (seq_off, ts_off))
    assert resume_seq == (next_seq + sum(steps) + 1) & 0xFFFF
    assert resume_ts == (next_ts + (sum(steps) + 1) * 960) % 2**32


def test_forwarder_direct_path_keeps_each_destination_line_continuous(rtc: RtcSettings) -> None:
    """Real peers: one forwarded track hears a, a re-published (new SSRC), then c."""

    async def run() -> list[tuple[int, int, int, bytes]]:
        sender, receiver = create_peer_connection(rtc), create_peer_connection(rtc)
        track = ForwardTrack()
        transceiver = sender.addTransceiver(track, direction="sendonly")
        track.bind(transceiver)
        forwarder = Forwarder()
        forwarder.connect("a", "b", track)
        early = RtpPacket(payload_type=111, sequence_number=1, timestamp=0, ssrc=5, payload=b"e")
        assert forwarder.forward("a", early) == 0  # bound, not connected yet: dropped
        assert forwarder.stats.forward_dropped == 1
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        while sender.connectionState != "connected" or receiver.connectionState != "connected":
            await asyncio.sleep(0.01)
        raw: list[bytes] = []
        assert aiortc_seam.tap_datagrams(receiver.getTransceivers()[0], lambda d, t: raw.append(d))

        def send(source: str, ssrc: int, seq: int, ts: int, payload: bytes) -> int:
            rtp = RtpPacket(
                payload_type=111, sequence_number=seq, timestamp=ts, ssrc=ssrc, payload=payload
            )
            return forwarder.forward(source, rtp)

        assert send("a", 5, 65534, 2**32 - 960, b"a1") == 1
        assert send("a", 5, 65535, 0, b"a2") == 1  # both counters wrap
        assert send("a", 5, 1, 1920, b"a4") == 1  # seq 0 lost: the gap passes through
        assert send("a", 6, 900, 77, b"b1") == 1  # re-published: new SSRC, line continues
        forwarder.disconnect("a", "b")
        assert send("a", 6, 901, 77 + 960, b"nobody") == 0
        forwarder.connect("c", "b", track)
        assert send("c", 9, 40, 5000, b"c1") == 1
        assert send("c", 9, 41, 5960, b"c2") == 1
        await asyncio.sleep(0.2)
        await sender.close()
        await receiver.close()
        assert forwarder.stats.forwarded == 6
        out = []
        for data in raw:
            srtp_header = RTP_HEADER.unpack_from(data)
            out.append((srtp_header[2], srtp_header[3], srtp_header[4], data[:2]))
        return out

    received = asyncio.run(run())
    assert len(received) == 6
    assert len({ssrc for _, _, ssrc, _ in received}) == 1  # the track's own SSRC throughout
    seqs = [seq for seq, _, _, _ in received]
    steps = [(b - a) & 0xFFFF for a, b in itertools.pairwise(seqs)]
    assert steps == [1, 2, 1, 1, 1]
    stamps = [ts for _, ts, _, _ in received]
    gaps = [(b - a) % 2**32 for a, b in itertools.pairwise(stamps)]
    assert gaps == [960, 1920, 960, 960, 960]

"""The queue-free send path: raw SRTP outlets, the datagram tap, send statistics.

Real aiortc peers over loopback UDP; what is sent through :class:`SrtpOutlet` must arrive,
authenticated and unchanged, at an unmodified aiortc receiver.
"""

from __future__ import annotations

import asyncio
import itertools
import math

import aiortc
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtpPacket

from core.settings import RtcSettings
from live import aiortc_seam
from live.forwarding import RTP_HEADER, ForwardTrack, PacketQueueTrack
from live.rtc import create_peer_connection
from live.send_stats import BUCKET_BOUNDS, LatencyHistogram
from tests.live.audio import ToneTrack
from tests.live.harness import RoomHarness


async def _connect(sender: RTCPeerConnection, receiver: RTCPeerConnection) -> None:
    await sender.setLocalDescription(await sender.createOffer())
    await receiver.setRemoteDescription(sender.localDescription)
    await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(
        RTCSessionDescription(sdp=receiver.localDescription.sdp, type="answer")
    )
    while sender.connectionState != "connected" or receiver.connectionState != "connected":
        await asyncio.sleep(0.01)


def test_outlet_sends_raw_rtp_an_aiortc_receiver_accepts(rtc: RtcSettings) -> None:
    async def run() -> tuple[list[tuple[int, int, bytes]], int, int, bool]:
        sender, receiver = create_peer_connection(rtc), create_peer_connection(rtc)
        track = PacketQueueTrack()
        transceiver = sender.addTransceiver(track, direction="sendonly")
        aiortc_seam.set_ssrc(transceiver.sender, 0x1234ABCD)
        assert aiortc_seam.srtp_outlet(transceiver) is None  # not connected yet
        seen: list[tuple[int, int, bytes]] = []

        @receiver.on("track")
        def on_track(remote: aiortc.MediaStreamTrack) -> None:
            aiortc_seam.tap_receiver(
                receiver.getTransceivers()[0].receiver,
                lambda p, t: seen.append((p.sequence_number, p.ssrc, bytes(p.payload))),
                pass_through=False,
            )

        await _connect(sender, receiver)
        assert "ssrc:305441741 " in sender.localDescription.sdp
        outlet = aiortc_seam.srtp_outlet(transceiver)
        assert outlet is not None and outlet.connected
        for seq in range(20):
            header = RTP_HEADER.pack(0x80, outlet.payload_type, seq, seq * 960, outlet.ssrc)
            assert outlet.send(header + bytes([0xF8, seq, 1, 2]))
        await asyncio.sleep(0.2)
        await sender.close()
        after_close = outlet.send(b"\x80" * 16)
        await receiver.close()
        return seen, outlet.ssrc, outlet.payload_type, after_close

    seen, ssrc, payload_type, after_close = asyncio.run(run())
    assert ssrc == 0x1234ABCD and payload_type > 95
    assert seen == [(seq, ssrc, bytes([0xF8, seq, 1, 2])) for seq in range(20)]
    assert after_close is False


def test_bound_forward_track_sends_directly_and_datagram_tap_counts(rtc: RtcSettings) -> None:
    async def run() -> tuple[list[bytes], int, int]:
        sender, receiver = create_peer_connection(rtc), create_peer_connection(rtc)
        track = ForwardTrack()
        transceiver = sender.addTransceiver(track, direction="sendonly")
        track.bind(transceiver)
        early = track.push("a", RtpPacket(payload_type=111, timestamp=0, ssrc=9, payload=b"x"))
        assert early is False  # bound but not connected: dropped, never queued
        await _connect(sender, receiver)
        raw: list[bytes] = []
        assert aiortc_seam.tap_datagrams(receiver.getTransceivers()[0], lambda d, t: raw.append(d))
        for index in range(10):
            packet = RtpPacket(payload_type=111, timestamp=5000 + index * 960, ssrc=9)
            packet.payload = bytes([index]) * 8
            assert track.push("a", packet)
        await asyncio.sleep(0.2)
        await sender.close()
        await receiver.close()
        return raw, track.pushed, track.dropped

    raw, pushed, dropped = asyncio.run(run())
    assert (pushed, dropped) == (10, 1)
    assert len(raw) == 10
    headers = [RTP_HEADER.unpack_from(data) for data in raw]
    sequences = [h[2] for h in headers]
    assert [(b - a) % 65536 for a, b in itertools.pairwise(sequences)] == [1] * 9
    timestamps = [h[3] for h in headers]
    assert {(b - a) % 2**32 for a, b in itertools.pairwise(timestamps)} == {960}


def test_room_counts_sent_packets_and_server_added_latency(rtc: RtcSettings) -> None:
    async def run() -> dict[str, object]:
        h = RoomHarness(rtc)
        try:
            await h.join("a", "speaker", publish=ToneTrack(440.0, seed=1))
            await h.join("b", "speaker", publish=ToneTrack(660.0, seed=2))
            await h.join("l", "listener", record_rtp=True)
            await h.settle()
            await asyncio.sleep(1.0)
            stats = h.room.send_stats
            mix_timestamps = {p.timestamp for log in h.clients["l"].rtp.values() for p in log}
            return {
                "forwarded": stats.forwarded,
                "mix_sent": stats.mix_sent,
                "fwd_p50": stats.forward_latency.percentile(50),
                "mix_p50": stats.mix_latency.percentile(50),
                "mix_received": len(mix_timestamps),
            }
        finally:
            await h.close()

    result = asyncio.run(run())
    assert result["forwarded"] > 40  # a→b and b→a, sent inline
    assert result["mix_sent"] > 20
    assert result["mix_received"] > 20  # the listener really got them
    assert isinstance(result["fwd_p50"], float) and result["fwd_p50"] < 0.05
    assert isinstance(result["mix_p50"], float) and 0.0 < result["mix_p50"] < 0.5


def test_latency_histogram_percentiles_and_merge() -> None:
    histogram = LatencyHistogram()
    assert math.isnan(histogram.percentile(50))
    for ms in range(1, 101):
        histogram.observe(ms / 1000)
    p50, p99 = histogram.percentile(50), histogram.percentile(99)
    assert 0.050 <= p50 <= 0.050 * 1.13
    assert 0.099 <= p99 <= 0.099 * 1.13
    histogram.observe(100.0)  # beyond the last bound: the open bucket
    assert histogram.percentile(100) == BUCKET_BOUNDS[-1]
    both = histogram.merged(LatencyHistogram.from_dict(histogram.to_dict()))
    assert both.total == 202 and both.percentile(50) == p50


def test_playout_buffer_catches_up_after_a_burst() -> None:
    from live.mixer import PlayoutBuffer

    buffer = PlayoutBuffer(prefetch=2, capacity=8, slack=2)
    for index in range(8):  # a burst: eight frames at once
        buffer.push(1, index * 960, bytes([index]), arrival=float(index))
    played = [buffer.pop() for _ in range(6)]
    # Deeper than prefetch + slack: one stale frame skipped per tick, then steady playout.
    assert played == [b"\x00", b"\x02", b"\x04", b"\x05", b"\x06", b"\x07"]
    assert buffer.skipped == 2 and buffer.last_arrival == 7.0

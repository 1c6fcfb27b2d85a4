"""The private aiortc/aioice names live/ relies on: fail loudly the day one of them moves."""

from __future__ import annotations

import asyncio
import itertools
import time

import aioice.ice
import aiortc
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from core.errors import MediaSeamMoved
from core.settings import RtcSettings
from live import aiortc_seam
from live.forwarding import PacketQueueTrack
from live.rtc import create_peer_connection
from tests.live.audio import ToneTrack


def test_seam_is_in_place_for_the_pinned_aiortc() -> None:
    assert aiortc.__version__ == aiortc_seam.AIORTC_VERSION
    aiortc_seam.verify_seam()


def test_seam_fails_loudly_when_aiortc_version_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc, "__version__", "1.17.0")
    with pytest.raises(MediaSeamMoved, match="1.17.0") as moved:
        aiortc_seam.verify_seam()
    assert moved.value.code == "aiortc_seam_moved"


@pytest.mark.parametrize(
    ("owner", "name", "message"),
    [
        (RTCRtpReceiver, "_handle_rtp_packet", "_handle_rtp_packet"),
        (RTCRtpReceiver, "_handle_rtcp_packet", "_handle_rtcp_packet"),
        (RTCRtpSender, "_next_encoded_frame", "pre-encoded"),
        (aioice.ice, "get_host_addresses", "get_host_addresses"),
    ],
)
def test_seam_fails_loudly_when_a_private_name_moves(
    monkeypatch: pytest.MonkeyPatch, owner: object, name: str, message: str
) -> None:
    monkeypatch.delattr(owner, name)
    with pytest.raises(MediaSeamMoved, match=message):
        aiortc_seam.verify_seam()


def test_host_addresses_are_the_configured_ones() -> None:
    aiortc_seam.install_host_addresses(["127.0.0.1", "::1"])
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]

    async def gather() -> set[str]:
        connection = aioice.Connection(ice_controlling=True, use_ipv6=False)
        await connection.gather_candidates()
        hosts = {c.host for c in connection.local_candidates}
        await connection.close()
        return hosts

    assert asyncio.run(gather()) == {"127.0.0.1"}
    aiortc_seam.install_host_addresses([])
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)


async def _connect(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


@pytest.mark.parametrize("pass_through", [False, True])
def test_tap_sees_packets_before_the_jitter_buffer(rtc: RtcSettings, pass_through: bool) -> None:
    """The tap gets every packet; without pass-through aiortc decodes nothing."""

    async def run() -> tuple[int, int]:
        sender = create_peer_connection(rtc)
        receiver = create_peer_connection(rtc)
        sender.addTrack(ToneTrack(440.0))
        tapped: list[tuple[RtpPacket, float]] = []
        frames = 0

        @receiver.on("track")
        def on_track(track: aiortc.MediaStreamTrack) -> None:
            transceiver = receiver.getTransceivers()[0]
            aiortc_seam.tap_receiver(
                transceiver.receiver, lambda p, t: tapped.append((p, t)), pass_through=pass_through
            )
            assert aiortc_seam.is_tapped(transceiver.receiver)

            async def consume() -> None:
                nonlocal frames
                try:
                    while True:
                        await track.recv()
                        frames += 1
                except MediaStreamError:
                    pass

            asyncio.ensure_future(consume())

        await _connect(sender, receiver)
        await asyncio.sleep(1.0)
        count = len(tapped)
        assert all(packet.payload for packet, _ in tapped)
        assert [t for _, t in tapped] == sorted(t for _, t in tapped)
        await sender.close()
        await receiver.close()
        return count, frames

    count, frames = asyncio.run(run())
    assert count > 30
    if pass_through:
        assert frames > 20
    else:
        assert frames == 0


def test_pre_encoded_packets_are_sent_unchanged(rtc: RtcSettings) -> None:
    payloads = [bytes([0xF8, i, 255 - i, 7]) for i in range(40)]

    async def run() -> list[tuple[bytes, int]]:
        sender = create_peer_connection(rtc)
        receiver = create_peer_connection(rtc)
        track = PacketQueueTrack(capacity=64)
        transceiver = sender.addTransceiver(track, direction="sendonly")
        aiortc_seam.set_stream_id(transceiver.sender, "speaker-42")
        seen: list[tuple[bytes, int]] = []

        @receiver.on("track")
        def on_track(remote: aiortc.MediaStreamTrack) -> None:
            aiortc_seam.tap_receiver(
                receiver.getTransceivers()[0].receiver,
                lambda p, t: seen.append((bytes(p.payload), p.timestamp)),
                pass_through=False,
            )

        await sender.setLocalDescription(await sender.createOffer())
        assert "a=msid:speaker-42 " in sender.localDescription.sdp
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(
            RTCSessionDescription(sdp=receiver.localDescription.sdp, type="answer")
        )
        while sender.connectionState != "connected":
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        for index, payload in enumerate(payloads):
            track.offer(aiortc_seam.opus_packet(payload, index * 960))
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.3)
        await sender.close()
        await receiver.close()
        return seen

    seen = asyncio.run(run())
    assert [payload for payload, _ in seen] == payloads
    assert {b - a for (_, a), (_, b) in itertools.pairwise(seen)} == {960}


def test_ntp_time_is_converted_to_unix_seconds() -> None:
    assert aiortc_seam.ntp_to_unix(2_208_988_800 << 32) == 0.0
    assert aiortc_seam.ntp_to_unix(((2_208_988_800 + 1_700_000_000) << 32) | (1 << 31)) == (
        1_700_000_000.5
    )


def test_sender_report_tap_sees_ntp_and_rtp_time_of_the_remote_sender(rtc: RtcSettings) -> None:
    """Every RTCP SR reaches the tap with the sender's clock pair; aiortc still handles it."""

    async def run() -> tuple[list[tuple[int, float, int, float]], set[tuple[int, int]], bool]:
        sender = create_peer_connection(rtc)
        receiver = create_peer_connection(rtc)
        sender.addTrack(ToneTrack(440.0))
        reports: list[tuple[int, float, int, float]] = []
        rtp: set[tuple[int, int]] = set()

        @receiver.on("track")
        def on_track(track: aiortc.MediaStreamTrack) -> None:
            mic = receiver.getTransceivers()[0].receiver
            aiortc_seam.tap_receiver(
                mic, lambda p, t: rtp.add((p.ssrc, p.timestamp)), pass_through=False
            )
            aiortc_seam.tap_sender_reports(mic, lambda *report: reports.append(report))

        await _connect(sender, receiver)
        deadline = time.monotonic() + 6.0
        while len(reports) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        stats = await receiver.getTransceivers()[0].receiver.getStats()
        handled = any(s.type == "remote-outbound-rtp" for s in stats.values())
        await sender.close()
        await receiver.close()
        return reports, rtp, handled

    reports, rtp, handled = asyncio.run(run())
    wall_minus_monotonic = time.time() - time.monotonic()
    assert len(reports) >= 2, reports
    assert handled  # the original handler still ran (aiortc's own SR bookkeeping)
    for ssrc, ntp_unix, rtp_timestamp, arrival in reports:
        # The SR names the timestamp of a packet the sender had sent: the tap saw it.
        assert (ssrc, rtp_timestamp) in rtp
        # Same machine, same wall clock: sent (NTP) shortly before it arrived (monotonic).
        assert -0.05 < (arrival + wall_minus_monotonic) - ntp_unix < 0.5
    arrivals = [report[3] for report in reports]
    assert arrivals == sorted(arrivals)
    # Both clocks of consecutive reports advance together (48 kHz RTP, wall-clock NTP).
    (_, ntp_a, rtp_a, _), (_, ntp_b, rtp_b, _) = reports[0], reports[1]
    assert ntp_b > ntp_a and abs((rtp_b - rtp_a) / 48000 - (ntp_b - ntp_a)) < 0.1

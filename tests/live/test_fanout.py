"""The mix's fan-out: pre-bound direct routes (the seam) and :class:`live.fanout.Fanout`.

Real aiortc peers over loopback UDP: what :func:`send_direct` protects in place and sends on the
raw socket must arrive, authenticated and unchanged, at unmodified aiortc receivers.
"""

from __future__ import annotations

import asyncio
import socket
from asyncio import selector_events
from typing import Any

import aiortc
import pylibsrtp
import pytest
from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription

from core.errors import MediaSeamMoved
from core.settings import RtcSettings
from live import aiortc_seam
from live.fanout import Fanout
from live.forwarding import PacketQueueTrack
from live.rtc import create_peer_connection

Seen = list[tuple[int, int, int, bytes]]
_SELECTOR_DATAGRAM_TRANSPORT: Any = vars(selector_events)["_SelectorDatagramTransport"]


async def _pair(
    rtc: RtcSettings, ssrc: int
) -> tuple[RTCPeerConnection, RTCPeerConnection, PacketQueueTrack, RTCRtpTransceiver, Seen]:
    """A connected sender → receiver pair; the receiver records (seq, ts, ssrc, payload)."""
    sender, receiver = create_peer_connection(rtc), create_peer_connection(rtc)
    track = PacketQueueTrack()
    transceiver = sender.addTransceiver(track, direction="sendonly")
    aiortc_seam.set_ssrc(transceiver.sender, ssrc)
    track.bind(transceiver)
    seen: Seen = []

    @receiver.on("track")
    def on_track(remote: aiortc.MediaStreamTrack) -> None:
        aiortc_seam.tap_receiver(
            receiver.getTransceivers()[0].receiver,
            lambda p, t: seen.append((p.sequence_number, p.timestamp, p.ssrc, bytes(p.payload))),
            pass_through=False,
        )

    await sender.setLocalDescription(await sender.createOffer())
    await receiver.setRemoteDescription(sender.localDescription)
    await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(
        RTCSessionDescription(sdp=receiver.localDescription.sdp, type="answer")
    )
    while sender.connectionState != "connected" or receiver.connectionState != "connected":
        await asyncio.sleep(0.01)
    return sender, receiver, track, transceiver, seen


def test_direct_route_sends_on_the_raw_socket_and_fails_once_closed(rtc: RtcSettings) -> None:
    async def run() -> tuple[Seen, Any, list[aiortc_seam.SrtpOutlet], object]:
        sender, receiver, _, transceiver, seen = await _pair(rtc, 0x0BADCAFE)
        outlet = aiortc_seam.srtp_outlet(transceiver)
        assert outlet is not None
        route = outlet.direct_route()
        assert route is not None
        for seq in range(3):
            rtp = bytes([0x80, outlet.payload_type, 0, seq, 0, 0, 0, 9]) + b"\x0b\xad\xca\xfe"
            assert aiortc_seam.send_direct([route], rtp + b"mix") == []
        await asyncio.sleep(0.2)
        await sender.close()
        failed = aiortc_seam.send_direct([route], rtp + b"late")  # DTLS closed
        after = outlet.direct_route()
        await receiver.close()
        return seen, route, failed, after

    seen, route, failed, after = asyncio.run(run())
    # asyncio's transport is bypassed: the route sends on the UDP socket itself.
    assert isinstance(route.sendto.__self__, socket.socket)
    assert seen == [(seq, 9, 0x0BADCAFE, b"mix") for seq in range(3)]
    assert failed == [route.outlet] and after is None


def test_a_full_socket_buffer_falls_back_to_the_transport_queue(rtc: RtcSettings) -> None:
    def would_block(data: object, address: object) -> None:
        raise BlockingIOError  # what a full non-blocking UDP socket raises

    async def run() -> tuple[Seen, list[aiortc_seam.SrtpOutlet]]:
        sender, receiver, _, transceiver, seen = await _pair(rtc, 77)
        outlet = aiortc_seam.srtp_outlet(transceiver)
        assert outlet is not None
        route = outlet.direct_route()
        assert route is not None
        blocked = route._replace(sendto=would_block)
        failed = []
        for seq in range(5):
            rtp = bytes([0x80, outlet.payload_type, 0, seq, 0, 0, 3, seq]) + b"\x00\x00\x00\x4d"
            failed += aiortc_seam.send_direct([blocked], rtp + bytes([seq]))
        await asyncio.sleep(0.2)
        await sender.close()
        await receiver.close()
        return seen, failed

    seen, failed = asyncio.run(run())
    assert failed == []
    assert seen == [(seq, 768 + seq, 77, bytes([seq])) for seq in range(5)]


def test_fanout_sends_one_stream_to_every_connected_listener(rtc: RtcSettings) -> None:
    async def run() -> tuple[list[tuple[int, int]], list[Seen], int, int, bool]:
        pairs = [await _pair(rtc, 4242) for _ in range(3)]
        fanout = Fanout()
        unbound = PacketQueueTrack()
        connecting = PacketQueueTrack()
        lonely = create_peer_connection(rtc)
        connecting.bind(lonely.addTransceiver(connecting, direction="sendonly"))
        for track in [*(pair[2] for pair in pairs), unbound, connecting]:
            fanout.add(track)
        assert len(fanout) == 5 and unbound in fanout and fanout.unbound() == [unbound]
        counts = []
        for tick in range(4):
            counts.append(fanout.send(bytes([0xF8, tick]), 100 + tick, 960 * tick))
        routed = fanout.routed
        await pairs[0][0].close()  # one listener's connection ends without a detach
        counts.append(fanout.send(b"\xf8\x09", 104, 960 * 4))
        counts.append(fanout.send(b"\xf8\x0a", 105, 960 * 5))
        fanout.discard(pairs[0][2])
        fanout.discard(connecting)
        counts.append(fanout.send(b"\xf8\x0b", 106, 960 * 6))
        await asyncio.sleep(0.2)
        for sender, receiver, *_ in pairs:
            await sender.close()
            await receiver.close()
        await lonely.close()
        return counts, [pair[4] for pair in pairs], routed, fanout.routed, bool(fanout)

    counts, seen, routed, routed_after, non_empty = asyncio.run(run())
    # 3 connected listeners sent to; the bound one that never connects counts as dropped.
    assert counts[:4] == [(3, 1)] * 4 and routed == 3
    # A closed connection fails its route (dropped), then waits un-routed (still dropped).
    assert counts[4:] == [(2, 2), (2, 2), (2, 0)]
    assert routed_after == 2 and non_empty
    expected = [(100 + tick, 960 * tick, 4242, bytes([0xF8, tick])) for tick in range(4)]
    assert seen[0] == expected
    tail = [
        (104, 3840, 4242, b"\xf8\x09"),
        (105, 4800, 4242, b"\xf8\x0a"),
        (106, 5760, 4242, b"\xf8\x0b"),
    ]
    assert seen[1] == seen[2] == expected + tail


class _MovedSession:
    """A pylibsrtp Session whose internals are no longer the ones the seam uses."""

    def protect(self, packet: bytes) -> bytes:
        return packet


@pytest.mark.parametrize(
    ("owner", "name", "value", "message"),
    [
        (pylibsrtp, "Session", _MovedSession, "pylibsrtp Session"),
        (_SELECTOR_DATAGRAM_TRANSPORT, "sendto", None, "_sock"),
    ],
)
def test_seam_fails_loudly_when_a_direct_route_internal_moves(
    monkeypatch: pytest.MonkeyPatch, owner: object, name: str, value: object, message: str
) -> None:
    if value is None:
        monkeypatch.delattr(owner, name)
    else:
        monkeypatch.setattr(owner, name, value)
    with pytest.raises(MediaSeamMoved, match=message):
        aiortc_seam.verify_seam()

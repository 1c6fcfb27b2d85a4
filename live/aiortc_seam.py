"""The one place that reaches into aiortc's and aioice's private internals.

aiortc is pinned to exactly :data:`AIORTC_VERSION` (pyproject.toml). Everything below relies on
names that are not part of aiortc's public API; :func:`verify_seam` checks each of them and
``tests/live/test_aiortc_seam.py`` fails loudly the day one moves:

- ``aioice.ice.get_host_addresses`` is replaced so ICE announces the configured host addresses
  (aioice always leaves 127.0.0.1 out, which tests and single-machine demos need).
- ``RTCRtpReceiver._handle_rtp_packet(packet, arrival_time_ms)`` is shadowed per receiver
  instance to see every RTP packet *before* aiortc's jitter buffer (80–280 ms) and decoder.
- ``RTCRtpReceiver._handle_rtcp_packet(packet)`` is shadowed per receiver instance to see the
  RTCP sender reports routed to it (:func:`tap_sender_reports`): the SR's RTP timestamp is seen
  nowhere else (``getStats()`` keeps only its NTP time). ``RTCDtlsTransport`` looks the method
  up per packet (``recipient._handle_rtcp_packet(``).
- ``RTCRtpSender`` packs an object that is not an ``av.Frame`` through ``encoder.pack``
  (``bytes(packet)`` + ``packet.pts``/``packet.time_base``) instead of encoding it: that is how
  pre-encoded Opus is sent without a decode/re-encode.
- ``RTCRtpSender._stream_id`` becomes the ``a=msid`` stream id: it names the speaker a
  forwarded track carries; ``RTCRtpSender._ssrc`` becomes its ``a=ssrc`` (:func:`set_ssrc`).
- :class:`SrtpOutlet` sends ready-made RTP on a connected transceiver's transport, bypassing the
  sender's coroutine: ``RTCDtlsTransport._state``/``_tx_srtp`` (the SRTP session),
  ``RTCIceTransport._connection`` (the aioice ``Connection``), its ``_nominated[1]`` candidate
  pair (``protocol.transport`` + ``remote_addr``) and ``RTCRtpTransceiver._codecs`` (the
  negotiated payload type). One protect and one ``sendto`` per packet, nothing queued.
- :meth:`SrtpOutlet.direct_route` pre-binds that for :func:`send_direct` (a room's fan-out
  loop), taking the UDP socket out of asyncio's selector transport (``_sock``): one
  ``socket.sendto`` per packet instead of ``DatagramTransport.sendto``'s checks, with the
  transport as the fallback when the socket would block. It protects in place through
  pylibsrtp's cffi binding (``Session._srtp``/``_cdata``/``_buffer``, ``lib.srtp_protect``),
  skipping ``Session.protect``'s per-call allocation and copies (about half its cost).
- :func:`tap_datagrams` (load clients only) replaces the nominated pair's
  ``protocol.datagram_received`` to see SRTP packets before aiortc unprotects them.
"""

from __future__ import annotations

import asyncio.selector_events
import fractions
import functools
import inspect
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, NamedTuple

import aioice.ice
import aiortc
import av
import pylibsrtp
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcdtlstransport import State as _DtlsState
from aiortc.rtp import RtcpSrPacket, RtpPacket
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

from core.errors import MediaSeamMoved

__all__ = [
    "AIORTC_VERSION",
    "OPUS_TIME_BASE",
    "DatagramTap",
    "DirectRoute",
    "ForwardEntry",
    "RtpTap",
    "SenderReportTap",
    "SrtpOutlet",
    "install_host_addresses",
    "ntp_to_unix",
    "opus_packet",
    "send_direct",
    "send_forwarded",
    "set_ssrc",
    "set_stream_id",
    "srtp_outlet",
    "tap_datagrams",
    "tap_receiver",
    "tap_sender_reports",
    "verify_seam",
]

AIORTC_VERSION = "1.16.0"
OPUS_TIME_BASE = fractions.Fraction(1, 48000)

#: Called with each RTP packet and its arrival time (``time.monotonic()`` seconds).
RtpTap = Callable[[RtpPacket, float], None]

_ORIGINAL_GET_HOST_ADDRESSES: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses
_TAP_ATTRIBUTE = "_handle_rtp_packet"
_RTCP_TAP_ATTRIBUTE = "_handle_rtcp_packet"
#: Seconds from the NTP epoch (1900-01-01) to the unix epoch (1970-01-01).
NTP_UNIX_OFFSET = 2_208_988_800

#: Called with each RTCP sender report as ``(ssrc, ntp_unix, rtp_timestamp, arrival)``: the
#: sender's wall clock (unix seconds) at its RTP timestamp, and the server's ``time.monotonic()``.
SenderReportTap = Callable[[int, float, int, float], None]


def verify_seam() -> None:
    """Raise :class:`MediaSeamMoved` unless every private name this module uses is in place."""
    problems: list[str] = []
    if aiortc.__version__ != AIORTC_VERSION:
        problems.append(
            f"aiortc is {aiortc.__version__}, the seam was written for {AIORTC_VERSION}"
        )
    if not callable(getattr(aioice.ice, "get_host_addresses", None)):
        problems.append("aioice.ice.get_host_addresses is gone")
    elif "get_host_addresses(" not in inspect.getsource(aioice.ice.Connection.gather_candidates):
        problems.append(
            "aioice.ice.Connection.gather_candidates no longer calls get_host_addresses"
        )
    handler = getattr(RTCRtpReceiver, _TAP_ATTRIBUTE, None)
    if handler is None or list(inspect.signature(handler).parameters) != [
        "self",
        "packet",
        "arrival_time_ms",
    ]:
        problems.append("RTCRtpReceiver._handle_rtp_packet(packet, arrival_time_ms) moved")
    from aiortc import rtcdtlstransport

    if "receiver._handle_rtp_packet(" not in inspect.getsource(rtcdtlstransport.RTCDtlsTransport):
        problems.append("RTCDtlsTransport no longer calls receiver._handle_rtp_packet")
    rtcp_handler = getattr(RTCRtpReceiver, _RTCP_TAP_ATTRIBUTE, None)
    if rtcp_handler is None or list(inspect.signature(rtcp_handler).parameters) != [
        "self",
        "packet",
    ]:
        problems.append("RTCRtpReceiver._handle_rtcp_packet(packet) moved")
    elif "isinstance(packet, RtcpSrPacket)" not in inspect.getsource(rtcp_handler):
        problems.append("RTCRtpReceiver._handle_rtcp_packet no longer handles sender reports")
    if "recipient._handle_rtcp_packet(packet)" not in inspect.getsource(
        rtcdtlstransport.RTCDtlsTransport
    ):
        problems.append("RTCDtlsTransport no longer calls recipient._handle_rtcp_packet")
    next_frame = getattr(RTCRtpSender, "_next_encoded_frame", None)
    if next_frame is None or "self.__encoder.pack(data)" not in inspect.getsource(next_frame):
        problems.append("RTCRtpSender no longer packs pre-encoded packets")
    from aiortc import rtcpeerconnection

    source = inspect.getsource(rtcpeerconnection.create_media_description_for_transceiver)
    if "sender._stream_id" not in source:
        problems.append("the a=msid line no longer comes from RTCRtpSender._stream_id")
    if "ssrc=transceiver.sender._ssrc" not in source:
        problems.append("the a=ssrc line no longer comes from RTCRtpSender._ssrc")
    problems += _outlet_problems()
    if problems:
        raise MediaSeamMoved(
            "aiortc seam moved: "
            + "; ".join(problems)
            + ". Reinstall aiortc=="
            + AIORTC_VERSION
            + " or update live/aiortc_seam.py."
        )


@functools.cache
def _verified_once() -> None:
    verify_seam()


def install_host_addresses(addresses: Sequence[str]) -> None:
    """Make every ICE agent created from now on announce exactly ``addresses``.

    An empty sequence restores aioice's own discovery (all non-loopback interfaces). The
    replacement is process-wide, so call it once per entry point before any peer connection.
    """
    _verified_once()
    if not addresses:
        aioice.ice.get_host_addresses = _ORIGINAL_GET_HOST_ADDRESSES  # type: ignore[assignment]
        return
    configured = tuple(addresses)

    def configured_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [address for address in configured if (use_ipv6 if ":" in address else use_ipv4)]

    aioice.ice.get_host_addresses = configured_host_addresses


def tap_receiver(receiver: RTCRtpReceiver, on_packet: RtpTap, *, pass_through: bool) -> None:
    """Call ``on_packet(packet, arrival)`` for every RTP packet ``receiver`` is routed.

    With ``pass_through=False`` aiortc never sees the packet (no jitter buffer, no decoder, no
    frames on the remote track): the server uses that, since it forwards and mixes itself.
    With ``pass_through=True`` the packet then continues into aiortc's normal path (clients).
    """
    _verified_once()
    original: Callable[[RtpPacket, int], Awaitable[None]] = getattr(receiver, _TAP_ATTRIBUTE)
    monotonic = time.monotonic

    if pass_through:

        async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
            on_packet(packet, monotonic())
            await original(packet, arrival_time_ms)

    else:

        async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
            on_packet(packet, monotonic())

    # An instance attribute shadows the method: RTCDtlsTransport looks it up per packet.
    setattr(receiver, _TAP_ATTRIBUTE, handle)


def ntp_to_unix(ntp: int) -> float:
    """A 64-bit NTP timestamp (32.32 fixed point since 1900) as unix seconds."""
    return (ntp >> 32) - NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / 4_294_967_296


def tap_sender_reports(receiver: RTCRtpReceiver, on_report: SenderReportTap) -> None:
    """Call ``on_report(ssrc, ntp_unix, rtp_timestamp, arrival)`` for every RTCP sender report
    routed to ``receiver``, then let aiortc handle the packet as usual (its receiver reports
    echo the SR's time back to the sender). An SR with NTP time 0 (aiortc sends those before
    its first RTP packet: no timestamp pair yet) is not reported.
    """
    _verified_once()
    original: Callable[[Any], Awaitable[None]] = getattr(receiver, _RTCP_TAP_ATTRIBUTE)
    monotonic = time.monotonic

    async def handle(packet: Any) -> None:
        try:
            if isinstance(packet, RtcpSrPacket) and packet.sender_info.ntp_timestamp:
                info = packet.sender_info
                ntp_unix = ntp_to_unix(info.ntp_timestamp)
                on_report(packet.ssrc, ntp_unix, info.rtp_timestamp, monotonic())
        finally:
            await original(packet)

    # An instance attribute shadows the method: RTCDtlsTransport looks it up per packet.
    setattr(receiver, _RTCP_TAP_ATTRIBUTE, handle)


def is_tapped(receiver: RTCRtpReceiver) -> bool:
    """Whether :func:`tap_receiver` has been applied to ``receiver``."""
    return _TAP_ATTRIBUTE in vars(receiver)


def opus_packet(payload: bytes, pts: int) -> av.Packet[Any]:
    """A pre-encoded Opus packet that an ``RTCRtpSender`` sends as-is at RTP time ``pts``."""
    packet = av.Packet(payload)
    packet.pts = pts
    packet.time_base = OPUS_TIME_BASE
    return packet


def set_stream_id(sender: RTCRtpSender, stream_id: str) -> None:
    """Set the ``a=msid`` stream id the next offer announces for ``sender``."""
    sender_any: Any = sender
    sender_any._stream_id = stream_id


def set_ssrc(sender: RTCRtpSender, ssrc: int) -> None:
    """Make ``sender`` announce and use ``ssrc`` (call before its first offer).

    The room mix gives every listener's sender the same SSRC, so one serialised RTP packet is
    valid for all of them (an SSRC only has to be unique within one peer connection).
    """
    sender_any: Any = sender
    sender_any._ssrc = ssrc


def _outlet_problems() -> list[str]:
    from aiortc import rtcdtlstransport, rtcicetransport, rtcpeerconnection

    problems: list[str] = []
    dtls_source = inspect.getsource(rtcdtlstransport.RTCDtlsTransport)
    if "self._tx_srtp = Session(" not in dtls_source or "self._state = state" not in dtls_source:
        problems.append("RTCDtlsTransport._tx_srtp / _state moved")
    if "self._connection = " not in inspect.getsource(rtcicetransport.RTCIceGatherer):
        problems.append("RTCIceGatherer._connection moved")
    if "self._nominated" not in inspect.getsource(aioice.ice.Connection):
        problems.append("aioice Connection._nominated moved")
    if "self.receiver.data_received(" not in inspect.getsource(
        aioice.ice.StunProtocol.datagram_received
    ):
        problems.append("aioice StunProtocol.datagram_received no longer hands data on")
    if "transceiver._codecs" not in inspect.getsource(rtcpeerconnection):
        problems.append("RTCRtpTransceiver._codecs moved")
    transport_class = getattr(asyncio.selector_events, "_SelectorDatagramTransport", None)
    sendto = getattr(transport_class, "sendto", None)
    if sendto is None or "self._sock.sendto(data, addr)" not in inspect.getsource(sendto):
        problems.append("asyncio's selector datagram transport no longer sends on _sock")
    session_source = inspect.getsource(pylibsrtp.Session)
    if (
        'self._cdata = ffi.new("char[]", 1500)' not in session_source
        or "self._buffer = ffi.buffer(self._cdata)" not in session_source
        or "func(self._srtp[0], self._cdata, len_p)" not in session_source
        or not callable(getattr(_srtp_lib, "srtp_protect", None))
    ):
        problems.append("pylibsrtp Session._srtp / _cdata / _buffer moved")
    return problems


class SrtpOutlet:
    """Sends ready-made RTP packets on one connected transceiver: protect, ``sendto``, done.

    Synchronous and queue-free, so a room can fan a packet out to every subscriber in one loop.
    :meth:`send` returns False (and sends nothing) once the transport is no longer connected.
    """

    __slots__ = ("_dtls", "_nominated", "_protect", "payload_type", "ssrc")

    def __init__(self, dtls: Any, nominated: dict[int, Any], payload_type: int, ssrc: int) -> None:
        self._dtls = dtls
        self._nominated = nominated
        self._protect: Callable[[bytes], bytes] = dtls._tx_srtp.protect
        self.payload_type = payload_type
        self.ssrc = ssrc

    @property
    def connected(self) -> bool:
        """Whether the transport can still carry packets."""
        return self._dtls._state is _DtlsState.CONNECTED and 1 in self._nominated

    def send(self, rtp: bytes) -> bool:
        """Protect and send one RTP packet (header and payload) now."""
        if self._dtls._state is not _DtlsState.CONNECTED:
            return False
        pair = self._nominated.get(1)
        if pair is None or pair.protocol.transport is None:
            return False
        pair.protocol.transport.sendto(self._protect(rtp), pair.remote_addr)
        return True

    def direct_route(self) -> DirectRoute | None:
        """This outlet pre-bound for :func:`send_direct`; ``None`` while not connected.

        ``sendto`` is the UDP socket's own method when the pair's transport is asyncio's
        selector datagram transport (unconnected); any other transport (a TURN relay, uvloop)
        is used through its own ``sendto``.
        """
        if self._dtls._state is not _DtlsState.CONNECTED:
            return None
        pair = self._nominated.get(1)
        if pair is None:
            return None
        transport = pair.protocol.transport
        if transport is None or transport.is_closing():
            return None
        sock = getattr(transport, "_sock", None)
        if isinstance(sock, socket.socket) and transport.get_extra_info("peername") is None:
            sendto: Callable[[bytes, Any], object] = sock.sendto
        else:
            sendto = transport.sendto
        session = self._dtls._tx_srtp
        return DirectRoute(
            self._dtls,
            session._srtp[0],
            session._cdata,
            session._buffer,
            memoryview(session._buffer),
            _srtp_ffi.new("int *"),
            sendto,
            pair.remote_addr,
            self,
        )

    def _send_protected(self, srtp: bytes) -> bool:
        pair = self._nominated.get(1)
        if pair is None or pair.protocol.transport is None:
            return False
        pair.protocol.transport.sendto(srtp, pair.remote_addr)
        return True


class DirectRoute(NamedTuple):
    """One destination of :func:`send_direct`, bound once (:meth:`SrtpOutlet.direct_route`)."""

    dtls: Any
    """The DTLS transport; its state is checked per packet (one attribute read)."""
    srtp: Any
    """The libsrtp session (``srtp_t``) of the transport's sending side."""
    cdata: Any
    """The session's own 1500-byte packet buffer (cffi ``char[]``), protected in place."""
    buffer: Any
    """``ffi.buffer`` over :attr:`cdata`, to copy the packet in."""
    view: memoryview
    """A memoryview over :attr:`cdata`, to hand the protected packet to ``sendto`` uncopied."""
    length: Any
    """An ``int *`` for libsrtp's in/out packet length."""
    sendto: Callable[[Any, Any], object]
    """The UDP socket's ``sendto`` (or the transport's, see :meth:`SrtpOutlet.direct_route`)."""
    address: Any
    """The nominated pair's remote address."""
    outlet: SrtpOutlet
    """The outlet it came from: the slow path, and how failures are reported."""


def send_direct(routes: Iterable[DirectRoute], rtp: bytes) -> list[SrtpOutlet]:
    """Protect and send one RTP packet on every route now; the outlets that could not take it.

    A route fails once its DTLS transport is no longer connected, libsrtp refuses the packet
    or the socket is gone (the caller re-routes or drops it). A full socket buffer is not a
    failure: that packet goes through asyncio's transport, which queues a copy until the
    socket is writable. Each session's buffer is reused by its next protect, so the packet
    must leave (or be copied) before this returns: it does, the loop never yields.
    """
    connected = _DtlsState.CONNECTED
    protect = _srtp_lib.srtp_protect
    size = len(rtp)
    failed: list[SrtpOutlet] = []
    # The hot loop of the room mix: locals only, no Python call but sendto.
    for dtls, srtp, cdata, buffer, view, length, sendto, address, outlet in routes:
        if dtls._state is not connected:
            failed.append(outlet)
            continue
        length[0] = size
        buffer[0:size] = rtp
        if protect(srtp, cdata, length):
            failed.append(outlet)
            continue
        srtp_packet = view[: length[0]]
        try:
            sendto(srtp_packet, address)
        except (BlockingIOError, InterruptedError):
            if not outlet._send_protected(bytes(srtp_packet)):
                failed.append(outlet)
        except OSError:
            failed.append(outlet)
    return failed


#: A plain RTP header (version 2, no CSRC, no extension): byte 0, marker|PT, seq, ts, SSRC.
_RTP_HEADER = struct.Struct("!BBHII")

#: One destination of :func:`send_forwarded`: its route, then the header fields it rewrites —
#: payload type, SSRC, and the sequence and timestamp offsets (mod 2^16 / 2^32) of its line.
ForwardEntry = tuple[DirectRoute, int, int, int, int]


def send_forwarded(
    entries: Iterable[ForwardEntry], payload: bytes, marker: int, sequence: int, timestamp: int
) -> list[SrtpOutlet]:
    """Send one forwarded packet (a speaker's ``payload`` with its ``sequence``/``timestamp``)
    to every destination now, each under its own header; the outlets that could not take it.

    The header is packed straight into each session's buffer after the payload is copied in,
    so nothing is allocated per destination; failures as in :func:`send_direct`.
    """
    connected = _DtlsState.CONNECTED
    protect = _srtp_lib.srtp_protect
    pack_into = _RTP_HEADER.pack_into
    size = 12 + len(payload)
    marker_bit = 0x80 if marker else 0
    failed: list[SrtpOutlet] = []
    # The hot loop of forwarding: locals only, no Python call but pack_into and sendto.
    for route, payload_type, ssrc, sequence_offset, timestamp_offset in entries:
        dtls, srtp, cdata, buffer, view, length, sendto, address, outlet = route
        if dtls._state is not connected:
            failed.append(outlet)
            continue
        buffer[12:size] = payload
        pack_into(
            buffer,
            0,
            0x80,
            marker_bit | payload_type,
            (sequence + sequence_offset) & 0xFFFF,
            (timestamp + timestamp_offset) & 0xFFFFFFFF,
            ssrc,
        )
        length[0] = size
        if protect(srtp, cdata, length):
            failed.append(outlet)
            continue
        srtp_packet = view[: length[0]]
        try:
            sendto(srtp_packet, address)
        except (BlockingIOError, InterruptedError):
            if not outlet._send_protected(bytes(srtp_packet)):
                failed.append(outlet)
        except OSError:
            failed.append(outlet)
    return failed


def _nominated_pairs(transceiver: RTCRtpTransceiver) -> tuple[Any, dict[int, Any]] | None:
    dtls: Any = transceiver.sender.transport
    if dtls is None or dtls._state is not _DtlsState.CONNECTED or dtls._tx_srtp is None:
        return None
    nominated: dict[int, Any] = dtls.transport._connection._nominated
    if 1 not in nominated:
        return None
    return dtls, nominated


def srtp_outlet(transceiver: RTCRtpTransceiver) -> SrtpOutlet | None:
    """An outlet for ``transceiver`` once its DTLS transport is connected, else ``None``."""
    _verified_once()
    found = _nominated_pairs(transceiver)
    codecs: list[Any] = getattr(transceiver, "_codecs", [])
    if found is None or not codecs:
        return None
    dtls, nominated = found
    return SrtpOutlet(dtls, nominated, codecs[0].payloadType, transceiver.sender._ssrc)


#: Called with each raw SRTP packet (header in clear, payload encrypted) and its arrival time.
DatagramTap = Callable[[bytes, float], None]


def tap_datagrams(transceiver: RTCRtpTransceiver, on_rtp: DatagramTap) -> bool:
    """Hand every incoming SRTP packet of ``transceiver``'s transport to ``on_rtp`` instead of
    aiortc (which then never unprotects, parses or buffers them); STUN, DTLS and RTCP still go
    to aiortc. For load clients that only count packets. False until the transport is connected.
    """
    _verified_once()
    found = _nominated_pairs(transceiver)
    if found is None:
        return False
    protocol = found[1][1].protocol
    original = protocol.datagram_received
    monotonic = time.monotonic

    def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
        # RTP: version 2 (first byte 128-191) and not an RTCP packet type (192-223).
        if 127 < data[0] < 192 and not 191 < data[1] < 224:
            on_rtp(data, monotonic())
        else:
            original(data, addr)

    protocol.datagram_received = datagram_received
    return True

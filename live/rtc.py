"""WebRTC configuration built from :class:`core.settings.RtcSettings`.

Every peer connection Roomcast creates, server or client, comes from :func:`create_peer_connection`
so that ``iceServers`` is always explicit: aiortc's default (``None``) contacts a public STUN
server, which must never happen unless an operator configured one.
"""

from __future__ import annotations

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCPeerConnection

from core.errors import ConfigurationError
from core.settings import RtcSettings
from live.aiortc_seam import install_host_addresses

__all__ = ["create_peer_connection", "ice_servers", "prepare_ice", "rtc_configuration"]

_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


def ice_servers(rtc: RtcSettings) -> list[RTCIceServer]:
    """The configured STUN/TURN servers (an empty list when none is configured)."""
    servers: list[RTCIceServer] = []
    for url in rtc.ice_servers:
        if not url.startswith(_SCHEMES):
            raise ConfigurationError(
                f"ROOMCAST_RTC__ICE_SERVERS: {url!r} is not a stun:, stuns:, turn: or turns: URL"
            )
        if url.startswith(("turn:", "turns:")):
            servers.append(
                RTCIceServer(
                    urls=url,
                    username=rtc.turn_username or None,
                    credential=rtc.turn_password.get_secret_value() or None,
                )
            )
        else:
            servers.append(RTCIceServer(urls=url))
    return servers


def rtc_configuration(rtc: RtcSettings) -> RTCConfiguration:
    """An explicit configuration: configured ICE servers only, every m-line on one transport."""
    return RTCConfiguration(iceServers=ice_servers(rtc), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


def prepare_ice(rtc: RtcSettings) -> None:
    """Announce the configured host addresses (``ROOMCAST_RTC__HOST_ADDRESSES``) from now on."""
    install_host_addresses(rtc.host_addresses)


def create_peer_connection(rtc: RtcSettings) -> RTCPeerConnection:
    """A peer connection with host addresses and ICE servers taken from ``rtc``."""
    prepare_ice(rtc)
    return RTCPeerConnection(configuration=rtc_configuration(rtc))

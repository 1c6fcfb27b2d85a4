"""Name resolution for ``core.netguard``: the system resolver, as a plain function."""

from __future__ import annotations

import socket


def resolve_host(host: str) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6, deduplicated, resolver order).

    Blocking: call from a thread (sync routes and worker tasks already run on one). Raises
    ``OSError`` (``socket.gaierror``) when the name does not resolve, as netguard expects.
    """
    found: list[str] = []
    for _family, _type, _proto, _name, sockaddr in socket.getaddrinfo(
        host, None, type=socket.SOCK_STREAM
    ):
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return found

"""May a webhook be sent to this URL? (server-side request forgery guard)

A webhook URL is chosen by a user, so without a guard the workers would POST wherever it
points: the metadata service at 169.254.169.254, Redis on 127.0.0.1, the database on the
private network. :func:`check_webhook_target` refuses any URL whose host is, or resolves to,
an address that is not globally routable: loopback, private (RFC 1918), carrier-grade NAT,
link-local, multicast, unique-local IPv6, unspecified, reserved, and IPv4 hidden in IPv6
(``::ffff:127.0.0.1``, ``64:ff9b::/96``). ``localhost`` and ``*.localhost`` are refused before
any lookup (RFC 6761). An allow-list may name hosts, addresses or networks that are let
through anyway (a webhook receiver on the same private network, tests on 127.0.0.1).

Resolution is injected (``resolve(host) -> addresses``; the shell passes a getaddrinfo
wrapper), so this module stays pure. **Every** resolved address must pass, and the shell must
connect to the returned ``addresses`` rather than resolving again, or DNS rebinding walks
around the check.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.errors import UnsafeWebhookTarget

Resolver = Callable[[str], Sequence[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class TargetDecision:
    """The verdict on one URL: ``reason`` is a stable code when refused, ``"ok"`` otherwise."""

    allowed: bool
    reason: str
    host: str
    addresses: tuple[str, ...] = ()
    detail: str = ""


def check_webhook_target(
    url: str,
    *,
    resolve: Resolver,
    allow: Iterable[str] = (),
    require_https: bool = False,
) -> TargetDecision:
    """Decide whether ``url`` may receive webhooks (see the module doc for the rules)."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").rstrip(".").lower()
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        return TargetDecision(False, "malformed_url", "", detail=str(exc))
    allowed_schemes = ("https",) if require_https else ("http", "https")
    if parts.scheme not in allowed_schemes:
        return TargetDecision(False, "scheme_not_allowed", host, detail=f"scheme {parts.scheme!r}")
    if not host:
        return TargetDecision(False, "malformed_url", "", detail="no host in URL")
    hosts, networks = _allow_list(allow)
    named = host in hosts
    if not named and (host == "localhost" or host.endswith(".localhost")):
        return TargetDecision(False, "loopback", host, detail="localhost names are loopback")
    literal = _parse_ip(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            resolved = list(resolve(host))
        except (OSError, UnicodeError) as exc:
            return TargetDecision(False, "unresolvable", host, detail=str(exc))
        parsed = [_parse_ip(address) for address in resolved]
        addresses = [address for address in parsed if address is not None]
        if not addresses or len(addresses) != len(resolved):
            return TargetDecision(False, "unresolvable", host, detail=f"resolved to {resolved}")
    found = tuple(str(a) for a in addresses)
    if named:
        return TargetDecision(True, "ok", host, found, detail="host is allow-listed")
    for address in addresses:
        if any(address in network for network in networks if address.version == network.version):
            continue
        reason = blocked_reason(address)
        if reason is not None:
            return TargetDecision(False, reason, host, found, detail=str(address))
    return TargetDecision(True, "ok", host, found)


def require_webhook_target(
    url: str,
    *,
    resolve: Resolver,
    allow: Iterable[str] = (),
    require_https: bool = False,
) -> tuple[str, ...]:
    """The addresses to connect to, or :class:`~core.errors.UnsafeWebhookTarget`."""
    decision = check_webhook_target(url, resolve=resolve, allow=allow, require_https=require_https)
    if not decision.allowed:
        raise UnsafeWebhookTarget(
            f"webhook URL refused ({decision.reason}: {decision.detail}); use a public"
            " address or add the host to the webhook allow-list",
            code=f"unsafe_webhook_target_{decision.reason}",
        )
    return decision.addresses


def blocked_reason(address: IPAddress) -> str | None:
    """Why ``address`` may not receive webhooks, or ``None`` if it is globally routable."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return blocked_reason(embedded)
        if address in ipaddress.IPv6Network("fc00::/7"):
            return "unique_local"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link_local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("not_global", not address.is_global),
    )
    for reason, hit in checks:
        if hit:
            return reason
    return None


def _allow_list(
    entries: Iterable[str],
) -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    hosts: set[str] = set()
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in entries:
        cleaned = entry.strip().strip("[]").rstrip(".").lower()
        if not cleaned:
            continue
        try:
            networks.append(ipaddress.ip_network(cleaned, strict=False))
        except ValueError:
            hosts.add(cleaned)
    return hosts, networks


def _parse_ip(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None

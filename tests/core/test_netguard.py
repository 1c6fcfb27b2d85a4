"""Webhook target guard: no loopback, private, link-local, multicast or unique-local targets."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from core.errors import UnsafeWebhookTarget
from core.netguard import check_webhook_target, require_webhook_target

# A fake resolver: our port, so a fake is fine. Documentation/global addresses only.
ZONE: dict[str, list[str]] = {
    "hooks.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "rebind.example.com": ["93.184.216.34", "10.0.0.5"],
    "internal.example.com": ["192.168.1.20"],
    "metadata.example.com": ["169.254.169.254"],
    "decimal-loopback": ["127.0.0.1"],
}


def resolve(host: str) -> Sequence[str]:
    if host not in ZONE:
        raise OSError(f"no such host {host}")
    return ZONE[host]


def never_resolve(host: str) -> Sequence[str]:
    raise AssertionError(f"resolver called for {host}")


def test_public_host_is_allowed_with_all_its_addresses() -> None:
    decision = check_webhook_target("https://hooks.example.com/in", resolve=resolve)
    assert decision.allowed and decision.reason == "ok"
    assert decision.addresses == tuple(ZONE["hooks.example.com"])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:6379/", "loopback"),
        ("http://127.8.9.10/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://localhost:8000/", "loopback"),
        ("http://api.localhost./", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.0.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link_local"),
        ("http://[fe80::1]/", "link_local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://[fd12:3456::1]/", "unique_local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[64:ff9b::a00:1]/", "private"),  # NAT64 of 10.0.0.1
        ("http://100.64.0.1/", "not_global"),  # carrier-grade NAT
        ("http://internal.example.com/", "private"),
        ("http://metadata.example.com/", "link_local"),
        ("http://rebind.example.com/", "private"),  # one bad address is enough
        ("http://decimal-loopback/", "loopback"),
        ("http://nowhere.invalid/", "unresolvable"),
        ("ftp://hooks.example.com/", "scheme_not_allowed"),
        ("file:///etc/passwd", "scheme_not_allowed"),
        ("https:///path-only", "malformed_url"),
        ("http://hooks.example.com:99999/", "malformed_url"),
    ],
)
def test_refused(url: str, reason: str) -> None:
    decision = check_webhook_target(url, resolve=resolve)
    assert not decision.allowed
    assert decision.reason == reason


def test_https_can_be_required() -> None:
    decision = check_webhook_target(
        "http://hooks.example.com/", resolve=resolve, require_https=True
    )
    assert decision.reason == "scheme_not_allowed"


def test_allow_list_by_address_network_and_name() -> None:
    assert check_webhook_target(
        "http://127.0.0.1:9000/", resolve=never_resolve, allow=["127.0.0.1"]
    ).allowed
    assert check_webhook_target("http://[::1]:9000/", resolve=never_resolve, allow=["::1"]).allowed
    assert check_webhook_target(
        "http://internal.example.com/", resolve=resolve, allow=["192.168.0.0/16"]
    ).allowed
    named = check_webhook_target(
        "http://Internal.Example.com./", resolve=resolve, allow=["internal.example.com"]
    )
    assert named.allowed and named.addresses == ("192.168.1.20",)
    # An allow-listed network does not excuse the other addresses of a name.
    assert not check_webhook_target(
        "http://rebind.example.com/", resolve=resolve, allow=["93.184.216.0/24"]
    ).allowed


def test_literal_addresses_are_not_resolved() -> None:
    assert check_webhook_target("http://93.184.216.34/", resolve=never_resolve).allowed


def test_require_raises_with_a_stable_code() -> None:
    with pytest.raises(UnsafeWebhookTarget) as caught:
        require_webhook_target("http://10.0.0.1/", resolve=resolve)
    assert caught.value.code == "unsafe_webhook_target_private"
    assert "allow-list" in str(caught.value)
    assert require_webhook_target("https://hooks.example.com/", resolve=resolve) == tuple(
        ZONE["hooks.example.com"]
    )

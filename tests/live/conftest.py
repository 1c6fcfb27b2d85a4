"""Fixtures for live tests: loopback-only ICE, short STUN timers (as aiortc's own tests)."""

from __future__ import annotations

from collections.abc import Iterator

import aioice.stun
import pytest

from core.settings import RtcSettings, Settings
from live.aiortc_seam import install_host_addresses


@pytest.fixture(autouse=True)
def _short_stun_timers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(aioice.stun, "RETRY_MAX", 1)
    monkeypatch.setattr(aioice.stun, "RETRY_RTO", 0.1)
    yield
    install_host_addresses([])


@pytest.fixture
def rtc(settings: Settings) -> RtcSettings:
    """RTC settings announcing 127.0.0.1 only, with no ICE server at all."""
    return settings.rtc.model_copy(update={"host_addresses": ["127.0.0.1"], "ice_servers": []})

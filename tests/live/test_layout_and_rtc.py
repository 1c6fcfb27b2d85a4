"""Pure layout decisions of MediaRoom, and RTC configuration from settings."""

from __future__ import annotations

import pytest
from aiortc import RTCBundlePolicy
from pydantic import SecretStr

from core.errors import ConfigurationError
from core.settings import RtcSettings
from live.media_room import PeerLayout, assign_slots, desired_layout
from live.rtc import ice_servers, rtc_configuration


def test_speakers_hear_other_speakers_and_listeners_hear_the_mix() -> None:
    room = ["a", "b", "c"]
    assert desired_layout("a", "speaker", room) == PeerLayout(False, frozenset({"b", "c"}))
    assert desired_layout("z", "listener", room) == PeerLayout(True, frozenset())


def test_slots_are_kept_freed_and_reused() -> None:
    assert assign_slots([], frozenset({"c", "b"})) == ("b", "c")
    assert assign_slots(["b", "c"], frozenset({"c"})) == (None, "c")
    assert assign_slots([None, "c"], frozenset({"c", "d", "e"})) == ("d", "c", "e")
    assert assign_slots(["d", "c", "e"], frozenset()) == (None, None, None)


def test_configuration_never_falls_back_to_public_stun() -> None:
    configuration = rtc_configuration(RtcSettings())
    assert configuration.iceServers == []
    assert configuration.bundlePolicy == RTCBundlePolicy.MAX_BUNDLE


def test_ice_servers_from_settings() -> None:
    rtc = RtcSettings(
        ice_servers="stun:stun.example.org:3478,turn:turn.example.org:3478",  # type: ignore[arg-type]
        turn_username="u",
        turn_password=SecretStr("p"),
    )
    stun, turn = ice_servers(rtc)
    assert stun.urls == "stun:stun.example.org:3478" and stun.username is None
    assert (turn.urls, turn.username, turn.credential) == ("turn:turn.example.org:3478", "u", "p")
    with pytest.raises(ConfigurationError, match="ROOMCAST_RTC__ICE_SERVERS"):
        ice_servers(RtcSettings(ice_servers=["http://nope"]))

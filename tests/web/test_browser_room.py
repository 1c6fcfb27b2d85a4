"""The Live rooms issue's real-browser test.

Headless Chromium (Debian's package, driven by Selenium) signs in through the lobby, opens the
room page as the room's host and publishes its fake microphone (a WAV with a distinctive
loudness envelope); a ``live.client`` listener joins the same room and must receive that audio
in the room mix: the envelope of what it hears correlates with the source at r ≥ 0.7. Server,
browser and listener all run inside a fresh loopback-only network namespace.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from core.settings import ApiSettings, RtcSettings, Settings
from tests.support import browser

SKIP = browser.browser_skip_reason()
PASSWORD = "correct horse battery"
LISTEN_SECONDS = 5.0


def _account(client: Any, email: str, name: str) -> tuple[dict[str, str], str]:
    """Register ``email``; its Authorization headers and user id."""
    registered = client.post(
        "/v1/auth/register", json={"email": email, "password": PASSWORD, "display_name": name}
    )
    registered.raise_for_status()
    token = client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
    token.raise_for_status()
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    return headers, str(registered.json()["id"])


def _settings(scratch: Path, port: int) -> Settings:
    return Settings(
        var_dir=str(scratch / "var"),
        api=ApiSettings(public_url=f"http://127.0.0.1:{port}"),
        rtc=RtcSettings(host_addresses=["127.0.0.1"]),
    )


def _sign_in(driver: Any, base: str, email: str, next_path: str = "") -> None:
    """Sign in through the lobby's form (then the lobby follows ``?next=``)."""
    from selenium.webdriver.common.by import By

    driver.get(base + "/" + (f"?next={next_path}" if next_path else ""))
    form = browser.wait_for(lambda: driver.find_element(By.ID, "sign-in-form"), what="form")
    browser.wait_for(form.is_displayed, what="the sign-in form")
    form.find_element(By.NAME, "email").send_keys(email)
    form.find_element(By.NAME, "password").send_keys(PASSWORD)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


_RTP_STATS = (
    "const done = arguments[0];"
    "window.roomcast.stats().then((s) => done(s.map((x) => [x.type, x.kind,"
    " x.packetsSent ?? x.packetsReceived ?? 0])));"
)


async def _listen(
    base: str, room_id: str, join: dict[str, Any], while_listening: Callable[[], None]
) -> list[float]:
    """Join as a listener with ``live.client`` and return the mix it hears (mono float32);
    ``while_listening`` runs (blocking, briefly) once the mix flows."""
    import numpy as np

    from live.client import RoomClient

    client = await RoomClient.connect(
        base, room_id, join["token"], ice_servers=[], host_addresses=["127.0.0.1"]
    )
    try:
        deadline = time.monotonic() + 20
        while (audio := client.audio_of("mix")) is None or audio.frames < 10:
            if time.monotonic() > deadline:
                raise TimeoutError("the listener received no mix audio")
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # let the mixer's jitter buffer settle
        while_listening()
        start = time.monotonic()
        await asyncio.sleep(LISTEN_SECONDS)
        samples = audio.since(start)
    finally:
        await client.leave()
    return [float(x) for x in np.asarray(samples, dtype=np.float32)]


def browser_speaker_and_listener(screenshot: str = "") -> dict[str, Any]:
    """(In the netns.) Returns the correlation and what the page showed; saves a screenshot
    of the room page while the listener is in when ``screenshot`` names a file."""
    import httpx
    import numpy as np
    from selenium.webdriver.common.by import By

    from core.adapters.db import migrate
    from tests.support.net import free_port
    from tests.web.servers import web_app

    scratch = Path(tempfile.mkdtemp(prefix="rc-browser-room-"))
    port = free_port()
    settings = _settings(scratch, port)
    migrate.upgrade(settings.database_url)
    source = browser.write_fake_audio(scratch / "mic.wav")
    result: dict[str, Any] = {}
    with browser.serve(web_app(settings), port) as base, httpx.Client(base_url=base) as api:
        _account(api, "hana@example.com", "Hana Host")
        listener, _ = _account(api, "lee@example.com", "Lee Listener")

        with browser.chromium(scratch / "profile", fake_audio=scratch / "mic.wav") as d:
            # Sign in through the lobby, which creates the room and opens its page.
            _sign_in(d, base, "hana@example.com")
            create = d.find_element(By.ID, "create-form")
            browser.wait_for(create.is_displayed, what="the create-room form")
            create.find_element(By.NAME, "title").send_keys("Browser on stage")
            create.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            browser.wait_for(lambda: "/rooms/" in d.current_url, what="the room page")
            room_id = d.current_url.rsplit("/", 1)[1]

            browser.wait_for(
                lambda: d.execute_script("return window.roomcast?.connectionState") == "connected",
                timeout=20,
                what="the browser's peer connection",
            )
            result["browser_role"] = d.execute_script("return document.body.dataset.role")

            join = api.post(f"/v1/rooms/{room_id}/token", headers=listener)
            join.raise_for_status()

            def look_at_the_page() -> None:
                result["audience"] = [
                    e.text for e in d.find_elements(By.CSS_SELECTOR, "#audience .person .name")
                ]
                result["speaking_line"] = browser.wait_for(
                    lambda: d.find_element(By.ID, "speaking").text, what="active speakers"
                )
                if screenshot:
                    d.save_screenshot(screenshot)

            received = asyncio.run(_listen(base, room_id, join.json(), look_at_the_page))

            result["browser_stats"] = d.execute_async_script(_RTP_STATS)
            result["console_errors"] = browser.console_errors(d)

    correlation, lag = browser.best_envelope_correlation(
        np.asarray(received, dtype=np.float32), source
    )
    result.update(
        correlation=correlation,
        lag_frames=lag,
        received_seconds=len(received) / browser.RATE,
        received_rms=float(np.sqrt(np.mean(np.square(received)))) if received else 0.0,
    )
    return result


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(SKIP is not None, reason=SKIP or "")
def test_chromium_speaker_is_heard_by_a_python_listener() -> None:
    result = browser.run_in_loopback_netns(browser_speaker_and_listener, timeout=240)
    assert result["browser_role"] == "host"
    sent = [packets for kind, media, packets in result["browser_stats"] if kind == "outbound-rtp"]
    assert sent and sent[0] > 100, result["browser_stats"]
    assert result["received_seconds"] >= LISTEN_SECONDS * 0.8, result
    assert result["received_rms"] > 0.01, result
    assert result["correlation"] >= 0.7, result
    assert result["audience"] == ["Lee Listener"]
    assert result["speaking_line"] == "Speaking: Hana Host"
    assert result["console_errors"] == []


async def _poll(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Like ``browser.wait_for`` but yields to the event loop (the aiortc host runs on it)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
    return value


async def _host_brings_up_the_browser(
    base: str, d: Any, room_id: str, host_token: str, lee: str, source_len: int
) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    from live.client import RoomClient
    from tests.live.audio import ToneTrack

    result: dict[str, Any] = {}
    host = await RoomClient.connect(
        base, room_id, host_token, publish_track=ToneTrack(440.0), host_addresses=["127.0.0.1"]
    )
    try:
        d.get(f"{base}/rooms/{room_id}")
        await _poll(
            lambda: d.execute_script("return window.roomcast?.connectionState") == "connected",
            "the browser listener's peer connection",
        )
        result["role_before"] = d.execute_script("return document.body.dataset.role")

        def mix_packets() -> int:
            stats = d.execute_async_script(_RTP_STATS)
            return sum(n for kind, _, n in stats if kind == "inbound-rtp")

        result["mix_packets"] = await _poll(lambda: mix_packets() > 50 and mix_packets(), "mix")
        result["streams_before"] = d.execute_script("return window.roomcast.streams")

        d.find_element(By.CSS_SELECTOR, "#my-actions [data-action=raise_hand]").click()
        await host.wait_for(lambda c: bool(c.participants.get(lee, {}).get("hand_raised")))
        result["hand_seen_by_host"] = True
        await host.bring_up(lee)
        await _poll(
            lambda: d.execute_script("return document.body.dataset.role") == "speaker",
            "the browser's promotion",
        )
        await _poll(
            lambda: host.audio_of(lee) is not None and host.audio_of(lee).frames > 25,  # type: ignore[union-attr]
            "the browser's forwarded audio at the host",
        )
        await asyncio.sleep(1.0)
        start = time.monotonic()
        await asyncio.sleep(LISTEN_SECONDS)
        heard = host.audio_of(lee).since(start)  # type: ignore[union-attr]
        result["streams_after"] = d.execute_script("return window.roomcast.streams")
        result["own_actions"] = [
            b.get_attribute("data-action")
            for b in d.find_elements(By.CSS_SELECTOR, "#my-actions button")
        ]
        result["heard"] = [float(x) for x in heard]
    finally:
        await host.end_room()
    await _poll(lambda: d.find_element(By.ID, "ended").is_displayed(), "the room-ended screen", 10)
    result["ended_text"] = d.find_element(By.ID, "ended").text
    return result


def browser_listener_brought_up() -> dict[str, Any]:
    """(In the netns.) The browser joins as a listener, raises its hand through the page, a
    ``live.client`` host brings it up and hears its microphone; then the host ends the room."""
    import httpx
    import numpy as np

    from core.adapters.db import migrate
    from tests.support.net import free_port
    from tests.web.servers import web_app

    scratch = Path(tempfile.mkdtemp(prefix="rc-browser-up-"))
    port = free_port()
    settings = _settings(scratch, port)
    migrate.upgrade(settings.database_url)
    source = browser.write_fake_audio(scratch / "mic.wav")
    with browser.serve(web_app(settings), port) as base, httpx.Client(base_url=base) as api:
        host_headers, hana = _account(api, "hana@example.com", "Hana Host")
        _, lee = _account(api, "lee@example.com", "Lee Listener")
        room = api.post("/v1/rooms", json={"title": "Open mic"}, headers=host_headers)
        room.raise_for_status()
        room_id = room.json()["id"]
        host_join = api.post(f"/v1/rooms/{room_id}/token", headers=host_headers)
        host_join.raise_for_status()
        with browser.chromium(scratch / "profile", fake_audio=scratch / "mic.wav") as d:
            _sign_in(d, base, "lee@example.com", next_path=f"/rooms/{room_id}")
            browser.wait_for(
                lambda: urlsplit(d.current_url).path == f"/rooms/{room_id}",
                what="the ?next= redirect",
            )
            result = asyncio.run(
                _host_brings_up_the_browser(
                    base, d, room_id, host_join.json()["token"], lee, source.size
                )
            )
            result["console_errors"] = browser.console_errors(d)
    heard = np.asarray(result.pop("heard"), dtype=np.float32)
    result["correlation"], _ = browser.best_envelope_correlation(heard, source)
    result["heard_seconds"] = heard.size / browser.RATE
    result["hana"] = hana
    return result


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(SKIP is not None, reason=SKIP or "")
def test_chromium_listener_raises_hand_is_brought_up_and_heard() -> None:
    result = browser.run_in_loopback_netns(browser_listener_brought_up, timeout=240)
    assert result["role_before"] == "listener"
    assert result["mix_packets"] > 50
    assert result["streams_before"] == ["mix"]
    assert result["hand_seen_by_host"] is True
    assert result["own_actions"] == ["mute", "step_down"]
    assert result["streams_after"] == [result["hana"]]  # the host forwarded, no more mix
    assert result["heard_seconds"] >= LISTEN_SECONDS * 0.8, result
    assert result["correlation"] >= 0.7, result
    assert "This room has ended" in result["ended_text"]
    assert result["console_errors"] == []

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

import pytest

from core.settings import ApiSettings, RtcSettings, Settings
from tests.support import browser

SKIP = browser.browser_skip_reason()
PASSWORD = "correct horse battery"
LISTEN_SECONDS = 5.0


def _account(client: Any, email: str, name: str) -> dict[str, str]:
    """Register ``email``; its Authorization headers (and ``X-User-Id``, for the test)."""
    registered = client.post(
        "/v1/auth/register", json={"email": email, "password": PASSWORD, "display_name": name}
    )
    registered.raise_for_status()
    token = client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
    token.raise_for_status()
    return {
        "Authorization": f"Bearer {token.json()['access_token']}",
        "X-User-Id": registered.json()["id"],
    }


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
        listener = _account(api, "lee@example.com", "Lee Listener")

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

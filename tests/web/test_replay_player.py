"""The replay player page.

- ``replay-state.js`` (the page's pure decisions) run in Node against expected values.
- Media tokens over the real app: how a private replay's ``<audio>`` gets its bytes without a
  bearer header, and every way a token must be refused.
- Headless Chromium in a loopback-only netns signs in as the host of a *private* replay (a real
  8 s MP3 with a different tone per speaker turn), opens it from the lobby's "Past rooms" and
  plays it: ``currentTime`` advances, the speed applies, "Next speaker" lands on the next turn
  by someone else, a chapter and the waveform seek, the host's download links work without a
  header, a clip is made; no console errors.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.web.routes import STATIC_DIR
from core.media_tokens import issue_media_token
from core.settings import ApiSettings, Settings
from tests.api.accounts import new_user, register, sign_in
from tests.api.replay_seed import MediaApp, media_app, seed_replay, user_id
from tests.support import browser

SKIP = browser.browser_skip_reason()
PASSWORD = "correct horse battery"
#: The seeded timeline (tests/api/replay_seed.py): Hana 0–4, Gil 4.5–7, Hana 7–8; chapters at
#: 0 ("Hello") and 4.5 ("Guest").
GUEST_TURN_START = 4.5
#: One tone per turn, silence in the pause: distinct segments a listener can tell apart.
TONES = "0.5*sin(2*PI*t*if(lt(t,4),220,if(lt(t,4.5),0,if(lt(t,7),440,660))))"


# -- replay-state.js in Node ---------------------------------------------------------------------

_STATE_SCRIPT = """
import * as s from %(module)s;
const turns = [
  {speaker_id: "a", start: 0, end: 2.5},
  {speaker_id: "a", start: 2.6, end: 3.0},
  {speaker_id: "b", start: 3.0, end: 5.5},
  {speaker_id: "a", start: 6.0, end: 8.0},
];
const chapters = [{start_time: 0, title: "One"}, {start_time: 4.5, title: "Two"}];
const detail = (stems) => ({
  can_download_stems: stems,
  outputs: [
    {kind: "waveform", url: "http://x/w", size: 1},
    {kind: "stems", url: "http://x/s", size: 3},
    {kind: "mp3", url: "http://x/a.mp3", size: 2},
  ],
});
console.log(JSON.stringify({
  next: [0, 1, 2.55, 2.9, 3.0, 5.7, 6.0, 7.5].map((t) => s.nextSpeakerStart(turns, t)),
  holder: [0.1, 2.55, 3.2, 5.7, 7.9].map((t) => s.floorHolder(turns, t)),
  turnAt: [0.1, 2.55, 5.7].map((t) => s.turnAt(turns, t)),
  chapterAt: [0, 4.4, 4.5, 9].map((t) => s.chapterAt(chapters, t)),
  nextFromPause: s.nextSpeakerStart([{speaker_id: "a", start: 1, end: 2}], 0),
  times: [0, 59.9, 61, 3725, NaN].map(s.formatTime),
  peaksAudiowaveform: s.peaksFrom({bits: 8, channels: 1, data: [-64, 32, -128, 127, 0, 0]}),
  peaksPlain: s.peaksFrom({peaks: [0.5, -0.25, 3]}),
  peaksJunk: s.peaksFrom("nope"),
  bars: s.bars([0.1, 0.9, 0.3, 0.2], 2),
  timeAtX: [s.timeAtX(50, 200, 8), s.timeAtX(-5, 200, 8), s.timeAtX(10, 0, 8)],
  downloadsHost: s.downloads(detail(true)).map((d) => d.kind),
  downloadsListener: s.downloads(detail(false)),
  audio: s.audioUrl(detail(true)),
  local: s.localUrl("http://public.example/v1/replays/r/audio.mp3?x=1", {media_token: "t", no: null}),
}));
"""


def test_replay_state_decisions_in_node() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed to test the web client's pure modules")
    module = json.dumps((STATIC_DIR / "replay-state.js").as_uri())
    done = subprocess.run(
        [node, "--input-type=module", "-e", _STATE_SCRIPT % {"module": module}],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    # Same speaker's second turn (2.6) is skipped; from inside b's turn the next is a's at 6.
    assert got["next"] == [3.0, 3.0, 3.0, 3.0, 6.0, 6.0, None, None]
    assert got["holder"] == ["a", "a", "b", "b", "a"]  # a pause belongs to the last speaker
    assert got["turnAt"] == [0, -1, -1]
    assert got["chapterAt"] == [0, 0, 1, 1]
    assert got["nextFromPause"] == 1
    assert got["times"] == ["0:00", "0:59", "1:01", "1:02:05", "--:--"]
    assert got["peaksAudiowaveform"] == [0.5, 1, 0]
    assert got["peaksPlain"] == [0.5, 0.25, 1]
    assert got["peaksJunk"] == []
    assert got["bars"] == [0.9, 0.3]
    assert got["timeAtX"] == [2, 0, 0]
    assert got["downloadsHost"] == ["mp3", "stems"]
    assert got["downloadsListener"] == []
    assert got["audio"] == "http://x/a.mp3"
    assert got["local"] == "/v1/replays/r/audio.mp3?x=1&media_token=t"


# -- media tokens over the real app ---------------------------------------------------------------


@pytest.fixture
def media(settings: Settings) -> Iterator[MediaApp]:
    with media_app(settings) as app:
        yield app


def _code(response: Any) -> str:
    code: str = response.json()["error"]["code"]
    return code


def test_replay_page_is_served_with_the_strict_policy(media: MediaApp) -> None:
    response = media.client.get("/replays/any-id")
    assert response.status_code == 200
    assert response.text == (STATIC_DIR / "replay.html").read_text()
    assert "script-src 'self'" in response.headers["content-security-policy"]
    for ref in ("/static/replay.js", "/static/replay-state.js", "/static/replay.css"):
        assert media.client.get(ref).status_code == 200, ref


def test_media_token_opens_a_private_replay_for_its_member_only(media: MediaApp) -> None:
    client = media.client
    host = new_user(client, "host@example.com", "Hana Host")
    guest = new_user(client, "guest@example.com", "Gil Guest")
    outsider = new_user(client, "out@example.com", "Olly Outsider")
    seeded = seed_replay(
        media.settings,
        media.storage,
        user_id(client, host),
        private=True,
        members=((user_id(client, guest), "listener"),),
    )
    other = seed_replay(media.settings, media.storage, user_id(client, host), private=True)
    token_url = f"/v1/replays/{seeded.replay_id}/media-token"
    audio = f"/v1/replays/{seeded.replay_id}/audio.mp3"

    assert client.post(token_url).status_code == 401
    assert _code(client.post(token_url, headers=outsider)) == "replay_not_found"
    issued = client.post(token_url, headers=guest)
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert body["query_parameter"] == "media_token"
    assert body["expires_in"] == media.settings.auth.media_token_ttl_seconds
    token = body["token"]

    # Without any credential the private replay does not exist; with the token, ranges work.
    assert _code(client.get(audio)) == "replay_not_found"
    ranged = client.get(audio, params={"media_token": token}, headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206
    assert ranged.content == seeded.files["mp3"][:100]
    assert ranged.headers["content-type"] == "audio/mpeg"
    head = client.head(audio, params={"media_token": token})
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(seeded.files["mp3"])
    # The token says who asks; the route still decides: a listener gets no stems.
    stems = client.get(f"/v1/replays/{seeded.replay_id}/stems.zip", params={"media_token": token})
    assert stems.status_code == 403 and _code(stems) == "hosts_only"

    # Refused: another replay's token, an expired one, an API bearer token, garbage.
    other_audio = f"/v1/replays/{other.replay_id}/audio.mp3"
    assert _code(client.get(other_audio, params={"media_token": token})) == "invalid_token"
    expired = issue_media_token(
        media.settings,
        user_id=user_id(client, guest),
        replay_id=seeded.replay_id,
        now=time.time() - 10,
        ttl_seconds=5,
    )
    assert _code(client.get(audio, params={"media_token": expired})) == "token_expired"
    bearer = guest["Authorization"].removeprefix("Bearer ")
    assert _code(client.get(audio, params={"media_token": bearer})) == "invalid_token"
    assert _code(client.get(audio, params={"media_token": "x.y.z"})) == "invalid_token"


def test_a_valid_media_token_does_not_open_more_than_its_user_may_see(media: MediaApp) -> None:
    """A token only names its user: a correctly signed token for an outsider of the private
    room still gets 404, because the route checks the room's membership on every request."""
    client = media.client
    host = new_user(client, "host@example.com", "Hana Host")
    register(client, "late@example.com", "Lee Late")
    late = sign_in(client, "late@example.com")
    seeded = seed_replay(media.settings, media.storage, user_id(client, host), private=True)
    token = issue_media_token(
        media.settings, user_id=user_id(client, late), replay_id=seeded.replay_id
    )
    response = client.get(
        f"/v1/replays/{seeded.replay_id}/audio.mp3", params={"media_token": token}
    )
    assert response.status_code == 404 and _code(response) == "replay_not_found"


def test_public_replay_plays_without_any_token(media: MediaApp) -> None:
    client = media.client
    host = new_user(client, "host@example.com", "Hana Host")
    seeded = seed_replay(media.settings, media.storage, user_id(client, host))
    response = client.get(f"/v1/replays/{seeded.replay_id}/audio.mp3")
    assert response.status_code == 200 and response.content == seeded.files["mp3"]


# -- the page in Chromium -------------------------------------------------------------------------


def _mp3(path: Path) -> bytes:
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
            "-i", f"aevalsrc='{TONES}':s=44100:d=8", "-ac", "1",
            "-c:a", "libmp3lame", "-b:a", "64k", "-y", str(path),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    return path.read_bytes()


def _current(d: Any) -> float:
    value: float = d.execute_script("return document.getElementById('audio').currentTime")
    return value


def player_session(screenshot: str = "") -> dict[str, Any]:
    """(In the netns.) Drive the player; return what was observed for the parent to assert."""
    import httpx
    import sqlalchemy as sa
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from api.app import ApiDeps, create_app
    from core.adapters.db import migrate
    from core.adapters.db.engine import make_engine
    from core.adapters.storage_factory import build_storage
    from tests.recorder.fake_jobs import RecordingJobQueue
    from tests.support.net import free_port

    scratch = Path(tempfile.mkdtemp(prefix="rc-replay-player-"))
    port = free_port()
    settings = Settings(
        var_dir=str(scratch / "var"), api=ApiSettings(public_url=f"http://127.0.0.1:{port}")
    )
    migrate.upgrade(settings.database_url)
    storage = build_storage(settings)
    engine = make_engine(settings)
    queue = RecordingJobQueue()
    deps = ApiDeps(engine=engine, storage=storage, queue=queue, redis_url="redis://127.0.0.1:1")
    result: dict[str, Any] = {}
    app = create_app(settings, deps=deps)
    with browser.serve(app, port) as base, httpx.Client(base_url=base) as api:
        api.post(
            "/v1/auth/register",
            json={"email": "hana@example.com", "password": PASSWORD, "display_name": "Hana"},
        ).raise_for_status()
        token = api.post(
            "/v1/auth/token", data={"username": "hana@example.com", "password": PASSWORD}
        ).json()["access_token"]
        host_id = api.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).json()["id"]
        mp3 = _mp3(scratch / "replay.mp3")
        seeded = seed_replay(
            settings, storage, host_id, title="Tones on stage", private=True, mp3=mp3
        )
        result["mp3_size"] = len(mp3)

        with browser.chromium(scratch / "profile") as d:
            d.get(base + "/")
            form = browser.wait_for(lambda: d.find_element(By.ID, "sign-in-form"), what="form")
            browser.wait_for(form.is_displayed, what="the sign-in form")
            form.find_element(By.NAME, "email").send_keys("hana@example.com")
            form.find_element(By.NAME, "password").send_keys(PASSWORD)
            form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            link = browser.wait_for(
                lambda: d.find_elements(By.CSS_SELECTOR, "#past-rooms a"), what="past rooms"
            )[0]
            result["lobby_link"] = [link.text, link.get_attribute("href")]
            link.click()
            browser.wait_for(
                lambda: d.execute_script("return document.body.dataset.ready") == "yes",
                what="the player to load",
            )
            result["title"] = d.find_element(By.ID, "title").text
            result["turns"] = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#turns li")]
            result["chapters"] = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#chapters li")]
            result["downloads"] = [
                [a.text, a.get_attribute("href")]
                for a in d.find_elements(By.CSS_SELECTOR, "#downloads a")
            ]
            result["audio_src"] = d.execute_script("return document.getElementById('audio').src")

            # Play: currentTime advances.
            d.find_element(By.ID, "play").click()
            browser.wait_for(lambda: _current(d) > 0.6, timeout=15, what="playback to advance")
            first = _current(d)
            time.sleep(0.5)
            result["advanced"] = [first, _current(d)]
            result["speaking_first"] = d.find_element(By.ID, "speaker-now").text

            # Speed.
            Select(d.find_element(By.ID, "speed")).select_by_visible_text("1.5×")
            result["rate"] = d.execute_script(
                "return document.getElementById('audio').playbackRate"
            )

            # Next speaker: from inside Hana's first turn to Gil's turn.
            before = _current(d)
            d.find_element(By.ID, "next-speaker").click()
            result["next_speaker"] = [before, _current(d)]
            browser.wait_for(
                lambda: d.find_element(By.ID, "speaker-now").text == "Gil Guest",
                what="the speaker line to follow",
            )
            result["speaking_after_next"] = d.find_element(By.ID, "speaker-now").text
            result["playing_after_next"] = not d.execute_script(
                "return document.getElementById('audio').paused"
            )

            # Chapter "Hello" (0 s).
            d.find_element(By.CSS_SELECTOR, "#chapters li:first-child button").click()
            result["after_chapter"] = _current(d)

            # Waveform: a click at the middle seeks to about half the duration.
            d.find_element(By.ID, "play").click()  # pause, so the position holds still
            canvas = d.find_element(By.ID, "waveform")
            ActionChains(d).move_to_element(canvas).click().perform()
            result["after_waveform"] = _current(d)

            # Downloads work from a plain link (no header): the MP3 is the stored file.
            mp3_link = next(href for text, href in result["downloads"] if text == "MP3")
            got = httpx.get(mp3_link)
            result["download"] = [
                got.status_code,
                got.content == mp3,
                got.headers.get("content-disposition", ""),
            ]
            bare = httpx.get(mp3_link.split("?")[0])
            result["download_without_token"] = bare.status_code

            # A clip from the current time; the page shows its link once it is ready.
            d.find_element(By.ID, "make-clip").click()
            browser.wait_for(
                lambda: "Rendering" in d.find_element(By.ID, "clip-status").text,
                what="the clip to be requested",
            )
            with engine.begin() as connection:
                row = connection.execute(sa.text("SELECT id, start_seconds FROM clips")).one()
                connection.execute(sa.text("UPDATE clips SET status = 'ready'"))
            result["clip_start"] = row.start_seconds
            result["clip_jobs"] = [name for name, _, _ in queue.sent]
            clip_link = browser.wait_for(
                lambda: d.find_elements(By.ID, "clip-link"), what="the clip link"
            )[0]
            result["clip_href"] = clip_link.get_attribute("href")
            result["clip_id"] = row.id
            if screenshot:
                d.execute_script("window.scrollTo(0, 0)")
                d.save_screenshot(screenshot)
            result["console_errors"] = browser.console_errors(d)
    engine.dispose()
    result["replay_id"] = seeded.replay_id
    return result


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(SKIP is not None, reason=SKIP or "")
def test_chromium_plays_a_private_replay_and_jumps_between_speakers(tmp_path: Path) -> None:
    shot = tmp_path / "replay-player.png"
    result = browser.run_in_loopback_netns(player_session, timeout=240, screenshot=str(shot))
    replay_id = result["replay_id"]
    assert result["lobby_link"][0] == "Tones on stage"
    assert result["lobby_link"][1].endswith(f"/replays/{replay_id}")
    assert result["title"] == "Tones on stage"
    assert len(result["turns"]) == 3 and "Gil Guest" in result["turns"][1]
    assert [c.split("\n")[-1] for c in result["chapters"]] == ["Hello", "Guest"]
    assert "media_token=" in result["audio_src"]  # private: the <audio> carries a media token

    first, later = result["advanced"]
    assert later > first + 0.2, result["advanced"]
    assert result["speaking_first"] == "Hana Host"
    assert result["rate"] == 1.5

    before, after = result["next_speaker"]
    assert before < 4.0
    assert abs(after - GUEST_TURN_START) <= 0.25, result["next_speaker"]
    assert result["speaking_after_next"] == "Gil Guest"
    assert result["playing_after_next"] is True
    assert result["after_chapter"] <= 0.25
    assert abs(result["after_waveform"] - 4.0) <= 0.5, result["after_waveform"]

    assert [text for text, _ in result["downloads"]] == ["MP3", "M4A", "Stems (zip)"]
    status, same_bytes, disposition = result["download"]
    assert status == 200 and same_bytes and "attachment" in disposition
    assert result["download_without_token"] == 404

    assert result["clip_jobs"] == ["roomcast.clips.render"]
    assert 4.0 - 0.5 <= result["clip_start"] <= 4.0 + 0.5
    assert result["clip_href"].endswith(f"/clips/{result['clip_id']}")
    assert result["console_errors"] == []
    assert shot.stat().st_size > 10_000

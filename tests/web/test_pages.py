"""The web client's pages: served by the real app, every link and script resolves, and in a
real Chromium the scripts load without console errors, the lobby signs up / creates a room /
lists it, and the room page's state reducer follows the protocol's example exchange."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.web.routes import STATIC_DIR, load_static
from core.settings import ApiSettings, RtcSettings, Settings
from tests.api.accounts import api_client
from tests.support import browser

PAGES = {"/": "lobby.html", "/rooms/0123abcd": "room.html"}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with api_client(settings) as client:
        yield client


def _local_refs(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/[^"]*)"', html)


def _module_imports(js: str) -> list[str]:
    return re.findall(r'^import .* from "\./([^"]+)";$', js, flags=re.MULTILINE)


@pytest.mark.parametrize(("path", "name"), PAGES.items())
def test_pages_are_served_with_a_strict_policy(client: TestClient, path: str, name: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == (STATIC_DIR / name).read_text()
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_every_link_and_module_import_resolves(client: TestClient) -> None:
    seen: set[str] = set()
    for path in PAGES:
        for ref in _local_refs(client.get(path).text):
            response = client.get(ref)
            assert response.status_code == 200, ref
            seen.add(ref)
    scripts = [ref.removeprefix("/static/") for ref in seen if ref.endswith(".js")]
    assert {"lobby.js", "room.js"} <= set(scripts)
    pending = list(scripts)
    while pending:
        name = pending.pop()
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "text/javascript; charset=utf-8"
        for imported in _module_imports(response.text):
            if imported not in scripts:
                scripts.append(imported)
                pending.append(imported)
    assert {"api.js", "room-state.js"} <= set(scripts)


def test_static_files_revalidate_with_etags(client: TestClient) -> None:
    first = client.get("/static/style.css")
    assert first.headers["content-type"] == "text/css; charset=utf-8"
    assert first.headers["cache-control"] == "no-cache"
    again = client.get("/static/style.css", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize("name", ["nope.js", "..%2Fapi.js", "routes.py", "%2e%2e%2froutes.py"])
def test_unknown_or_escaping_names_are_not_found(client: TestClient, name: str) -> None:
    response = client.get(f"/static/{name}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_only_known_file_types_are_served(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("<p>hi</p>")
    (tmp_path / "secret.env").write_text("KEY=1")
    (tmp_path / "sub.js").mkdir()
    files = load_static(tmp_path)
    assert set(files) == {"page.html"}
    assert files["page.html"].etag.startswith('"') and len(files["page.html"].etag) == 18


def test_pages_stay_out_of_the_openapi_description(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and "/static/{name}" not in paths and "/rooms/{room_id}" not in paths


# -- in a real browser, inside a loopback-only network namespace ---------------------------------

SKIP = browser.browser_skip_reason()

#: docs/protocol.md's example exchange, as Ann (u2) receives it.
EXAMPLE_MESSAGES: list[dict[str, Any]] = [
    {
        "type": "snapshot", "room_id": "r1", "you": "u2", "host_id": "u1",
        "participants": [
            {"user_id": "u1", "display_name": "Hana", "role": "host", "hand_raised": False,
             "muted": False},
            {"user_id": "u2", "display_name": "Ann", "role": "listener", "hand_raised": False,
             "muted": False},
        ],
        "invited": [], "recording": False, "max_stage": 13,
        "grants": {"subscribe": True, "publish": False, "moderate": False, "record": False},
        "ice_servers": [],
    },
    {"type": "offer", "sdp": "v=0", "negotiation": 1},
    {"type": "hand_raised", "user_id": "u2"},
    {"type": "ack", "request_id": "a1"},
    {"type": "participant_joined", "user_id": "u3", "display_name": "Cy", "role": "listener"},
    {"type": "invited", "user_id": "u3", "by": "u1"},
    {"type": "role_changed", "user_id": "u2", "role": "speaker", "previous_role": "listener",
     "by": "u1"},
    {"type": "recording", "on": True, "by": "u1"},
    {"type": "active_speakers", "user_ids": ["u2", "u1"]},
    {"type": "muted", "user_id": "u2", "muted": True, "by": "u1"},
    {"type": "error", "code": "not_a_moderator", "message": "Only the host…", "request_id": "a2"},
]  # fmt: skip

_REDUCE_SCRIPT = """
const [messages, done] = arguments;
import('/static/room-state.js').then((rs) => {
  let state = null;
  const trace = [];
  for (const message of messages) {
    state = rs.reduce(state, message);
    const self = rs.me(state);
    trace.push({
      role: self.role, hand: self.hand_raised, muted: self.muted, publish: state.grants.publish,
      own: rs.ownActions(state).map((a) => a.type + (a.fields.muted === false ? ':off' : '')),
    });
  }
  const cy = state.participants.get('u3');
  done({
    trace,
    stage: rs.stage(state).map((p) => p.user_id),
    audience: rs.audience(state).map((p) => p.user_id),
    speaking: rs.speakingNames(state),
    recording: state.recording,
    invited: [...state.invited],
    lastError: state.lastError,
    actionsOnCyAsSpeaker: rs.actionsOn(state, cy).map((a) => a.type),
    hostView: (() => {
      const host = rs.reduce(state, {...messages[0], you: 'u1',
        grants: {subscribe: true, publish: true, moderate: true, record: true}});
      const withCy = rs.reduce(host, messages[4]);
      return rs.actionsOn(withCy, withCy.participants.get('u3')).map((a) => a.type);
    })(),
  });
}, (error) => done({error: String(error)}));
"""


def browse_pages(screenshots: str) -> dict[str, Any]:
    """(In the netns.) Sign up, create a room and open it through the lobby's UI; run the
    reducer over the protocol example. Returns what the parent test asserts on."""
    import tempfile

    from selenium.webdriver.common.by import By

    from core.adapters.db import migrate
    from tests.support.net import free_port
    from tests.web.servers import web_app

    out = Path(screenshots)
    scratch = Path(tempfile.mkdtemp(prefix="rc-web-"))
    port = free_port()
    settings = Settings(
        var_dir=str(scratch / "var"),
        api=ApiSettings(public_url=f"http://127.0.0.1:{port}"),
        rtc=RtcSettings(host_addresses=["127.0.0.1"]),
    )
    migrate.upgrade(settings.database_url)
    result: dict[str, Any] = {}
    with browser.serve(web_app(settings), port) as base, browser.chromium(scratch / "p") as d:
        d.get(base + "/")
        browser.wait_for(lambda: d.find_element(By.ID, "auth").is_displayed(), what="sign-in form")
        result["lobby_signed_out_errors"] = browser.console_errors(d)
        d.save_screenshot(str(out / "lobby-signed-out.png"))

        form = d.find_element(By.ID, "register-form")
        form.find_element(By.NAME, "email").send_keys("ada@example.com")
        form.find_element(By.NAME, "display_name").send_keys("Ada Lovelace")
        form.find_element(By.NAME, "password").send_keys("correct horse battery")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        browser.wait_for(lambda: d.find_element(By.ID, "create").is_displayed(), what="sign-in")
        result["whoami"] = d.find_element(By.ID, "whoami").text

        create = d.find_element(By.ID, "create-form")
        create.find_element(By.NAME, "title").send_keys("Friday standup")
        create.find_element(By.NAME, "description").send_keys("Weekly news, open mic after.")
        create.find_element(By.NAME, "record").click()
        create.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        browser.wait_for(lambda: "/rooms/" in d.current_url, what="the room page")
        browser.wait_for(
            lambda: d.find_element(By.ID, "title").text == "Friday standup", what="room title"
        )
        result["room_path"] = d.current_url.removeprefix(base)
        browser.wait_for(
            lambda: d.find_element(By.ID, "status").text == "Live", timeout=20, what="media"
        )
        result["stage"] = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#stage .name")]
        result["rec_shown"] = d.find_element(By.ID, "rec").is_displayed()
        d.save_screenshot(str(out / "room.png"))
        result["room_errors"] = browser.console_errors(d)

        d.get(base + "/")
        link = browser.wait_for(
            lambda: d.find_elements(By.CSS_SELECTOR, "#live-rooms a"), what="the live room link"
        )[0]
        result["listed"] = [link.text, link.get_attribute("href").removeprefix(base)]
        result["listed_badges"] = [
            b.text for b in d.find_elements(By.CSS_SELECTOR, "#live-rooms .badge")
        ]
        d.save_screenshot(str(out / "lobby-signed-in.png"))
        result["lobby_errors"] = browser.console_errors(d)

        d.set_script_timeout(10)
        result["reducer"] = d.execute_async_script(_REDUCE_SCRIPT, EXAMPLE_MESSAGES)
        result["reducer_errors"] = browser.console_errors(d)
    return result


@pytest.fixture(scope="module")
def browsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if SKIP:
        pytest.skip(SKIP)
    shots = tmp_path_factory.mktemp("screenshots")
    result: dict[str, Any] = browser.run_in_loopback_netns(browse_pages, screenshots=str(shots))
    result["screenshots"] = sorted(p.name for p in shots.iterdir() if p.stat().st_size > 1000)
    return result


@pytest.mark.browser
def test_pages_load_without_console_errors(browsed: dict[str, Any]) -> None:
    for key in ("lobby_signed_out_errors", "room_errors", "lobby_errors", "reducer_errors"):
        assert browsed[key] == [], key
    assert browsed["screenshots"] == ["lobby-signed-in.png", "lobby-signed-out.png", "room.png"]


@pytest.mark.browser
def test_lobby_signs_up_creates_and_lists_a_room(browsed: dict[str, Any]) -> None:
    assert browsed["whoami"] == "Signed in as Ada Lovelace"
    room_path = browsed["room_path"]
    assert re.fullmatch(r"/rooms/[0-9a-f]{32}", room_path)
    assert browsed["listed"] == ["Friday standup", room_path]
    assert browsed["listed_badges"] == ["LIVE", "REC"]


@pytest.mark.browser
def test_room_page_joins_the_live_room_as_host(browsed: dict[str, Any]) -> None:
    assert browsed["stage"] == ["Ada Lovelace (you)"]
    # The room was created with "record" ticked: recording starts when the host joins, and the
    # page shows REC from the live room's state.
    assert browsed["rec_shown"] is True


@pytest.mark.browser
def test_room_state_follows_the_protocol_example(browsed: dict[str, Any]) -> None:
    reducer = browsed["reducer"]
    assert "error" not in reducer, reducer
    trace = reducer["trace"]
    assert trace[0] == {
        "role": "listener", "hand": False, "muted": False, "publish": False,
        "own": ["raise_hand"],
    }  # fmt: skip
    assert trace[2]["hand"] is True and trace[2]["own"] == ["lower_hand"]
    after_bring_up = trace[6]
    assert after_bring_up["role"] == "speaker" and after_bring_up["hand"] is False
    assert after_bring_up["publish"] is True
    assert after_bring_up["own"] == ["mute", "step_down"]
    assert trace[-2]["muted"] is True and trace[-2]["own"] == ["mute:off", "step_down"]
    assert reducer["stage"] == ["u1", "u2"]
    assert reducer["audience"] == ["u3"]
    assert reducer["invited"] == ["u3"]
    assert reducer["speaking"] == ["Ann", "Hana"]
    assert reducer["recording"] is True
    assert reducer["lastError"]["code"] == "not_a_moderator"
    assert reducer["actionsOnCyAsSpeaker"] == []
    assert reducer["hostView"] == ["invite", "make_cohost", "remove"]

"""A room recorded through ``live.client`` becomes, with no manual step, a replay streamable on its
page and an episode in its show's feed.

Everything is real: ``roomcast up`` runs as a subprocess (its own redis-server, two Celery
worker processes, the API with the live node mounted, SQLite and local storage under tmp) on free
127.0.0.1 ports. Through the REST API a creator registers, makes a show with artwork and a
recorded room in it; the host and one speaker join with ``live.client`` and send two distinct
tones for about 4 s; the room ends. From then on the test only polls: the replay turns ready,
its page and audio answer (Range → 206, HEAD), and the feed carries the episode with the stored
size as enclosure length and a duration within 1 s of the decoded MP3, parses with feedparser
and podcastparser and holds no signature. Both tones are in the MP3 (FFT).
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

import av
import feedparser
import httpx
import numpy as np
import podcastparser
import pytest
from lxml import etree
from numpy.typing import NDArray
from PIL import Image

from core.adapters.storage_factory import build_storage
from core.auto_episode import auto_episode_guid
from core.feeds import podcast_guid
from core.settings import Settings
from core.storage import Storage
from live.client import RoomClient
from tests.e2e.test_up import ROOMCAST, descendants, wait_ready
from tests.live.recording_support import BurstTrack
from tests.support.net import free_port

pytestmark = pytest.mark.slow

HOST_TONE, SPEAKER_TONE = 700.0, 1300.0
TONE_FRAMES = 200  #: 4 s of 20 ms frames
PASSWORD = "correct horse battery"
NS = {
    "itunes": "http://www.itunes.com/dtds/podcast-1.0.dtd",
    "podcast": "https://podcastindex.org/namespace/1.0",
}
T = TypeVar("T")


class Up:
    """``roomcast up`` on free ports with everything under ``var``."""

    def __init__(self, tmp_path: Path) -> None:
        self.port, redis_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.var = tmp_path / "var"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
        self.env.update(
            ROOMCAST_VAR_DIR=str(self.var),
            ROOMCAST_API__PORT=str(self.port),
            ROOMCAST_API__PUBLIC_URL=self.base,
            ROOMCAST_REDIS__PORT=str(redis_port),
            ROOMCAST_RTC__HOST_ADDRESSES="127.0.0.1",
            ROOMCAST_RTC__ICE_SERVERS="",
            ROOMCAST_AUDIO__SEGMENT_SECONDS="2",
            ROOMCAST_LOG_LEVEL="WARNING",
        )
        self.log_path = tmp_path / "up.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [ROOMCAST, "up"], env=self.env, cwd=tmp_path, stdout=self._log, stderr=self._log
        )
        self.children: dict[int, str] = {}

    def storage(self) -> Storage:
        """The storage ``roomcast up`` writes to (local, under its var dir)."""
        return build_storage(Settings(var_dir=str(self.var)))

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]

    def stop(self) -> None:
        self.children = descendants(self.process.pid) if self.process.poll() is None else {}
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for pid in self.children:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        self._log.close()


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    service = Up(tmp_path)
    try:
        yield service
    finally:
        service.stop()


def poll(what: str, check: Callable[[], T | None], within: float, up: Up) -> T:
    """``check()``'s first non-None answer, polled every 0.25 s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if up.process.poll() is not None:
            pytest.fail(f"roomcast up exited ({up.process.returncode}):\n{up.tail()}")
        found = check()
        if found is not None:
            return found
        time.sleep(0.25)
    pytest.fail(f"{what} not within {within} s\n{up.tail()}")


def artwork() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1400, 1400), color=(40, 90, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def account(api: httpx.Client, email: str, name: str) -> tuple[dict[str, str], str]:
    """Register ``email``; return its bearer headers and user id."""
    body = {"email": email, "password": PASSWORD, "display_name": name}
    assert api.post("/v1/auth/register", json=body).status_code == 201
    token = api.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert token.status_code == 200, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    me = api.get("/v1/me", headers=headers)
    assert me.status_code == 200
    return headers, str(me.json()["id"])


def ok(response: httpx.Response, code: int = 200) -> Any:
    assert response.status_code == code, (response.status_code, response.text)
    return response.json()


async def run_room(base: str, host_token: str, speaker_token: str, room: str, speaker: str) -> None:
    """Host and speaker on stage, each sending its tone for ``TONE_FRAMES`` frames; the host ends
    the room."""
    host_mic = BurstTrack(HOST_TONE, burst_frames=TONE_FRAMES)
    speaker_mic = BurstTrack(SPEAKER_TONE, burst_frames=TONE_FRAMES)
    options: dict[str, Any] = {"host_addresses": ["127.0.0.1"], "ice_servers": []}
    host = await RoomClient.connect(base, room, host_token, publish_track=host_mic, **options)
    guest = await RoomClient.connect(
        base, room, speaker_token, publish_track=speaker_mic, **options
    )
    try:
        await host.wait_for(lambda c: c.recording and speaker in c.participants)
        await host.invite(speaker)
        await guest.wait_for(lambda c: speaker in c.invited)
        await guest.accept_invite()
        await asyncio.sleep(1.0)  # the speaker's media up
        await asyncio.gather(host_mic.burst(), speaker_mic.burst())
        await asyncio.sleep(TONE_FRAMES * 0.02 + 0.5)
        await host.end_room()
        await guest.wait_closed()
    finally:
        await guest.close()
        await host.close()


def decode_mp3(data: bytes, path: Path) -> tuple[NDArray[np.float64], int]:
    """Mono samples and sample rate of an MP3 (PyAV)."""
    path.write_bytes(data)
    chunks, rate = [], 0
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            rate = frame.sample_rate
            chunks.append(frame.to_ndarray().reshape(-1, frame.samples).mean(axis=0))
    return np.concatenate(chunks).astype(np.float64), rate


def tone_magnitudes(
    samples: NDArray[np.float64], rate: int, frequencies: tuple[float, ...]
) -> list[float]:
    """The spectrum's peak within 5 Hz of each of ``frequencies``."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1.0 / rate)
    return [float(spectrum[np.abs(freqs - f) < 5].max()) for f in frequencies]


def test_recorded_show_room_becomes_a_replay_and_a_feed_episode(up: Up, tmp_path: Path) -> None:
    started = time.monotonic()
    wait_ready(f"{up.base}/readyz", up.process, within=60)
    api = httpx.Client(base_url=up.base, timeout=15, follow_redirects=False)
    try:
        creator, host_id = account(api, "hana@example.com", "Hana Host")
        guest, guest_id = account(api, "gil@example.com", "Gil Guest")
        show = ok(
            api.post(
                "/v1/shows",
                headers=creator,
                json={
                    "slug": "morning-talks",
                    "title": "Morning Talks",
                    "description": "Rooms from the morning crew.",
                    "language": "en-us",
                    "category": "Technology",
                    "explicit": False,
                    "author": "Hana Host",
                    "owner_email": "owner@example.com",
                },
            ),
            201,
        )
        ok(api.put("/v1/shows/morning-talks/artwork", content=artwork(), headers=creator))
        room = ok(
            api.post(
                "/v1/rooms",
                headers=creator,
                json={
                    "title": "Launch day",
                    "description": "Hana and Gil on the launch.",
                    "record": True,
                    "show_id": show["id"],
                },
            ),
            201,
        )
        assert ok(api.get(f"/v1/rooms/{room['id']}"))["show_id"] == show["id"]
        host_token = ok(api.post(f"/v1/rooms/{room['id']}/token", headers=creator))["token"]
        guest_token = ok(api.post(f"/v1/rooms/{room['id']}/token", headers=guest))["token"]

        asyncio.run(
            asyncio.wait_for(run_room(up.base, host_token, guest_token, room["id"], guest_id), 40)
        )
        ended = time.monotonic()
        # The live plane ended the room above; it marks the room ended in the database itself.
        deadline = ended + 15
        while ok(api.get(f"/v1/rooms/{room['id']}", headers=creator))["status"] != "ended":
            assert time.monotonic() < deadline, "the live node did not mark the room ended"
            time.sleep(0.2)

        # No further call that changes anything: only polling from here on.
        def ready_replay() -> dict[str, Any] | None:
            listed = ok(api.get("/v1/replays", headers=creator))["replays"]
            mine = [r for r in listed if r["room_id"] == room["id"]]
            if mine and mine[0]["status"] == "failed":
                pytest.fail(f"replay failed: {api.get(mine[0]['url']).text}")
            return mine[0] if mine and mine[0]["status"] == "ready" else None

        summary = poll("a ready replay", ready_replay, within=60, up=up)
        ready_after = time.monotonic() - ended
        replay_id = summary["id"]
        detail = ok(api.get(f"/v1/replays/{replay_id}"))  # public room: anyone
        outputs = {o["kind"]: o for o in detail["outputs"]}
        assert "mp3" in outputs
        assert {s["id"] for s in detail["speakers"]} >= {host_id, guest_id}

        page = api.get(f"/replays/{replay_id}")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]

        audio_path = f"/v1/replays/{replay_id}/audio.mp3"
        full = api.get(audio_path)
        assert full.status_code == 200 and full.headers["content-type"] == "audio/mpeg"
        mp3 = full.content
        storage = up.storage()
        stored = storage.head(_stored_mp3_key(storage, replay_id)).size
        assert stored == len(mp3) == outputs["mp3"]["size"]
        partial = api.get(audio_path, headers={"Range": "bytes=0-1023"})
        assert partial.status_code == 206
        assert partial.headers["content-range"] == f"bytes 0-1023/{stored}"
        assert partial.content == mp3[:1024]
        head = api.head(audio_path)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(stored)
        assert head.headers["accept-ranges"] == "bytes"

        samples, rate = decode_mp3(mp3, tmp_path / "replay.mp3")
        decoded_seconds = len(samples) / rate
        assert decoded_seconds >= TONE_FRAMES * 0.02
        # Both tones are there, each far above a frequency nobody sent.
        host_peak, speaker_peak, control = tone_magnitudes(
            samples, rate, (HOST_TONE, SPEAKER_TONE, 1000.0)
        )
        assert min(host_peak, speaker_peak) > 30 * control, (host_peak, speaker_peak, control)
        assert 0.25 < host_peak / speaker_peak < 4  # both speakers levelled alike
        sys.stderr.write(f"tone peaks {host_peak:.0f} / {speaker_peak:.0f}, 1 kHz {control:.0f}\n")

        # The episode is in the feed, published by post-production itself.
        feed_path = "/feeds/morning-talks.xml"

        def feed_with_item() -> bytes | None:
            response = api.get(feed_path)
            return (
                response.content
                if response.status_code == 200 and b"<item>" in response.content
                else None
            )

        xml = poll("the episode in the feed", feed_with_item, within=10, up=up)
        assert b"Signature" not in xml and b"X-Amz" not in xml
        parsed = feedparser.parse(xml)
        assert not parsed.bozo, parsed.get("bozo_exception")
        (entry,) = parsed.entries
        assert entry.title == "Launch day"
        assert entry.id == auto_episode_guid(replay_id)
        (enclosure,) = entry.enclosures
        assert int(enclosure.length) == stored
        assert enclosure.href == f"{up.base}{audio_path}"

        podcast = podcastparser.parse(f"{up.base}{feed_path}", io.BytesIO(xml))
        (item,) = podcast["episodes"]
        assert item["enclosures"][0]["file_size"] == stored
        assert abs(item["total_time"] - decoded_seconds) <= 1.0, (
            item["total_time"],
            decoded_seconds,
        )

        root = etree.fromstring(xml)
        channel = root.find("channel")
        assert channel is not None
        assert channel.findtext("podcast:guid", namespaces=NS) == podcast_guid(
            f"{up.base}{feed_path}"
        )
        items = channel.findall("item")
        assert len(items) == 1 and len(items[0].findall("enclosure")) == 1
        # The room's liveItem gave way to the replay's item once it was published.
        assert channel.findall("podcast:liveItem", NS) == []
        pub_date = items[0].findtext("pubDate")
        assert pub_date is not None
        assert pub_date.startswith(parsedate_to_datetime(pub_date).strftime("%a, "))

        episodes = ok(api.get("/v1/shows/morning-talks/episodes", headers=creator))["episodes"]
        assert [(e["replay_id"], e["state"]) for e in episodes] == [(replay_id, "published")]
        total = time.monotonic() - started
        sys.stderr.write(
            f"room to feed: replay ready {ready_after:.1f} s after the room ended;"
            f" whole test {total:.1f} s\n"
        )
    except BaseException:
        sys.stderr.write(up.tail())
        raise
    finally:
        api.close()


def _stored_mp3_key(storage: Storage, replay_id: str) -> str:
    """The one published MP3 of ``replay_id`` in storage."""
    keys = [o.key for o in storage.list(f"replays/{replay_id}/") if o.key.endswith("/audio.mp3")]
    assert len(keys) == 1, keys
    return keys[0]
